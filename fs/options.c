/* options: range checks of the numeric mount options; see options.h. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct numopt {
	const char *name;
	unsigned long long min, max;
	const char *what; /* "a positive number of milliseconds" */
};

#define DAY_MS 86400000ull
static const struct numopt numopts[] = {
    {"timeout", 1, DAY_MS, "a positive number of milliseconds (at most 86400000)"},
    {"revalidate", 1, DAY_MS, "a positive number of milliseconds (at most 86400000)"},
    {"memo", 1, 1u << 20, "a positive number of MB (at most 1048576)"},
    {"workers", 1, 100000, "a positive number of workers (at most 100000)"},
    {"worker_types", 1, 1024, "a positive number of types (at most 1024)"},
    {"workers_mem", 1, 1u << 20, "a positive number of MB (at most 1048576)"},
    {"worker_mem", 1, 1u << 20, "a positive number of MB (at most 1048576)"},
    {"max_answer", 1, 1ull << 31, "a positive number of bytes (at most 2147483648)"},
    {"fail_ttl", 1, DAY_MS, "a positive number of milliseconds (at most 86400000)"},
    {"history", 1, 100000, "a positive number of sources (at most 100000)"},
    {"query_mem", 1, 1u << 20, "a positive number of MB (at most 1048576)"},
    {"tests_max", 1, 1u << 20, "a positive number of MB (at most 1048576)"},
    {"llm_timeout", 1, DAY_MS, "a positive number of milliseconds (at most 86400000)"},
    {"llm_max_tokens", 1, 10000000, "a positive number of tokens (at most 10000000)"},
    {"repair_rounds", 0, 100, "a number of rounds from 0 to 100"},
    {"llm_calls_per_hour", 0, 4000000000ull, "a number of calls (0: unlimited)"},
    {"llm_tokens_per_hour", 0, 1ull << 62, "a number of tokens (0: unlimited)"},
    {"versions", 1, 5, "a number of versions from 1 to 5"},
    {"validate", 0, 1, "0 (off) or 1 (on)"},
};

static int check_one(const char *opt, size_t len)
{
	char text[128], *eq, *end;
	unsigned long long v;
	size_t i;

	if (len >= sizeof(text))
		len = sizeof(text) - 1;
	memcpy(text, opt, len);
	text[len] = '\0';
	eq = strchr(text, '=');
	if (!eq)
		return 0;
	for (i = 0; i < sizeof(numopts) / sizeof(numopts[0]); i++) {
		const struct numopt *o = &numopts[i];

		if (strlen(o->name) != (size_t)(eq - text) || strncmp(text, o->name, eq - text))
			continue;
		errno = 0;
		v = isdigit((unsigned char)eq[1]) ? strtoull(eq + 1, &end, 10) : 0;
		if (!isdigit((unsigned char)eq[1]) || *end || errno || v < o->min || v > o->max) {
			fprintf(stderr, "seglamfs: -o %s: must be %s\n", text, o->what);
			return -1;
		}
	}
	return 0;
}

/* One -o argument: comma-separated options (a backslash escapes a comma). */
static int check_list(const char *list)
{
	const char *p = list;

	while (*p) {
		const char *end = p;

		while (*end && *end != ',') {
			if (*end == '\\' && end[1])
				end++;
			end++;
		}
		if (check_one(p, (size_t)(end - p)) != 0)
			return -1;
		p = *end ? end + 1 : end;
	}
	return 0;
}

int options_check_numbers(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			if (check_list(argv[++i]) != 0)
				return -1;
		} else if (!strncmp(argv[i], "-o", 2) && argv[i][2]) {
			if (check_list(argv[i] + 2) != 0)
				return -1;
		}
	}
	return 0;
}
