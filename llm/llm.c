/*
 * llm: llm_complete(), the one entry point that picks the provider, bounds the
 * whole call by total_timeout_ms, and makes sure the API key leaves in nothing
 * it returns; plus the small helpers the providers share.
 */
#include "llm.h"
#include "llm_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"

uint64_t llm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void llm_url_join(struct buf *url, const char *base, const char *path)
{
	size_t n = base ? strlen(base) : 0;

	while (n && base[n - 1] == '/')
		n--;
	buf_add(url, base ? base : "", n);
	buf_adds(url, path);
}

void llm_scrub(struct buf *b, const char *secret)
{
	static const char red[] = "[redacted]";
	struct buf out = BUF_INIT;
	size_t n, i = 0;
	char *hit;

	if (!secret || !*secret || !b->len)
		return;
	n = strlen(secret);
	if (!memmem(b->data, b->len, secret, n))
		return;
	while (i < b->len && (hit = memmem(b->data + i, b->len - i, secret, n))) {
		buf_add(&out, b->data + i, (size_t)(hit - (b->data + i)));
		buf_add(&out, red, sizeof(red) - 1);
		i = (size_t)(hit - b->data) + n;
	}
	buf_add(&out, b->data + i, b->len - i);
	explicit_bzero(b->data, b->len);
	buf_free(b);
	*b = out;
}

void llm_add_oneline(struct buf *b, const char *s, size_t len, size_t max)
{
	size_t i;

	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	for (i = 0; i < len && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_addc(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	if (i < len)
		buf_adds(b, "...");
}

int llm_complete(const struct llm_config *cfg, const char *system, const char *user,
		 struct llm_reply *reply, struct buf *err)
{
	uint64_t start = llm_now_ms(), deadline;
	size_t errlen = err->len;
	int ret;

	memset(reply, 0, sizeof(*reply));
	reply->tokens_in = reply->tokens_out = -1;
	deadline = start + (cfg->total_timeout_ms ? cfg->total_timeout_ms : 300000);
	switch (cfg->provider) {
	case LLM_OPENAI:
		ret = llm_openai_complete(cfg, system, user, deadline, reply, err);
		break;
	case LLM_ANTHROPIC:
		ret = llm_anthropic_complete(cfg, system, user, deadline, reply, err);
		break;
	case LLM_COMMAND:
		ret = llm_command_complete(cfg, system, user, deadline, reply, err);
		break;
	case LLM_NONE:
	default:
		buf_adds(err, "llm: no LLM configured (set SEGLAM_LLM_URL, SEGLAM_LLM_API_KEY "
			      "or SEGLAM_LLM)");
		ret = -ENOSYS;
		break;
	}

	/*
	 * Last line of defence: whatever a server, a command or curl said, the key
	 * does not leave here.  Short keys are placeholders ("ollama", "none") that
	 * local servers ignore; scrubbing them from a reply would mangle code.
	 */
	if (err->len > errlen) {
		struct buf tail = BUF_INIT;

		buf_add(&tail, err->data + errlen, err->len - errlen);
		llm_scrub(&tail, cfg->api_key);
		buf_truncate(err, errlen);
		buf_add(err, tail.data, tail.len);
		buf_free(&tail);
	}
	if (cfg->api_key && strlen(cfg->api_key) >= 16)
		llm_scrub(&reply->text, cfg->api_key);

	if (ret) {
		buf_free(&reply->text);
		log_debug("llm: %s failed after %u attempts in %llu ms: %s",
			  llm_provider_name(cfg->provider), reply->attempts,
			  (unsigned long long)(llm_now_ms() - start), buf_str(err) + errlen);
	} else {
		log_info("llm: %s %s: %ld+%ld tokens, %u attempts, %llu ms",
			 llm_provider_name(cfg->provider), cfg->model ? cfg->model : "-",
			 reply->tokens_in, reply->tokens_out, reply->attempts,
			 (unsigned long long)(llm_now_ms() - start));
	}
	return ret;
}

void llm_reply_free(struct llm_reply *reply)
{
	buf_free(&reply->text);
	reply->tokens_in = reply->tokens_out = -1;
	reply->attempts = 0;
}
