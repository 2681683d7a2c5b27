/*
 * crc32: the CRC-32 checksum of the input bytes (IEEE 802.3, as used by zip, gzip,
 * PNG and `cksum -a crc32b`), as eight lower-case hex digits.
 *
 * Reflected polynomial 0xedb88320, initial value and final xor 0xffffffff.  The
 * table is computed on the stack on each call: static storage would be state.
 */
#include <seglam.h>
#include <stdint.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	uint32_t table[256], crc = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < 256; i++) {
		uint32_t c = (uint32_t)i;

		for (k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	for (i = 0; i < len; i++)
		crc = table[(crc ^ (unsigned char)in[i]) & 0xff] ^ (crc >> 8);
	seglam_printf(out, "%08x\n", (unsigned)(crc ^ 0xffffffffu));
	return 0;
}
