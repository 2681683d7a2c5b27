/*
 * test_fuzz_regress: replays the fuzz inputs as an ordinary unit test (gcc, no
 * libFuzzer; under ASan+UBSan in the sanitizer build).  For every target of
 * fuzz/fuzz.h it calls the target's entry point on each file of
 * fuzz/corpus/TARGET/ (the seeds) and fuzz/regress/TARGET/ (inputs that once
 * crashed or broke an invariant).  A target aborts on a finding, so a
 * regression fails this test with the file named on stderr.
 *
 *   test_fuzz_regress FUZZ_DIR FAKE_WORKER [TARGET...]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fuzz.h"

struct target {
	const char *name;
	int (*fn)(const uint8_t *data, size_t size);
};

#define FUZZ_ENTRY(t) {#t, fuzz_##t},
static const struct target targets[] = {FUZZ_TARGETS(FUZZ_ENTRY)};
#undef FUZZ_ENTRY

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay every file of DIR; returns the number replayed, -1 when DIR is absent. */
static int replay_dir(const struct target *t, const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		if (!names || !(names[n++] = strdup(de->d_name)))
			abort();
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp);
	for (size_t i = 0; i < n; i++) {
		struct buf path = BUF_INIT, data = BUF_INIT;
		char chunk[65536];
		ssize_t r;
		int fd;

		buf_printf(&path, "%s/%s", dir, names[i]);
		fd = open(path.data, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "%s: %s\n", path.data, strerror(errno));
			exit(1);
		}
		while ((r = read(fd, chunk, sizeof(chunk))) > 0)
			buf_add(&data, chunk, (size_t)r);
		close(fd);
		/* Named before the call: a target that aborts leaves this as the last line. */
		fprintf(stderr, "%s %s\n", t->name, path.data);
		t->fn((const uint8_t *)(data.data ? data.data : ""), data.len);
		buf_free(&path);
		buf_free(&data);
		free(names[i]);
	}
	free(names);
	return (int)n;
}

int main(int argc, char **argv)
{
	int total = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s FUZZ_DIR FAKE_WORKER [TARGET...]\n", argv[0]);
		return 2;
	}
	setenv("SEGLAM_FUZZ_WORKER", argv[2], 1);
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const struct target *t = &targets[i];
		struct buf dir = BUF_INIT;
		int seeds, regress, wanted = argc == 3;

		for (int a = 3; a < argc; a++)
			wanted |= !strcmp(argv[a], t->name);
		if (!wanted)
			continue;
		buf_printf(&dir, "%s/corpus/%s", argv[1], t->name);
		seeds = replay_dir(t, dir.data);
		buf_reset(&dir);
		buf_printf(&dir, "%s/regress/%s", argv[1], t->name);
		regress = replay_dir(t, dir.data);
		buf_free(&dir);
		if (seeds <= 0) {
			fprintf(stderr, "%s: no seed corpus in %s/corpus/%s\n", t->name, argv[1],
				t->name);
			return 1;
		}
		printf("ok %s: %d seeds, %d regression inputs\n", t->name, seeds,
		       regress < 0 ? 0 : regress);
		total += seeds + (regress < 0 ? 0 : regress);
	}
	printf("%d inputs replayed\n", total);
	return 0;
}
