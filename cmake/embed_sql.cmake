# embed_sql.cmake - turns schemas/*.sql into one C header of string
# constants, so the binary carries the schema and schemas/ stays its source.
# Usage: cmake -DOUT=header -DINPUTS="a.sql|b.sql" -P embed_sql.cmake
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(body "/* generated from schemas/ by cmake/embed_sql.cmake: do not edit */\n")
foreach(in ${INPUTS})
  get_filename_component(name "${in}" NAME_WE)
  file(READ "${in}" text)
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "\n" "\\n\"\n\"" text "${text}")
  string(APPEND body "static const char mt_schema_${name}_sql[] =\n\"${text}\";\n")
endforeach()
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
