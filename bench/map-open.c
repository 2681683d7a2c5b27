/*
 * map-open: one open/read/close per input, from C (bench/map_bench.py): today's
 * fastest way in without seglam map.
 *
 *	map-open DIR LINES_FILE N
 *
 * Reads DIR/LINE for the first N lines of LINES_FILE (answers to /dev/null) and
 * prints "COUNT SECONDS ERRORS".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	char path[8192], buf[65536], *line = NULL;
	size_t cap = 0, n = 0, max, errors = 0;
	ssize_t len;
	FILE *f;

	if (argc != 4 || !(f = fopen(argv[2], "r"))) {
		fprintf(stderr, "usage: map-open DIR LINES_FILE N\n");
		return 64;
	}
	max = strtoul(argv[3], NULL, 10);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (n < max && (len = getline(&line, &cap, f)) > 0) {
		int fd;

		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		snprintf(path, sizeof(path), "%s/%s", argv[1], line);
		fd = open(path, O_RDONLY);
		if (fd < 0) {
			errors++;
		} else {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
		}
		n++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%zu %.6f %zu\n", n,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, errors);
	return 0;
}
