/* mt_event.c - name and flag tables expanded from the lists in mt_event.h. */
#include "mt_event.h"

#include <stddef.h>

static const char *const domain_names[] = {
#define X(code, name, layer, desc) [code] = #name,
    MT_DOMAINS(X)
#undef X
};

static const char *const domain_descs[] = {
#define X(code, name, layer, desc) [code] = desc,
    MT_DOMAINS(X)
#undef X
};

static const struct {
    const char *name;
    unsigned flags;
    int domain;
} kinds[] = {
#define X(code, name, dom, flags, desc) [code] = {#name, flags, MT_DOM_##dom},
    MT_KINDS(X)
#undef X
#define X(code, name, desc) [MT_KIND_PYM_BASE + code] = {#name, 0, MT_DOM_bundled},
    PYM_EVENTS(X)
#undef X
};

static const char *const marker_names[] = {
#define X(code, name, desc) [code] = #name,
    MT_MARKERS(X)
#undef X
};

#define IN_RANGE(c, arr) ((c) >= 0 && (size_t)(c) < sizeof(arr) / sizeof((arr)[0]))

const char *mt_domain_name(int code) { return IN_RANGE(code, domain_names) ? domain_names[code] : NULL; }
const char *mt_domain_description(int code) { return IN_RANGE(code, domain_descs) ? domain_descs[code] : NULL; }
/* (codes between the lists have no name: NULL, as for unknown codes) */
const char *mt_kind_name(int code) { return IN_RANGE(code, kinds) ? kinds[code].name : NULL; }
unsigned mt_kind_flags(int code) { return IN_RANGE(code, kinds) ? kinds[code].flags : 0; }
int mt_kind_domain(int code) { return IN_RANGE(code, kinds) && kinds[code].name ? kinds[code].domain : -1; }
const char *mt_marker_name(int code) { return IN_RANGE(code, marker_names) ? marker_names[code] : NULL; }
