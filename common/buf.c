/* buf: growable byte buffer, see buf.h. */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Not xrealloc() (common/xalloc.h): the sandbox worker compiles this file alone,
 * without the log module that xalloc reports through.
 */
static void *buf_realloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (!q) {
		fprintf(stderr, "seglamfs: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

void buf_grow(struct buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	size_t cap;

	if (need < b->len) /* overflow */
		abort();
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap * 2 > cap ? cap * 2 : need;
	b->data = buf_realloc(b->data, cap);
	b->cap = cap;
	/* A first allocation holds garbage: keep data[len] == '\0' (buf.h). */
	b->data[b->len] = '\0';
}

void buf_add(struct buf *b, const void *data, size_t len)
{
	buf_grow(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at @s (at most @n bytes) that is not a C1
 * control, or 0. */
static size_t buf_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

void buf_addrepr(struct buf *b, const void *data, size_t len, bool keep_newlines)
{
	const unsigned char *s = data;

	buf_grow(b, len);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t u;

		if (c == '\\') {
			buf_adds(b, "\\\\");
		} else if (c == '\n') {
			buf_adds(b, keep_newlines ? "\n" : "\\n");
		} else if (c == '\t') {
			buf_adds(b, "\\t");
		} else if (c >= 0x20 && c < 0x7f) {
			buf_addc(b, (char)c);
		} else if (c >= 0x80 && (u = buf_utf8_len(s + i, len - i)) > 0) {
			buf_add(b, s + i, u);
			i += u;
			continue;
		} else {
			static const char hex[] = "0123456789abcdef";
			char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};

			buf_add(b, esc, sizeof(esc));
		}
		i++;
	}
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *buf_steal(struct buf *b)
{
	char *p;

	buf_grow(b, 0);
	p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

const char *buf_str(const struct buf *b)
{
	return b->data ? b->data : "";
}

void buf_addquoted(struct buf *b, const void *data, size_t len, size_t max)
{
	const unsigned char *s = data;
	size_t i;

	buf_addc(b, '\'');
	for (i = 0; i < len && i < max; i++) {
		unsigned char c = s[i];

		if (c == '\n')
			buf_adds(b, "\\n");
		else if (c == '\t')
			buf_adds(b, "\\t");
		else if (c == '\\' || c == '\'')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_addc(b, (char)c);
	}
	buf_addc(b, '\'');
	if (len > max)
		buf_printf(b, "... (%zu bytes)", len);
}
