/*
 * word-count: the number of words in the input, like `wc -w`.
 *
 * A word is a maximal run of bytes that are not ASCII whitespace.  Every other
 * byte, including NUL and the bytes of UTF-8 sequences, is part of a word.
 */
#include <seglam.h>
#include <stdbool.h>

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');	/* \t \n \v \f \r */
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	unsigned long words = 0;
	bool in_word = false;
	size_t i;

	for (i = 0; i < len; i++) {
		bool space = is_space((unsigned char)in[i]);

		if (!space && !in_word)
			words++;
		in_word = !space;
	}
	seglam_printf(out, "%lu\n", words);
	return 0;
}
