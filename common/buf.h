/*
 * buf: the one growable byte buffer used everywhere in seglamfs.
 *
 * The contents are always NUL-terminated (data[len] == '\0') so a buffer can be
 * handed to string functions, but may also hold binary data with embedded NULs.
 * A zeroed struct buf is a valid empty buffer.  Allocation failure aborts: the
 * daemon cannot do anything useful without memory, and checking every append
 * would hide the real logic.
 */
#ifndef SEGLAM_BUF_H
#define SEGLAM_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT                                                                                   \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void buf_grow(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/*
 * Append untrusted text (a compiler message, anything a worker sent) so that it is
 * safe in a log, a terminal or a reply: a backslash becomes \\, a tab \t, and every
 * other control byte (C0, DEL, the C1 range U+0080-U+009F) and every byte that is
 * not part of valid UTF-8 becomes \xNN, so no escape sequence, bell or forged line
 * gets through.  Newlines are kept when @keep_newlines (a message of several lines),
 * else written as \n.
 */
void buf_addrepr(struct buf *b, const void *data, size_t len, bool keep_newlines);
void buf_reset(struct buf *b);
void buf_truncate(struct buf *b, size_t len);
void buf_free(struct buf *b);
/* Hand the allocation to the caller (never NULL), leaving b empty. */
char *buf_steal(struct buf *b);
/*
 * Append untrusted bytes for a one-line message: in single quotes, at most @max
 * bytes of @data, newline/tab/quote/backslash escaped C-style, other control
 * bytes as \xNN (bytes >= 0x80 kept: UTF-8 stays readable), then "... (N bytes)"
 * when cut.  The quoting of proc.c's quote() and synth.c's synth_quote().
 */
void buf_addquoted(struct buf *b, const void *data, size_t len, size_t max);
/* Returns a printable C string even for an empty, never-grown buffer. */
const char *buf_str(const struct buf *b);

#endif
