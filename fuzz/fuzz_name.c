/* fuzz name: fs/name.c name_decode, the percent-decoder of ask/TYPE/INPUT names,
 * checked against a straightforward reading of README ("The mount"). */
#include "fuzz.h"

#include <string.h>

#include "buf.h"
#include "name.h"

static int hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int fuzz_name(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT, ref = BUF_INIT;
	/* Decode from a private copy so ASan sees any read past the name. */
	char *name = malloc(size ? size : 1);

	FUZZ_CHECK(name);
	memcpy(name, data, size);
	name_decode(name, size, &out);
	/* "%XY" with two hex digits is one byte; any other byte stands for itself. */
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '%' && i + 2 < size && hex(data[i + 1]) >= 0 &&
		    hex(data[i + 2]) >= 0) {
			buf_addc(&ref, (char)(hex(data[i + 1]) << 4 | hex(data[i + 2])));
			i += 2;
		} else {
			buf_addc(&ref, (char)data[i]);
		}
	}
	FUZZ_CHECK(out.len <= size);
	FUZZ_CHECK(out.len == ref.len);
	FUZZ_CHECK(out.len == 0 || !memcmp(out.data, ref.data, out.len));
	FUZZ_CHECK(out.data && out.data[out.len] == '\0');
	buf_free(&out);
	buf_free(&ref);
	free(name);
	return 0;
}

FUZZ_MAIN(name)
