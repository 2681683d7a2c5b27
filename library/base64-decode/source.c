/*
 * base64-decode: the bytes that a base64 text (RFC 4648, standard alphabet)
 * stands for.
 *
 * Whitespace anywhere is ignored (encoders wrap lines).  Otherwise decoding is
 * strict: only the 64 characters and '=', padding to a multiple of 4 characters,
 * '=' only at the end, and the unused low bits before padding must be zero, so
 * that every accepted text is the one encoding of its bytes.
 */
#include <seglam.h>
#include <stdbool.h>
#include <stdlib.h>

/* The 6-bit value of c, -1 for '=', -2 for whitespace, -3 for anything else. */
static int sextet(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	if (c == '=')
		return -1;
	if (c == ' ' || (c >= '\t' && c <= '\r'))
		return -2;
	return -3;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	unsigned char *buf = malloc(len / 4 * 3 + 4);
	unsigned long v = 0;
	size_t i, n = 0, k = 0, pad = 0;	/* k: characters in this quantum */
	bool done = false;			/* after a padded quantum */

	if (!buf) {
		seglam_printf(out, "out of memory\n");
		return 1;
	}
	for (i = 0; i < len; i++) {
		int x = sextet((unsigned char)in[i]);

		if (x == -2)
			continue;
		if (x == -3) {
			seglam_printf(out, "not base64: byte 0x%02x at offset %zu\n",
				      (unsigned char)in[i], i);
			goto bad;
		}
		if (done) {
			seglam_printf(out, "data after '=' padding at offset %zu\n", i);
			goto bad;
		}
		if (x == -1) {
			/* '=' may only fill the last one or two places of a quantum */
			if (k < 2) {
				seglam_printf(out, "misplaced '=' at offset %zu\n", i);
				goto bad;
			}
			pad++;
			x = 0;
		} else if (pad) {
			seglam_printf(out, "data after '=' padding at offset %zu\n", i);
			goto bad;
		}
		v = (v << 6) | (unsigned long)x;
		if (++k == 4) {
			buf[n++] = (unsigned char)(v >> 16);
			buf[n++] = (unsigned char)(v >> 8);
			buf[n++] = (unsigned char)v;
			if (pad) {
				/* the padded bits must be zero: "QR==" is not canonical */
				if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff))) {
					seglam_printf(out, "non-zero bits before the '=' padding\n");
					goto bad;
				}
				n -= pad;
				done = true;
			}
			k = 0;
			v = 0;
		}
	}
	if (k != 0) {
		seglam_printf(out, "length is not a multiple of 4 (missing '=' padding?)\n");
		goto bad;
	}
	buf[n++] = '\n';
	seglam_write(out, buf, n);
	free(buf);
	return 0;
bad:
	free(buf);
	return 1;
}
