/*
 * text: the string helpers the files of llm/ share (URL joining, secret
 * scrubbing, one-line excerpts of what a server said).  Internal to llm/.
 */
#ifndef SEGLAM_LLM_TEXT_H
#define SEGLAM_LLM_TEXT_H

#include <stddef.h>

#include "buf.h"

/* @base without trailing slashes, then @path ("/chat/completions"). */
void llm_url_join(struct buf *url, const char *base, const char *path);
/* Replace every occurrence of @secret in @b by "[redacted]". */
void llm_scrub(struct buf *b, const char *secret);
/* Append @s with control bytes turned into spaces, at most @max bytes of it. */
void llm_add_oneline(struct buf *b, const char *s, size_t len, size_t max);

#endif
