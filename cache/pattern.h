/*
 * pattern: phrasings of a type's questions, with slots, and matching them.
 *
 * A pattern line is literal text with slots `{NAME}`, optionally followed by
 * ` => TEMPLATE` building the type's input from the slots; without a template
 * the input is the slots' values joined by one space, in order.  `#` starts a
 * comment line.  Matching ignores ASCII case, treats a run of white space as one
 * space and ignores white space and `?`, `.`, `!` at either end; each slot takes
 * one or more characters, left to right, the shortest that lets the rest match.
 *
 * Pure functions of their arguments, no I/O: unit-tested in tests/unit.
 */
#ifndef SEGLAM_PATTERN_H
#define SEGLAM_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define PAT_SLOTS_MAX 16
#define PAT_LINE_MAX 1024
#define PAT_QUESTION_MAX 4096

struct pat {
	char *text;	 /* normalized pattern (ends trimmed, white space runs as one space) */
	char *tmpl;	 /* the template after " => ", or NULL */
	unsigned lits;	 /* literal characters: the weight of a match */
	unsigned nslots; /* slots in text, each named once */
	char *key;	 /* set by the routing index: the literal word it is filed under */
};

/*
 * Normalize a question or pattern: white space runs become one space, white space
 * and ?.! at both ends are dropped.  Case is kept (slot values keep it).
 */
void pat_normalize(const char *s, size_t len, struct buf *out);

/*
 * Parse one line of a patterns file.  Returns 1 with *@p filled, 0 for a blank or
 * comment line, -EINVAL with the reason in @why.
 */
int pat_parse(const char *line, size_t len, struct pat *p, struct buf *why);
void pat_free(struct pat *p);

/*
 * Match normalized question @q against @p.  Returns true with the type's input
 * in @input (reset first).
 */
bool pat_match(const struct pat *p, const char *q, size_t qlen, struct buf *input);
/* The same, spending matching steps from *@budget (a miss when it runs out). */
bool pat_match_budget(const struct pat *p, const char *q, size_t qlen, struct buf *input,
		      unsigned long *budget);

/*
 * Call @fn for each whole literal word of @p (literal text bounded by a space or
 * an end on both sides), lowercased, with its length.
 */
void pat_words(const struct pat *p, void (*fn)(const char *w, size_t len, void *arg), void *arg);

#endif
