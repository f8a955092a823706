/* libyaml event helpers; see yaml.h. */
#include "util/yaml.h"
#include "ward/util.h"

int
ward_yaml_error(const yaml_parser_t *p, const char *name)
{
	if (p->error == YAML_MEMORY_ERROR)
		return ward_enomem();
	if (p->error == YAML_READER_ERROR)
		return ward_errf(WARD_EFORMAT,
		    "%s: not valid YAML at byte %zu: %s", name,
		    p->problem_offset,
		    p->problem != NULL ? p->problem : "unreadable");
	return ward_errf(WARD_EFORMAT, "%s:%zu:%zu: not valid YAML: %s%s%s",
	    name, p->problem_mark.line + 1, p->problem_mark.column + 1,
	    p->problem != NULL ? p->problem : "a syntax error",
	    p->context != NULL ? " " : "",
	    p->context != NULL ? p->context : "");
}

int
ward_yaml_next(yaml_parser_t *p, yaml_event_t *ev, const char *name)
{
	yaml_event_delete(ev);
	if (!yaml_parser_parse(p, ev))
		return ward_yaml_error(p, name);
	return 0;
}

const char *
ward_yaml_kind(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_ALIAS_EVENT:
		return "an alias";
	case YAML_SCALAR_EVENT:
		return "a single value";
	default:
		return "nothing";
	}
}
