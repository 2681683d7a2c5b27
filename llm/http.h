/*
 * http: the HTTP retry loop the two HTTP providers (openai.c, anthropic.c) plug
 * into, and their body parsers.  Internal to llm/ (and the fuzz targets).
 */
#ifndef SEGLAM_LLM_HTTP_H
#define SEGLAM_LLM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "llm.h"

/* One POST, retried by llm_http_complete() as the error allows. */
struct llm_http_post {
	const char *provider; /* "openai": prefix of every message */
	const char *url;
	struct curl_slist *headers;
	const char *body;
	size_t body_len;
	/* Turn a 2xx body into @reply; 0 or -EIO with a reason in @err. */
	int (*parse)(const char *data, size_t len, struct llm_reply *reply, struct buf *err);
};

int llm_http_complete(const struct llm_config *cfg, const struct llm_http_post *post,
		      uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);

/* curl_slist_free_all, wiping each header first: one of them holds the API key,
 * in a copy curl_slist_append made. */
void llm_headers_free(struct curl_slist *headers);

/*
 * The human message of an error body in any of the shapes servers use; sets
 * *quota when it is OpenAI's insufficient_quota.
 */
void llm_http_error_message(const char *body, size_t len, struct buf *msg, int *quota);

/*
 * The providers' 2xx body parsers (llm_http_post.parse), exposed for the fuzz
 * targets (fuzz/): the body into @reply->text and token counts, or -EIO with a
 * reason in @err.  @data need not be NUL-terminated.
 */
int llm_openai_parse(const char *data, size_t len, struct llm_reply *reply, struct buf *err);
int llm_anthropic_parse(const char *data, size_t len, struct llm_reply *reply, struct buf *err);

#endif
