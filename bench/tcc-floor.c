/*
 * tcc-floor: the floor under a cold start (issue 16): compiling and relocating a
 * procedure with libtcc in this process, as seglam-worker does it (same options,
 * include directory and libtcc1.a), with no process, pipe or sandbox around it.
 *
 *	tcc-floor INCLUDE_DIR LIBTCC1_A SOURCE_FILE ROUNDS
 *
 * Prints "p50_us P p90_us P mean_us M rounds N", then the same compile in a
 * process forked for it, ROUNDS times 20 ms apart, as the sandbox must (a
 * compile never shares a process with another source: SECURITY.md):
 * "fork_compile_p50_us" (the compile in the new process) and "fork_p50_us" (fork
 * to reaped: the price of a new address space on this host, compile included).
 * Procedure code is never run: the symbols it may call resolve to a stub.  For
 * benchmarks only (it compiles the file it is given without the worker's
 * precheck or confinement).
 */
#include <libtcc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const names[] = {"seglam_write", "seglam_printf", "seglam_call", "malloc",
				    "free",	    "calloc",	     "realloc",	    "memcpy",
				    "memset",	    "strlen",	     "toupper",	    "tolower",
				    "snprintf",	    "memcmp",	     "strcmp"};

static int stub(void)
{
	return 0;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int compile_once(const char *inc, const char *libtcc1, const char *src)
{
	TCCState *s = tcc_new();
	void *mem;
	int size, ret = -1;

	if (!s)
		return -1;
	tcc_set_options(s, "-nostdlib -nostdinc");
	tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
	tcc_add_include_path(s, inc);
	tcc_add_sysinclude_path(s, inc);
	tcc_define_symbol(s, "_Pragma(x)", "");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		tcc_add_symbol(s, names[i], (const void *)stub);
	if (tcc_compile_string(s, src) < 0 || tcc_add_file(s, libtcc1) < 0)
		goto out;
	size = tcc_relocate(s, NULL);
	if (size < 0)
		goto out;
	mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		goto out;
	ret = tcc_relocate(s, mem) < 0 || !tcc_get_symbol(s, "seglam_run") ? -1 : 0;
	munmap(mem, (size_t)size);
out:
	tcc_delete(s);
	return ret;
}

/* The compile in a new process: its time inside the child into @in_child, and
 * fork to reaped returned (or < 0). */
static double compile_forked(const char *inc, const char *libtcc1, const char *src,
			     double *in_child)
{
	double t0 = now_us(), t;
	int fds[2], st;
	pid_t pid;

	if (pipe(fds) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		double c0 = now_us();
		int ok = compile_once(inc, libtcc1, src);

		t = ok < 0 ? -1 : now_us() - c0;
		_exit(write(fds[1], &t, sizeof(t)) == sizeof(t) ? 0 : 1);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], in_child, sizeof(*in_child)) != sizeof(*in_child) ||
	    waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) || *in_child < 0) {
		close(fds[0]);
		return -1;
	}
	close(fds[0]);
	return now_us() - t0;
}

int main(int argc, char **argv)
{
	static char src[1 << 20];
	double *t, *forked, sum = 0;
	size_t n;
	int rounds;
	FILE *f;

	if (argc != 5 || (rounds = atoi(argv[4])) < 1) {
		fprintf(stderr, "usage: tcc-floor INCLUDE_DIR LIBTCC1_A SOURCE_FILE ROUNDS\n");
		return 2;
	}
	f = fopen(argv[3], "r");
	if (!f) {
		perror(argv[3]);
		return 1;
	}
	n = fread(src, 1, sizeof(src) - 1, f);
	fclose(f);
	src[n] = 0;
	t = calloc((size_t)rounds, sizeof(*t));
	if (!t)
		return 1;
	if (compile_once(argv[1], argv[2], src) < 0) { /* warm: page cache, first-use work */
		fprintf(stderr, "tcc-floor: %s does not compile\n", argv[3]);
		return 1;
	}
	for (int i = 0; i < rounds; i++) {
		double t0 = now_us();

		if (compile_once(argv[1], argv[2], src) < 0)
			return 1;
		t[i] = now_us() - t0;
		sum += t[i];
	}
	qsort(t, (size_t)rounds, sizeof(*t), cmp);
	printf("p50_us %.1f p90_us %.1f mean_us %.1f rounds %d", t[rounds / 2], t[rounds * 9 / 10],
	       sum / rounds, rounds);
	forked = calloc((size_t)rounds, sizeof(*forked));
	if (!forked)
		return 1;
	for (int i = 0; i < rounds; i++) {
		usleep(20000); /* what the last child left (its exit) is done */
		forked[i] = compile_forked(argv[1], argv[2], src, &t[i]);
		if (forked[i] < 0)
			return 1;
	}
	qsort(t, (size_t)rounds, sizeof(*t), cmp);
	qsort(forked, (size_t)rounds, sizeof(*forked), cmp);
	printf(" fork_compile_p50_us %.1f fork_p50_us %.1f\n", t[rounds / 2], forked[rounds / 2]);
	free(forked);
	free(t);
	return 0;
}
