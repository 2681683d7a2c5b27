/* fuzz reply: llm/reply*.c llm_reply_code, llm_reply_cases and llm_reply_lines, which pull the
 * procedure and optional test cases out of whatever a model sent back (fences,
 * <think> blocks, prose, any bytes). */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "llm.h"

int fuzz_reply(const uint8_t *data, size_t size)
{
	/* A private, not NUL-terminated copy: the parser must be bounded by @size. */
	char *reply = malloc(size ? size : 1);
	struct buf code = BUF_INIT;
	struct llm_case *cases = NULL;
	int ret, n;

	FUZZ_CHECK(reply);
	memcpy(reply, data, size);
	ret = llm_reply_code(reply, size, &code);
	FUZZ_CHECK(ret == 0 || ret == -ENOENT);
	if (ret == 0) {
		/* The code ends with exactly one newline and is a C string. */
		FUZZ_CHECK(code.len >= 1 && code.data[code.len - 1] == '\n');
		FUZZ_CHECK(code.data[code.len] == '\0');
		/* CRLF became LF and nothing was invented: never longer than the reply + 1. */
		FUZZ_CHECK(code.len <= size + 1);
	} else {
		FUZZ_CHECK(code.len == 0);
	}

	n = llm_reply_cases(reply, size, &cases);
	FUZZ_CHECK(n >= 0 && n <= 64);
	FUZZ_CHECK(n == 0 || cases);
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(cases[i].name);
		/* An input is a valid (NUL-terminated) buffer even when empty. */
		FUZZ_CHECK(cases[i].in.data && cases[i].in.data[cases[i].in.len] == '\0');
		FUZZ_CHECK(cases[i].in.len <= 4096);
		/* The answer gets one "\n" appended. */
		FUZZ_CHECK(cases[i].out.len >= 1 && cases[i].out.len <= 4097);
		FUZZ_CHECK(cases[i].out.data[cases[i].out.len - 1] == '\n');
	}
	llm_cases_free(cases, (size_t)n);

	/* Validation blocks (answers, rejects, withdraw): TEXT as written. */
	n = llm_reply_lines(reply, size, "answers", &cases);
	FUZZ_CHECK(n >= 0 && n <= 64);
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(cases[i].in.data && cases[i].in.data[cases[i].in.len] == '\0');
		FUZZ_CHECK(cases[i].out.data && cases[i].out.data[cases[i].out.len] == '\0');
		FUZZ_CHECK(cases[i].in.len <= 4096 && cases[i].out.len <= 4096);
	}
	llm_cases_free(cases, (size_t)n);
	buf_free(&code);
	free(reply);
	return 0;
}

FUZZ_MAIN(reply)
