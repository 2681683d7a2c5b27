/*
 * nearest: the existing types a new procedure may call, for synthesis prompts
 * (composition, see seglam.h: seglam_call).
 *
 * "Nearest" is word overlap: the words of each stored type's name against the
 * words of the new type's name and spec; the best few are then re-ranked with
 * their own spec's words too.  Bounded work: at most NEAREST_SCAN types of the
 * store are looked at by name, and only the best NEAREST_CANDIDATES are opened.
 * The names come from a walk of the store kept for NEAREST_FRESH_MS (nearest.c),
 * as a synthesis must not cost more for each type the store holds.
 */
#ifndef SEGLAM_NEAREST_H
#define SEGLAM_NEAREST_H

#include <stddef.h>

#include "llm.h"

#define NEAREST_SCAN 20000
#define NEAREST_CANDIDATES 32
#define NEAREST_MAX 5

/*
 * Up to @max (at most NEAREST_MAX) existing types with a source.c, other than
 * @type, nearest first, each with its spec and one example from its tests/.
 * Returns how many (>= 0); free with nearest_free().
 */
size_t nearest_types(const char *type, const char *spec, size_t max, struct llm_callable **out);
void nearest_free(struct llm_callable *c, size_t n);

/* @type was made or changed by this daemon: a candidate from now on, without
 * waiting for the next walk of the store. */
void nearest_note(const char *type);
/* Frees the names kept between syntheses (at unmount). */
void nearest_shutdown(void);

#endif
