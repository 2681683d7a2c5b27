/* fuzz openai: llm/openai.c llm_openai_parse (a 2xx chat-completions body from
 * the server, which may be any OpenAI-compatible server or a proxy) and
 * llm/http.c llm_http_error_message (the body of an error status). */
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "http.h"

int fuzz_openai(const uint8_t *data, size_t size)
{
	char *body = malloc(size ? size : 1);
	struct llm_reply reply = {.tokens_in = -1, .tokens_out = -1};
	struct buf err = BUF_INIT, msg = BUF_INIT;
	int ret, quota = -1;

	FUZZ_CHECK(body);
	memcpy(body, data, size);
	ret = llm_openai_parse(body, size, &reply, &err);
	FUZZ_CHECK(ret == 0 || ret == -EIO);
	if (ret == 0) {
		FUZZ_CHECK(reply.tokens_in >= -1 && reply.tokens_out >= -1);
	} else {
		/* One line, with the reason. */
		FUZZ_CHECK(err.len > 0 && !memchr(err.data, '\n', err.len));
	}
	llm_http_error_message(body, size, &msg, &quota);
	FUZZ_CHECK(quota == 0 || quota == 1);
	/* A one-line message: control bytes are turned into spaces. */
	for (size_t i = 0; i < msg.len; i++)
		FUZZ_CHECK((unsigned char)msg.data[i] >= 0x20 && msg.data[i] != 0x7f);
	llm_reply_free(&reply);
	buf_free(&err);
	buf_free(&msg);
	free(body);
	return 0;
}

FUZZ_MAIN(openai)
