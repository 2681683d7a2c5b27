/*
 * fuzz sandbox: the daemon side of the worker protocol (sandbox/, not worker/), against
 * a hostile worker.  fake_worker.c is started in place of seglam-worker through
 * the real spawn, compile, run, reuse, kill and reap paths, and replies with the
 * fuzz input (see fake_worker.c for its layout).  Checked: every result is an
 * answer within the cap, a rejection, or EIO with a reason; and after
 * sandbox_shutdown() no worker is left alive or unreaped and no fd is leaked.
 *
 * The fake worker is $SEGLAM_FUZZ_WORKER, else fuzz-fake-worker next to the
 * target binary.  Bits 6-7 of the first input byte: the number of runs (1-4).
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sandbox.h"

#define CAP 100

static char worker[PATH_MAX], datafile[PATH_MAX];

static void setup(void)
{
	const char *env = getenv("SEGLAM_FUZZ_WORKER");
	char self[PATH_MAX];
	ssize_t n;
	int fd;

	if (worker[0])
		return;
	signal(SIGPIPE, SIG_IGN); /* as the daemon does */
	if (env && *env) {
		snprintf(worker, sizeof(worker), "%s", env);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		FUZZ_CHECK(n > 0);
		self[n] = '\0';
		snprintf(worker, sizeof(worker), "%s/fuzz-fake-worker", dirname(self));
	}
	if (access(worker, X_OK) != 0) {
		fprintf(stderr, "fuzz sandbox: no fake worker at %s (set SEGLAM_FUZZ_WORKER)\n",
			worker);
		abort();
	}
	snprintf(datafile, sizeof(datafile), "%s/seglam-fuzz-sandbox-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	fd = mkstemp(datafile);
	FUZZ_CHECK(fd >= 0);
	close(fd);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	FUZZ_CHECK(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * Our children that are fake workers, live or zombie.  Not waitpid(-1): the
 * sanitizers start llvm-symbolizer as a child of this process when they print
 * a stack or a new function.
 */
static int count_workers(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	FUZZ_CHECK(d);
	while ((de = readdir(d))) {
		char path[300], line[512];
		const char *rp;
		int ppid;
		char state;
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		/* "PID (COMM) STATE PPID ...": COMM is at most 15 bytes */
		if (fgets(line, sizeof(line), f) && (rp = strrchr(line, ')')) &&
		    sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() &&
		    strstr(line, "(fuzz-fake-work"))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

int fuzz_sandbox(const uint8_t *data, size_t size)
{
	static const char src[] = "int seglam_run(void) { return 0; }\n";
	struct sandbox_config cfg = {0};
	struct sandbox_stats st;
	int fd, fds, runs;

	if (size < 1 || size > (1 << 20))
		return 0;
	setup();
	fd = open(datafile, O_WRONLY | O_TRUNC | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size);
	close(fd);
	fds = count_fds();

	cfg.worker_path = worker;
	cfg.include_dir = datafile; /* the fake worker's argv[1] */
	cfg.timeout_ms = 100;
	cfg.max_answer = CAP;
	cfg.max_workers = 2;
	FUZZ_CHECK(sandbox_init(&cfg) == 0);
	runs = 1 + (data[0] >> 6 & 3);
	for (int i = 0; i < runs; i++) {
		struct buf out = BUF_INIT, err = BUF_INIT;
		int ret = sandbox_run(0, src, sizeof(src) - 1, "input", 5, &out, &err);

		FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -EIO || ret == -ENOEXEC);
		if (ret == 0 || ret == -EINVAL) {
			FUZZ_CHECK(out.len <= CAP);
			FUZZ_CHECK(!out.len || out.data[out.len] == '\0');
		} else {
			FUZZ_CHECK(err.len > 0);
			FUZZ_CHECK(out.len == 0);
		}
		buf_free(&out);
		buf_free(&err);
	}
	if (data[0] & 0x80) {
		struct buf err = BUF_INIT;
		int ret = sandbox_compile(0, src, sizeof(src) - 1, &err);

		FUZZ_CHECK(ret == 0 || (ret == -EIO && err.len > 0));
		buf_free(&err);
	}
	sandbox_shutdown();
	sandbox_get_stats(&st);
	FUZZ_CHECK(st.live_workers == 0);
	/* Every worker was killed and reaped: no child left, not even a zombie. */
	FUZZ_CHECK(count_workers() == 0);
	FUZZ_CHECK(count_fds() == fds);
	return 0;
}

FUZZ_MAIN(sandbox)
