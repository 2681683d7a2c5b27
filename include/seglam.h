/*
 * seglam.h: the procedure ABI of seglamfs (see docs/DESIGN.md, "Procedure ABI").
 *
 * A procedure defines seglam_run().  in[len] == '\0', but the input may hold
 * NUL bytes before len.  Write the answer with seglam_write()/seglam_printf().
 * Return 0: what was written is the answer.
 * Return nonzero: the input is rejected (the read fails with EINVAL) and what was
 * written is the reason, which goes to procs/TYPE/log.
 * Answers conventionally end with a newline.
 */
#ifndef SEGLAM_H
#define SEGLAM_H

#include <stddef.h>

typedef struct seglam_out seglam_out;

int seglam_run(const char *in, size_t len, seglam_out *out);

/* Both return 0, or -1 once the answer would exceed the mount's size cap. */
int seglam_write(seglam_out *out, const void *buf, size_t len);
int seglam_printf(seglam_out *out, const char *fmt, ...);

/*
 * Composition: the answer of another TYPE for in[len], as if asked through
 * ask/TYPE/ (memo, synthesis on a miss, the callee's own tests), run in the
 * callee's own sandbox.  NUL-terminated, valid until seglam_run returns; its
 * length in *n.  NULL if TYPE rejected the input, failed, is unknown offline, or
 * the call would recurse (a cycle, or depth over 8).
 */
const char *seglam_call(const char *type, const char *in, size_t len, size_t *n);

#endif
