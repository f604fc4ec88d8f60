#!/usr/bin/env bash
# chain.sh - fork + exec three deep, two threads in every image
# (tests/programs/chain.c): every process and image is a row, linked to its
# parent (parent_id, fork) or the image it replaced (exec_of), and every
# image's threads made exactly their own events.
source "$(dirname "$0")/lib.sh"

trace ch.db "$PROGS/chain" 3
assert_eq "memtrace exit status" 0 "$RC"
assert_eq "meta complete" 1 "$(meta ch.db complete)"
assert_eq "integrity" ok "$(q ch.db "PRAGMA integrity_check")"
assert_eq "7 process rows (4 images, 3 fork children), 4 pids" "7|4" \
    "$(q ch.db "SELECT count(*), count(DISTINCT pid) FROM processes")"
assert_eq "all ended cleanly" "7" "$(q ch.db "SELECT count(*) FROM processes WHERE complete = 1")"
# from the deepest image up to the root, by exec_of and parent_id
assert_eq "the chain from chain 0 up: image, fork child, image, ..." \
    "chain 0 exec_of
chain 1 parent_id
chain 1 exec_of
chain 2 parent_id
chain 2 exec_of
chain 3 parent_id
chain 3 root" \
    "$(q ch.db "WITH RECURSIVE up(id, n) AS (
                  SELECT id, 0 FROM processes WHERE cmdline LIKE '% 0'
                  UNION ALL
                  SELECT coalesce(p.exec_of, p.parent_id), n + 1 FROM up JOIN processes p ON p.id = up.id
                  WHERE coalesce(p.exec_of, p.parent_id) IS NOT NULL)
                SELECT replace(p.cmdline, rtrim(p.cmdline, replace(p.cmdline, '/', '')), '') || ' ' ||
                       CASE WHEN p.exec_of IS NOT NULL THEN 'exec_of' WHEN p.parent_id IS NOT NULL THEN 'parent_id'
                            ELSE 'root' END
                FROM up JOIN processes p ON p.id = up.id ORDER BY n")"
assert_eq "a fork child's ppid is its parent's pid, an image's pid is the one it replaced" 6 \
    "$(q ch.db "SELECT count(*) FROM processes c JOIN processes p ON p.id = coalesce(c.exec_of, c.parent_id)
                WHERE (c.exec_of IS NOT NULL AND c.pid = p.pid) OR (c.parent_id IS NOT NULL AND c.ppid = p.pid)")"
for d in 0 1 2 3; do
    assert_eq "chain $d: 2 threads of its own, 10 mallocs of each size" "$((300 + 10 * d))|1|10
$((301 + 10 * d))|1|10" \
        "$(q ch.db "SELECT e.size, count(DISTINCT e.thread_id), count(*) FROM events e JOIN processes p ON p.id = e.process_id
                    WHERE p.cmdline LIKE '% $d' AND (p.exec_of IS NOT NULL OR p.id = 1)
                      AND e.kind = 'malloc' AND e.size BETWEEN 300 AND 340
                    GROUP BY e.size ORDER BY e.size")"
    assert_eq "chain $d: the two threads are different threads of that image" 2 \
        "$(q ch.db "SELECT count(DISTINCT e.thread_id) FROM events e JOIN processes p ON p.id = e.process_id
                    WHERE p.cmdline LIKE '% $d' AND e.kind = 'malloc' AND e.size BETWEEN 300 AND 340")"
done
assert_eq "no event of these sizes outside the images" 80 \
    "$(q ch.db "SELECT count(*) FROM events WHERE kind = 'malloc' AND size BETWEEN 300 AND 340")"
finish
