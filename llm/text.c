/* text: URL joining, secret scrubbing and one-line excerpts for llm/; see text.h. */
#include "text.h"

#include <string.h>

void llm_url_join(struct buf *url, const char *base, const char *path)
{
	size_t n = base ? strlen(base) : 0;

	while (n && base[n - 1] == '/')
		n--;
	buf_add(url, base ? base : "", n);
	buf_adds(url, path);
}

void llm_scrub(struct buf *b, const char *secret)
{
	static const char red[] = "[redacted]";
	struct buf out = BUF_INIT;
	size_t n, i = 0;
	char *hit;

	if (!secret || !*secret || !b->len)
		return;
	n = strlen(secret);
	if (!memmem(b->data, b->len, secret, n))
		return;
	while (i < b->len && (hit = memmem(b->data + i, b->len - i, secret, n))) {
		buf_add(&out, b->data + i, (size_t)(hit - (b->data + i)));
		buf_add(&out, red, sizeof(red) - 1);
		i = (size_t)(hit - b->data) + n;
	}
	buf_add(&out, b->data + i, b->len - i);
	explicit_bzero(b->data, b->len);
	buf_free(b);
	*b = out;
}

void llm_add_oneline(struct buf *b, const char *s, size_t len, size_t max)
{
	size_t i;

	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	for (i = 0; i < len && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_addc(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	if (i < len)
		buf_adds(b, "...");
}
