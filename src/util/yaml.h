/* libyaml event helpers shared by the YAML readers (allocator.yaml,
 * vsock-proxy.yaml): one wording for parse errors and node kinds. */
#ifndef WARD_UTIL_YAML_H
#define WARD_UTIL_YAML_H

#include <yaml.h>

/* The parser's failure as a WARD_EFORMAT naming file:line:column (or
 * WARD_ENOMEM). */
int ward_yaml_error(const yaml_parser_t *p, const char *name);
/* Delete the previous event (deleting twice is harmless), parse the next. */
int ward_yaml_next(yaml_parser_t *p, yaml_event_t *ev, const char *name);
/* "a mapping", "a list", "an alias", "a single value" or "nothing". */
const char *ward_yaml_kind(const yaml_event_t *ev);

#endif
