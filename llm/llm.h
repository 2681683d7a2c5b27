/*
 * llm: the LLM client.  Knows HTTP (libcurl), JSON (cJSON) and prompts; knows
 * nothing about FUSE or the store.
 *
 * One call, llm_complete(), sends a system + user prompt to the configured provider
 * (openai, anthropic, command, none) with timeouts, retries with backoff and
 * jitter, and a bounded total time.  llm_reply_code() pulls the procedure out of
 * whatever a model sends back; llm_prompt_*() build the prompts from one
 * reviewable template file (llm/prompt.txt, compiled in).
 *
 * The API key is never put into logs, error messages or returned text.
 */
#ifndef SEGLAM_LLM_H
#define SEGLAM_LLM_H

#include <stddef.h>

#include "buf.h"

/*
 * LLM_UNSET (0, what a zeroed config holds) lets llm_config_resolve() pick from
 * the environment; LLM_NONE is an explicit choice of no LLM that it keeps.
 */
enum llm_provider { LLM_UNSET = 0, LLM_NONE, LLM_OPENAI, LLM_ANTHROPIC, LLM_COMMAND };

struct llm_config {
	enum llm_provider provider;
	char *url; /* base URL, e.g. https://api.openai.com/v1 */
	char *model;
	char *api_key;		     /* secret */
	char *command;		     /* for LLM_COMMAND: sh -c COMMAND, prompt on stdin */
	char *max_tokens_field;	     /* "max_tokens" (default) or "max_completion_tokens" */
	unsigned max_tokens;	     /* default 4096 */
	unsigned connect_timeout_ms; /* default 5000 */
	unsigned request_timeout_ms; /* one HTTP request or command run; default 120000 */
	unsigned total_timeout_ms;   /* all retries of one llm_complete(); default 300000 */
	unsigned max_retries;	     /* default 4 */
};

/*
 * Fill @cfg from SEGLAM_LLM, SEGLAM_LLM_URL, SEGLAM_LLM_MODEL, SEGLAM_LLM_API_KEY
 * (falling back to OPENAI_API_KEY / ANTHROPIC_API_KEY), SEGLAM_LLM_COMMAND, with
 * defaults for the rest.  Fields already set (non-NULL / non-zero, a provider
 * other than LLM_UNSET) are kept, so command-line options win.  Never leaves
 * LLM_UNSET.  Returns 0 or -EINVAL with a message in @err.
 */
int llm_config_resolve(struct llm_config *cfg, struct buf *err);
void llm_config_free(struct llm_config *cfg);
const char *llm_provider_name(enum llm_provider p);
/* "openai", "anthropic", "command" or "none" (any case); 0 or -EINVAL. */
int llm_provider_parse(const char *name, enum llm_provider *p);
/* Host part of the URL (for provenance), "" when none. Caller frees. */
char *llm_url_host(const char *url);

struct llm_reply {
	struct buf text;	    /* the model's reply text */
	long tokens_in, tokens_out; /* -1 when the provider did not say */
	unsigned attempts;	    /* HTTP requests made */
};

/*
 * Returns 0 with @reply filled; otherwise -EIO (unreachable, timed out, server
 * error after retries, malformed reply), -EACCES (401/403), -EINVAL (400/404),
 * -EDQUOT (insufficient quota), -ENOSYS (provider none), with a one-line reason in
 * @err that never contains the API key.
 */
int llm_complete(const struct llm_config *cfg, const char *system, const char *user,
		 struct llm_reply *reply, struct buf *err);
void llm_reply_free(struct llm_reply *reply);

/* A test case: input and exact expected answer. */
struct llm_case {
	char *name;
	struct buf in, out;
};

/* An existing type a new procedure may call with seglam_call (composition). */
struct llm_callable {
	char *type;
	char *spec;		 /* may be NULL */
	struct llm_case example; /* one of its tests, when has_example */
	int has_example;
};

struct llm_prompt_input {
	const char *type;
	const char *spec;	      /* may be NULL */
	const struct llm_case *cases; /* tests/ of the type */
	size_t ncases;
	const char *prev_source; /* for a repair round, else NULL */
	const char *failure;	 /* compiler message or failing case, else NULL */
	/* Composition: the nearest existing types it may call (none: no section). */
	const struct llm_callable *callable;
	size_t ncallable;
	/* Inputs that were asked (examples of the input's form), or none. */
	const struct llm_case *inputs;
	size_t ninputs;
	/* The failure is a disagreement with direct answers: explain withdrawal. */
	int disagreement;
};

void llm_prompt_build(const struct llm_prompt_input *in, struct buf *system, struct buf *user);

/*
 * Extract the procedure from a model reply: ignores <think>...</think>, picks the
 * fenced block (```c, ```C, ```cpp, or no language) that defines seglam_run, or
 * bare code.  Returns 0 with the code in @code, -ENOENT when there is none.
 */
int llm_reply_code(const char *reply, size_t len, struct buf *code);

/*
 * Extract optional test cases the reply carried (format defined by the prompt).
 * Returns the number found (>= 0); *cases is a malloc'd array to free with
 * llm_cases_free().
 */
int llm_reply_cases(const char *reply, size_t len, struct llm_case **cases);
void llm_cases_free(struct llm_case *cases, size_t n);

/*
 * Validation replies: the `INPUT => TEXT` lines of every block tagged @tag
 * ("answers", "rejects", "withdraw"), unescaped as in a tests block, TEXT as
 * written (no newline appended).  Returns the number found; free with
 * llm_cases_free().
 */
int llm_reply_lines(const char *reply, size_t len, const char *tag, struct llm_case **cases);

/* The request for direct answers: shows the type, never a procedure. */
struct llm_answers_input {
	const char *type;
	const char *spec;	      /* may be NULL */
	const struct llm_case *cases; /* tests/ (answers known) */
	size_t ncases;
	const struct llm_case *inputs; /* inputs to answer (their .in only) */
	size_t ninputs;
	unsigned picks; /* how many more inputs the LLM picks itself (0: none) */
};

void llm_prompt_answers(const struct llm_answers_input *in, struct buf *system, struct buf *user);

#endif
