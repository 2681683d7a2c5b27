/*
 * llm_int.h: what the files of llm/ share with each other and with nobody else
 * (the HTTP retry loop the two HTTP providers plug into, the providers' entry
 * points, secret scrubbing, the embedded prompt template).
 */
#ifndef SEGLAM_LLM_INT_H
#define SEGLAM_LLM_INT_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "llm.h"

/* A provider's reply body or a command's stdout beyond this is refused. */
#define LLM_MAX_RESPONSE (16u << 20)

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

/*
 * The human message of an error body in any of the shapes servers use; sets
 * *quota when it is OpenAI's insufficient_quota.
 */
void llm_http_error_message(const char *body, size_t len, struct buf *msg, int *quota);

int llm_openai_complete(const struct llm_config *cfg, const char *system, const char *user,
			uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);
int llm_anthropic_complete(const struct llm_config *cfg, const char *system, const char *user,
			   uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);
/*
 * The providers' 2xx body parsers (llm_http_post.parse), exposed for the fuzz
 * targets (fuzz/): the body into @reply->text and token counts, or -EIO with a
 * reason in @err.  @data need not be NUL-terminated.
 */
int llm_openai_parse(const char *data, size_t len, struct llm_reply *reply, struct buf *err);
int llm_anthropic_parse(const char *data, size_t len, struct llm_reply *reply, struct buf *err);
int llm_command_complete(const struct llm_config *cfg, const char *system, const char *user,
			 uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);

/* @base without trailing slashes, then @path ("/chat/completions"). */
void llm_url_join(struct buf *url, const char *base, const char *path);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t llm_now_ms(void);
/* Replace every occurrence of @secret in @b by "[redacted]". */
void llm_scrub(struct buf *b, const char *secret);
/* Append @s with control bytes turned into spaces, at most @max bytes of it. */
void llm_add_oneline(struct buf *b, const char *s, size_t len, size_t max);

/* llm/prompt.txt, generated into prompt_txt.c by embed.py at build time. */
extern const char llm_prompt_txt[];
extern const size_t llm_prompt_txt_len;

#endif
