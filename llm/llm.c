/*
 * llm: the provider table and llm_complete(), the one entry point that picks the
 * provider, bounds the whole call by total_timeout_ms, and makes sure the API key
 * leaves in nothing it returns.
 */
#include "llm.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "log.h"
#include "provider.h"
#include "text.h"

/* Indexed by enum llm_provider; NULL complete: no LLM to call. */
static const struct {
	const char *name;
	llm_complete_fn *complete;
} llm_providers[] = {
    [LLM_UNSET] = {"unset", NULL},
    [LLM_NONE] = {"none", NULL},
    [LLM_OPENAI] = {"openai", llm_openai_complete},
    [LLM_ANTHROPIC] = {"anthropic", llm_anthropic_complete},
    [LLM_COMMAND] = {"command", llm_command_complete},
};

#define LLM_NPROVIDERS (sizeof(llm_providers) / sizeof(llm_providers[0]))

const char *llm_provider_name(enum llm_provider p)
{
	return (unsigned)p < LLM_NPROVIDERS ? llm_providers[p].name : "unknown";
}

int llm_provider_parse(const char *name, enum llm_provider *p)
{
	/* "unset" is a state, not a choice. */
	for (unsigned i = LLM_NONE; i < LLM_NPROVIDERS; i++) {
		if (!strcasecmp(name, llm_providers[i].name)) {
			*p = (enum llm_provider)i;
			return 0;
		}
	}
	return -EINVAL;
}

int llm_complete(const struct llm_config *cfg, const char *system, const char *user,
		 struct llm_reply *reply, struct buf *err)
{
	uint64_t start = clock_mono_ms(), deadline;
	size_t errlen = err->len;
	int ret;

	memset(reply, 0, sizeof(*reply));
	reply->tokens_in = reply->tokens_out = -1;
	deadline = start + (cfg->total_timeout_ms ? cfg->total_timeout_ms : 300000);
	if ((unsigned)cfg->provider < LLM_NPROVIDERS && llm_providers[cfg->provider].complete) {
		ret =
		    llm_providers[cfg->provider].complete(cfg, system, user, deadline, reply, err);
	} else {
		buf_adds(err, "llm: no LLM configured (set SEGLAM_LLM_URL, SEGLAM_LLM_API_KEY "
			      "or SEGLAM_LLM)");
		ret = -ENOSYS;
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
			  (unsigned long long)(clock_mono_ms() - start), buf_str(err) + errlen);
	} else {
		log_info("llm: %s %s: %ld+%ld tokens, %u attempts, %llu ms",
			 llm_provider_name(cfg->provider), cfg->model ? cfg->model : "-",
			 reply->tokens_in, reply->tokens_out, reply->attempts,
			 (unsigned long long)(clock_mono_ms() - start));
	}
	return ret;
}

void llm_reply_free(struct llm_reply *reply)
{
	buf_free(&reply->text);
	reply->tokens_in = reply->tokens_out = -1;
	reply->attempts = 0;
}
