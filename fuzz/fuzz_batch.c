/*
 * fuzz batch: sandbox_run_batch(0, ) (sandbox/batch.c, seglam map), the daemon side
 * of the worker's batch request, against a hostile worker: fake_worker.c replays
 * the fuzz input (layout in fake_worker.c) as its answer to a batch of three
 * inputs, and every fresh worker the daemon starts after a failure does it again.
 * Checked: either -EIO with a reason and nothing appended, or a prefix of the
 * inputs, at least one, each with exactly one well-formed record (an answer or a
 * rejection within the cap, or a failure with a reason); and after
 * sandbox_shutdown() no worker is left alive or unreaped and no fd is leaked.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
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
	FUZZ_CHECK(access(worker, X_OK) == 0);
	snprintf(datafile, sizeof(datafile), "%s/seglam-fuzz-batch-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	fd = mkstemp(datafile);
	FUZZ_CHECK(fd >= 0);
	close(fd);
}

static int count_entries(const char *path, bool workers_only)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	FUZZ_CHECK(d);
	while ((de = readdir(d))) {
		char p[300], line[512];
		const char *rp;
		char state;
		int ppid;
		FILE *f;

		if (!workers_only) {
			n++;
			continue;
		}
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/stat", de->d_name);
		f = fopen(p, "re");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f) && (rp = strrchr(line, ')')) &&
		    sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() &&
		    strstr(line, "(fuzz-fake-work"))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static uint32_t le32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

int fuzz_batch(const uint8_t *data, size_t size)
{
	static const char src[] = "int seglam_run(void) { return 0; }\n";
	static const char *const inputs[] = {"a", "bb", "ccc"};
	struct sandbox_config cfg = {0};
	struct buf frames = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
	struct sandbox_stats st;
	size_t ran = 99, at = 0;
	int fd, fds, ret;

	if (size < 1 || size > (1 << 20))
		return 0;
	setup();
	fd = open(datafile, O_WRONLY | O_TRUNC | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0 && write(fd, data, size) == (ssize_t)size);
	close(fd);
	fds = count_entries("/proc/self/fd", false);

	cfg.worker_path = worker;
	cfg.include_dir = datafile; /* the fake worker's argv[1] */
	cfg.timeout_ms = 100;
	cfg.max_answer = CAP;
	cfg.max_workers = 2;
	FUZZ_CHECK(sandbox_init(&cfg) == 0);
	for (size_t i = 0; i < 3; i++) {
		uint32_t len = (uint32_t)strlen(inputs[i]);

		buf_add(&frames, &len, 4);
		buf_add(&frames, inputs[i], len);
	}
	buf_adds(&out, "keep"); /* records are appended after what is there */
	ret = sandbox_run_batch(0, src, sizeof(src) - 1, frames.data, frames.len, 3, &out, &ran,
				&err);
	FUZZ_CHECK(ret == 0 || ret == -EIO || ret == -ENOEXEC);
	FUZZ_CHECK(out.len >= 4 && memcmp(out.data, "keep", 4) == 0);
	if (ret < 0) {
		FUZZ_CHECK(err.len > 0 && out.len == 4 && ran == 0);
	} else {
		FUZZ_CHECK(ran >= 1 && ran <= 3);
		at = 4;
		for (size_t i = 0; i < ran; i++) {
			uint32_t kind, len;

			FUZZ_CHECK(out.len - at >= 8);
			kind = le32(out.data + at);
			len = le32(out.data + at + 4);
			FUZZ_CHECK(kind <= SANDBOX_FAILED);
			FUZZ_CHECK(out.len - at - 8 >= len);
			if (kind == SANDBOX_FAILED)
				FUZZ_CHECK(len > 0 && len < 4096); /* a reason, not worker bytes */
			else
				FUZZ_CHECK(len <= CAP);
			at += 8 + len;
		}
		FUZZ_CHECK(at == out.len);
	}
	buf_free(&frames);
	buf_free(&out);
	buf_free(&err);
	sandbox_shutdown();
	sandbox_get_stats(&st);
	FUZZ_CHECK(st.live_workers == 0);
	FUZZ_CHECK(count_entries("/proc", true) == 0);
	FUZZ_CHECK(count_entries("/proc/self/fd", false) == fds);
	return 0;
}

FUZZ_MAIN(batch)
