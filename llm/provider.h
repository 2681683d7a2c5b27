/*
 * provider: what an LLM provider is, for llm.c's provider table and nobody
 * outside llm/.
 *
 * A provider is one function: send @system and @user, fill @reply (text, token
 * counts, attempts), finish by @deadline_ms (clock_mono_ms()).  Each provider file
 * (openai.c, anthropic.c, command.c) defines exactly one; llm_complete() picks it
 * from the table, bounds the time and scrubs the key from whatever comes back.
 * Providers never call back into llm.c.
 */
#ifndef SEGLAM_LLM_PROVIDER_H
#define SEGLAM_LLM_PROVIDER_H

#include <stdint.h>

#include "llm.h"

/* A provider's reply body or a command's stdout beyond this is refused. */
#define LLM_MAX_RESPONSE (16u << 20)

typedef int llm_complete_fn(const struct llm_config *cfg, const char *system, const char *user,
			    uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);

int llm_openai_complete(const struct llm_config *cfg, const char *system, const char *user,
			uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);
int llm_anthropic_complete(const struct llm_config *cfg, const char *system, const char *user,
			   uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);
int llm_command_complete(const struct llm_config *cfg, const char *system, const char *user,
			 uint64_t deadline_ms, struct llm_reply *reply, struct buf *err);

#endif
