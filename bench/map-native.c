/*
 * map-native: the physical limit for `seglam map` (bench/map_bench.py).
 *
 *	map-native LINES_FILE > answers
 *
 * Runs a procedure compiled natively (cc -O2, linked with this file) over every
 * line of LINES_FILE in a loop, writing the answers one a line as seglam map
 * does.  Prints the seconds spent on stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct seglam_out {
	char data[1 << 16];
	size_t len;
};
typedef struct seglam_out seglam_out;

int seglam_run(const char *in, size_t len, seglam_out *out);

int seglam_write(seglam_out *out, const void *buf, size_t len)
{
	if (len > sizeof(out->data) - out->len)
		return -1;
	memcpy(out->data + out->len, buf, len);
	out->len += len;
	return 0;
}

int seglam_printf(seglam_out *out, const char *fmt, ...)
{
	size_t room = sizeof(out->data) - out->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out->data + out->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return -1;
	out->len += (size_t)n;
	return 0;
}

int main(int argc, char **argv)
{
	static seglam_out out;
	static char obuf[1 << 20];
	struct timespec t0, t1;
	size_t olen = 0, n = 0, cap = 0;
	char *line = NULL, *in;
	ssize_t len;
	FILE *f;

	if (argc != 2 || !(f = fopen(argv[1], "r"))) {
		fprintf(stderr, "usage: map-native LINES_FILE\n");
		return 64;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	in = malloc(1 << 20);
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		memcpy(in, line, (size_t)len); /* a NUL-terminated copy, as the worker does */
		in[len] = '\0';
		out.len = 0;
		if (seglam_run(in, (size_t)len, &out) != 0)
			out.len = 0;
		if (out.len && out.data[out.len - 1] == '\n')
			out.len--;
		if (olen + out.len + 1 > sizeof(obuf)) {
			if (write(1, obuf, olen) < 0)
				return 1;
			olen = 0;
		}
		memcpy(obuf + olen, out.data, out.len);
		olen += out.len;
		obuf[olen++] = '\n';
		n++;
	}
	if (olen && write(1, obuf, olen) < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "%zu %.6f\n", n,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
