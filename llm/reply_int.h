/*
 * reply_int.h: what the files of the reply parser share (reply_scan.c, the scan
 * into fenced blocks and prose; reply.c, the procedure; reply_cases.c, the
 * `INPUT => TEXT` lines of tests and validation blocks).  Not for use outside
 * llm/reply*.c: llm.h is the interface.  Nothing here has state: no locks.
 */
#ifndef SEGLAM_LLM_REPLY_INT_H
#define SEGLAM_LLM_REPLY_INT_H

#include <stddef.h>

#include "buf.h"

#define LLM_MAX_BLOCKS 256

enum llm_lang { LLM_LANG_NONE, LLM_LANG_C, LLM_LANG_TESTS, LLM_LANG_OTHER };

struct llm_block {
	size_t off, len; /* content lines, in scan.text */
	enum llm_lang lang;
	int closed;
};

/* A reply as llm_scan() sees it (about 6 KiB: callers allocate it, not the stack). */
struct llm_scan {
	struct buf text; /* the reply, CRLF -> LF */
	struct buf bare; /* lines outside fences and reasoning */
	struct llm_block blocks[LLM_MAX_BLOCKS];
	size_t nblocks;
};

static inline int llm_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Scan @len bytes of @reply (any bytes, not NUL-terminated) into @sc: the text
 * with CRLF as LF, its fenced blocks, and the prose outside fences and
 * reasoning.  Free with llm_scan_free().
 */
void llm_scan(const char *reply, size_t len, struct llm_scan *sc);
void llm_scan_free(struct llm_scan *sc);
/* Whether block @b is tagged @tag (```answers, ~~~ withdraw), any case. */
int llm_block_tag_is(const struct llm_scan *sc, const struct llm_block *b, const char *tag);

#endif
