/*
 * abi: what procedures may call (prefix seglam_ for the ABI itself, worker_
 * otherwise): everything declared in include/, nothing else.  worker_syms is the
 * one list of it: compile.c gives tcc these addresses and refuses an image that
 * reaches anything else.  Also the worker's own allocation (worker_malloc: out
 * of memory ends the process with WORKER_EXIT_OOM) and the seglam_call stub.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "worker_int.h"

struct seglam_out worker_out;

static void worker_die_oom(void)
{
	/* Exit code, not a message: after seccomp only fd 1 exists and it carries frames. */
	_exit(WORKER_EXIT_OOM);
}

static int seglam_write(seglam_out *out, const void *buf, size_t len)
{
	if (out->overflow)
		return -1;
	if (len > out->cap - out->len) {
		out->overflow = true;
		return -1;
	}
	memcpy(out->data + out->len, buf, len);
	out->len += len;
	out->data[out->len] = '\0';
	return 0;
}

static int __attribute__((format(printf, 2, 3)))
seglam_printf(seglam_out *out, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (out->overflow)
		return -1;
	room = out->cap - out->len;
	va_start(ap, fmt);
	n = vsnprintf(out->data + out->len, room + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > room) {
		out->data[out->len] = '\0';
		out->overflow = true;
		return -1;
	}
	out->len += (size_t)n;
	return 0;
}

/* Allocation failure under RLIMIT_AS ends the run with a clear "out of memory"
 * instead of a NULL dereference reported as a crash.  The worker's own
 * allocations go through worker_malloc too: one exit for out of memory. */
void *worker_malloc(size_t n)
{
	void *p = malloc(n);

	if (!p && n)
		worker_die_oom();
	return p;
}

static void *worker_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p && n && size)
		worker_die_oom();
	return p;
}

static void *worker_realloc(void *old, size_t n)
{
	void *p = realloc(old, n);

	if (!p && n)
		worker_die_oom();
	return p;
}

/*
 * The call stub, in a run's child: a FRAME_CALL on fd 1 (the child's pipe to the
 * zygote, which relays it to the daemon), the answer frame back on
 * WORKER_CHILD_FD (the zygote passes it on from the daemon; frame.h).  The daemon
 * does the ask; this process never sees the callee's code.  An answer stays valid
 * until the run ends.  A broken pipe mid-call means the run is being given up:
 * exit.
 */
/* Where call answers come from: the run child's second pipe, or fd 0 itself in a
 * -o worker_reuse worker (which talks to the daemon directly). */
int worker_call_fd = WORKER_CHILD_FD;

/* Answers seglam_call returned: they stay valid until seglam_run returns (the ABI
 * says so).  A run's child never frees them (it ends with its run); a
 * worker_reuse worker frees them after each run. */
struct worker_held {
	struct worker_held *next;
	char data[];
};

static struct worker_held *worker_held;

static const char *seglam_call(const char *type, const char *in, size_t len, size_t *n)
{
	uint8_t hdr[FRAME_RESP_HDR], rhdr[FRAME_REQ_HDR];
	struct worker_held *h;
	size_t tl;
	uint32_t rlen;

	if (n)
		*n = 0;
	if (!type || (!in && len))
		return NULL;
	tl = strnlen(type, FRAME_CALL_TYPE_MAX + 1);
	if (tl == 0 || tl > FRAME_CALL_TYPE_MAX || len > worker_out.cap)
		return NULL; /* not a type name, or an input the daemon would refuse */
	/* a batch's answers so far first: frames leave in order */
	worker_batch_flush();
	frame_put_response(hdr, FRAME_CALL, (uint32_t)(tl + 1 + len));
	if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
	    frame_write_full(1, type, tl + 1, -1) < 0 ||
	    (len && frame_write_full(1, in, len, -1) < 0))
		_exit(WORKER_EXIT_IO);
	if (frame_read_full(worker_call_fd, rhdr, sizeof(rhdr), -1) != (ssize_t)sizeof(rhdr))
		_exit(WORKER_EXIT_IO);
	rlen = frame_get_request(rhdr);
	if (rlen == FRAME_CALL_FAILED)
		return NULL;
	if (rlen > worker_out.cap)
		_exit(WORKER_EXIT_IO);
	h = worker_malloc(sizeof(*h) + rlen + 1);
	if (frame_read_full(worker_call_fd, h->data, rlen, -1) != (ssize_t)rlen)
		_exit(WORKER_EXIT_IO);
	h->data[rlen] = '\0';
	h->next = worker_held;
	worker_held = h;
	if (n)
		*n = rlen;
	return h->data;
}

/* After each run of a worker_reuse worker: the answers its calls returned. */
void worker_held_free(void)
{
	while (worker_held) {
		struct worker_held *h = worker_held;

		worker_held = h->next;
		free(h);
	}
}

/* clang-format off: one table, grouped by header */
#define WORKER_SYM(f)                                                                              \
	{                                                                                          \
#f, (const void *)&f                                                               \
	}
const struct worker_sym worker_syms[] = {
    /* seglam.h */
    WORKER_SYM(seglam_write),
    WORKER_SYM(seglam_printf),
    WORKER_SYM(seglam_call),
    /* string.h (memcpy, memmove and memset are also emitted by tcc itself) */
    WORKER_SYM(memcpy),
    WORKER_SYM(memmove),
    WORKER_SYM(memset),
    WORKER_SYM(memcmp),
    WORKER_SYM(memchr),
    WORKER_SYM(memrchr),
    WORKER_SYM(memmem),
    WORKER_SYM(strlen),
    WORKER_SYM(strnlen),
    WORKER_SYM(strcpy),
    WORKER_SYM(strncpy),
    WORKER_SYM(strcat),
    WORKER_SYM(strncat),
    WORKER_SYM(strcmp),
    WORKER_SYM(strncmp),
    WORKER_SYM(strcoll),
    WORKER_SYM(strcasecmp),
    WORKER_SYM(strncasecmp),
    WORKER_SYM(strchr),
    WORKER_SYM(strrchr),
    WORKER_SYM(strstr),
    WORKER_SYM(strcasestr),
    WORKER_SYM(strspn),
    WORKER_SYM(strcspn),
    WORKER_SYM(strpbrk),
    WORKER_SYM(strtok),
    WORKER_SYM(strtok_r),
    WORKER_SYM(strsep),
    WORKER_SYM(strdup),
    WORKER_SYM(strndup),
    /* stdlib.h */
    {"malloc", (const void *)&worker_malloc},
    {"calloc", (const void *)&worker_calloc},
    {"realloc", (const void *)&worker_realloc},
    WORKER_SYM(free),
    WORKER_SYM(atoi),
    WORKER_SYM(atol),
    WORKER_SYM(atoll),
    WORKER_SYM(atof),
    WORKER_SYM(strtol),
    WORKER_SYM(strtoul),
    WORKER_SYM(strtoll),
    WORKER_SYM(strtoull),
    WORKER_SYM(strtod),
    WORKER_SYM(strtof),
    WORKER_SYM(abs),
    WORKER_SYM(labs),
    WORKER_SYM(llabs),
    WORKER_SYM(div),
    WORKER_SYM(ldiv),
    WORKER_SYM(lldiv),
    WORKER_SYM(qsort),
    WORKER_SYM(bsearch),
    WORKER_SYM(abort),
    /* stdio.h: strings only */
    WORKER_SYM(snprintf),
    WORKER_SYM(sprintf),
    WORKER_SYM(vsnprintf),
    WORKER_SYM(vsprintf),
    WORKER_SYM(sscanf),
    WORKER_SYM(vsscanf),
    /* ctype.h */
    WORKER_SYM(isalnum),
    WORKER_SYM(isalpha),
    WORKER_SYM(isblank),
    WORKER_SYM(iscntrl),
    WORKER_SYM(isdigit),
    WORKER_SYM(isgraph),
    WORKER_SYM(islower),
    WORKER_SYM(isprint),
    WORKER_SYM(ispunct),
    WORKER_SYM(isspace),
    WORKER_SYM(isupper),
    WORKER_SYM(isxdigit),
    WORKER_SYM(tolower),
    WORKER_SYM(toupper),
    /* math.h */
    WORKER_SYM(fabs),
    WORKER_SYM(floor),
    WORKER_SYM(ceil),
    WORKER_SYM(round),
    WORKER_SYM(trunc),
    WORKER_SYM(rint),
    WORKER_SYM(nearbyint),
    WORKER_SYM(lround),
    WORKER_SYM(lrint),
    WORKER_SYM(fmod),
    WORKER_SYM(remainder),
    WORKER_SYM(modf),
    WORKER_SYM(frexp),
    WORKER_SYM(ldexp),
    WORKER_SYM(sqrt),
    WORKER_SYM(cbrt),
    WORKER_SYM(hypot),
    WORKER_SYM(pow),
    WORKER_SYM(exp),
    WORKER_SYM(exp2),
    WORKER_SYM(expm1),
    WORKER_SYM(log),
    WORKER_SYM(log2),
    WORKER_SYM(log10),
    WORKER_SYM(log1p),
    WORKER_SYM(sin),
    WORKER_SYM(cos),
    WORKER_SYM(tan),
    WORKER_SYM(asin),
    WORKER_SYM(acos),
    WORKER_SYM(atan),
    WORKER_SYM(atan2),
    WORKER_SYM(sinh),
    WORKER_SYM(cosh),
    WORKER_SYM(tanh),
    WORKER_SYM(fmin),
    WORKER_SYM(fmax),
    WORKER_SYM(copysign),
    WORKER_SYM(fabsf),
    WORKER_SYM(floorf),
    WORKER_SYM(ceilf),
    WORKER_SYM(roundf),
    WORKER_SYM(sqrtf),
    WORKER_SYM(powf),
    WORKER_SYM(fmodf),
};
/* clang-format on */

const size_t worker_nsyms = sizeof(worker_syms) / sizeof(worker_syms[0]);
