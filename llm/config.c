/*
 * config: where the LLM settings come from (options already in the struct, then
 * the environment, then defaults), and the host of a URL for provenance.
 */
#include "llm.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "xalloc.h"

#define LLM_DEFAULT_OPENAI_URL "https://api.openai.com/v1"
#define LLM_DEFAULT_ANTHROPIC_URL "https://api.anthropic.com"
/*
 * Default models: a cheap model of each vendor that writes good small C.  Local
 * OpenAI-compatible servers (Ollama, llama.cpp, vLLM) serve other names, so
 * they need SEGLAM_LLM_MODEL (llama.cpp ignores the name).
 */
#define LLM_DEFAULT_OPENAI_MODEL "gpt-4o-mini"
#define LLM_DEFAULT_ANTHROPIC_MODEL "claude-sonnet-4-5"

static const char *llm_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* A copy of @s without surrounding whitespace (people paste keys with a newline). */
static char *llm_strdup_trim(const char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return xstrndup(s, n);
}

static int llm_has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int llm_env_uint(const char *name, unsigned *val, struct buf *err)
{
	const char *v = llm_env(name);
	char *end;
	unsigned long n;

	if (!v || *val)
		return 0;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n == 0 || n > 0x7fffffffUL) {
		buf_printf(err, "%s: not a positive number: '%s'", name, v);
		return -EINVAL;
	}
	*val = (unsigned)n;
	return 0;
}

/* Keep @*field when set, else take the environment variable, else @def. */
static void llm_pick(char **field, const char *envname, const char *def)
{
	const char *v;

	if (*field)
		return;
	v = envname ? llm_env(envname) : NULL;
	if (!v)
		v = def;
	if (v)
		*field = llm_strdup_trim(v);
}

/*
 * Provider inference when SEGLAM_LLM is unset (docs/DESIGN.md, "LLM configuration"): openai when a
 * URL or a key for it is set.  Beyond the contract, and only when nothing points
 * at openai: a SEGLAM_LLM_COMMAND alone selects command, an ANTHROPIC_API_KEY
 * alone selects anthropic; both are what such a user obviously means.
 */
static enum llm_provider llm_infer_provider(const struct llm_config *cfg)
{
	if (cfg->url || cfg->api_key || llm_env("SEGLAM_LLM_URL") ||
	    llm_env("SEGLAM_LLM_API_KEY") || llm_env("OPENAI_API_KEY"))
		return LLM_OPENAI;
	if (cfg->command || llm_env("SEGLAM_LLM_COMMAND"))
		return LLM_COMMAND;
	if (llm_env("ANTHROPIC_API_KEY"))
		return LLM_ANTHROPIC;
	return LLM_NONE;
}

int llm_config_resolve(struct llm_config *cfg, struct buf *err)
{
	/* A URL already set came from -o llm_url: the message names where it came from. */
	const char *url_from = cfg->url ? "-o llm_url" : "SEGLAM_LLM_URL";
	const char *v;
	int ret = 0;

	/* An option (or the caller) chose: the environment does not override it. */
	if (cfg->provider == LLM_UNSET) {
		v = llm_env("SEGLAM_LLM");
		if (v) {
			if (llm_provider_parse(v, &cfg->provider)) {
				buf_printf(err,
					   "SEGLAM_LLM: unknown provider '%.40s' (use openai, "
					   "anthropic, command or none)",
					   v);
				ret = -EINVAL;
				goto out;
			}
		} else {
			cfg->provider = llm_infer_provider(cfg);
		}
	}

	switch (cfg->provider) {
	case LLM_OPENAI:
		llm_pick(&cfg->url, "SEGLAM_LLM_URL", LLM_DEFAULT_OPENAI_URL);
		llm_pick(&cfg->model, "SEGLAM_LLM_MODEL", LLM_DEFAULT_OPENAI_MODEL);
		/* Never fall back to the other vendor's key: that would leak it. */
		llm_pick(&cfg->api_key, "SEGLAM_LLM_API_KEY", llm_env("OPENAI_API_KEY"));
		break;
	case LLM_ANTHROPIC:
		llm_pick(&cfg->url, "SEGLAM_LLM_URL", LLM_DEFAULT_ANTHROPIC_URL);
		llm_pick(&cfg->model, "SEGLAM_LLM_MODEL", LLM_DEFAULT_ANTHROPIC_MODEL);
		llm_pick(&cfg->api_key, "SEGLAM_LLM_API_KEY", llm_env("ANTHROPIC_API_KEY"));
		break;
	case LLM_COMMAND:
		llm_pick(&cfg->command, "SEGLAM_LLM_COMMAND", NULL);
		llm_pick(&cfg->model, "SEGLAM_LLM_MODEL", NULL);
		if (!cfg->command || !*cfg->command) {
			buf_adds(err, "command: SEGLAM_LLM_COMMAND is not set (a shell command "
				      "reading the prompt on stdin, writing the reply on stdout)");
			ret = -EINVAL;
			goto out;
		}
		break;
	case LLM_NONE:
		break;
	default:
		buf_printf(err, "llm: invalid provider %d", (int)cfg->provider);
		ret = -EINVAL;
		goto out;
	}

	if (cfg->url) {
		size_t n = strlen(cfg->url);

		while (n && cfg->url[n - 1] == '/')
			cfg->url[--n] = '\0';
		if ((strncasecmp(cfg->url, "http://", 7) && strncasecmp(cfg->url, "https://", 8)) ||
		    llm_has_ctl(cfg->url) || strchr(cfg->url, ' ')) {
			buf_printf(err, "%s: invalid %s (want http://HOST[:PORT][/PATH])",
				   llm_provider_name(cfg->provider), url_from);
			ret = -EINVAL;
			goto out;
		}
	}
	if (cfg->api_key && llm_has_ctl(cfg->api_key)) {
		/* A newline in a header is an injection; the key itself is never echoed. */
		buf_printf(err, "%s: the API key contains control characters",
			   llm_provider_name(cfg->provider));
		ret = -EINVAL;
		goto out;
	}
	if (cfg->api_key && !*cfg->api_key) {
		free(cfg->api_key);
		cfg->api_key = NULL;
	}
	if (cfg->provider == LLM_ANTHROPIC && !cfg->api_key)
		log_warn("anthropic: no API key (set SEGLAM_LLM_API_KEY or ANTHROPIC_API_KEY)");

	llm_pick(&cfg->max_tokens_field, "SEGLAM_LLM_MAX_TOKENS_FIELD", "max_tokens");
	for (const char *p = cfg->max_tokens_field; p && *p; p++) {
		if (!islower((unsigned char)*p) && *p != '_') {
			buf_adds(err, "SEGLAM_LLM_MAX_TOKENS_FIELD: want max_tokens or "
				      "max_completion_tokens");
			ret = -EINVAL;
			goto out;
		}
	}
	ret = llm_env_uint("SEGLAM_LLM_MAX_TOKENS", &cfg->max_tokens, err);
	if (ret)
		goto out;
	if (!cfg->max_tokens)
		cfg->max_tokens = 4096;
	if (!cfg->connect_timeout_ms)
		cfg->connect_timeout_ms = 5000;
	if (!cfg->request_timeout_ms)
		cfg->request_timeout_ms = 120000;
	if (!cfg->total_timeout_ms)
		cfg->total_timeout_ms = 300000;
	if (!cfg->max_retries)
		cfg->max_retries = 4;
out:
	return ret;
}

void llm_config_free(struct llm_config *cfg)
{
	if (cfg->api_key) {
		/* Do not leave the secret in freed heap memory (core dumps). */
		explicit_bzero(cfg->api_key, strlen(cfg->api_key));
		free(cfg->api_key);
	}
	free(cfg->url);
	free(cfg->model);
	free(cfg->command);
	free(cfg->max_tokens_field);
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * The host only: never the userinfo (it may hold a password) and not the port,
 * so that provenance names the service, not one deployment detail.
 */
char *llm_url_host(const char *url)
{
	const char *p, *end, *at;

	if (!url)
		return xstrdup("");
	p = strstr(url, "://");
	p = p ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	for (at = p; at < end; at++)
		if (*at == '@')
			p = at + 1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		return rb ? xstrndup(p + 1, (size_t)(rb - p - 1)) : xstrdup("");
	}
	at = memchr(p, ':', (size_t)(end - p));
	if (at)
		end = at;
	return xstrndup(p, (size_t)(end - p));
}
