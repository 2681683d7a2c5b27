/*
 * cases: the reader of a type's tests/, part of the proc module (proc_int.h).
 *
 * A case is a pair NAME.in + NAME.out of regular files, editor litter ignored,
 * read in name order with a person's cases before the LLM's (tests/llm-*), and
 * an llm- case left out when a person's case has the same input.  Admission
 * (admit.c) and the synthesis material (proc_synth.c) read through here; the bytes
 * read for one tests/ are bounded (-o tests_max).
 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "proc_int.h"
#include "store.h"
#include "xalloc.h"

/* The biggest case file, and the most cases of one tests/. */
#define PROC_CASE_MAX (1024 * 1024)
#define PROC_CASES_MAX 1000

/* Fingerprint of tests/: names, sizes and mtimes of its NAME.in/NAME.out files. */
uint64_t proc_tests_id(const char *type)
{
	struct buf path = BUF_INIT, acc = BUF_INIT;
	struct dirent *de;
	uint64_t id = 0;
	DIR *dir;
	int fd;

	store_type_dir(type, &path);
	buf_adds(&path, "/tests");
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		goto out;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		goto out;
	}
	while ((de = readdir(dir))) {
		struct stat st;

		if (de->d_name[0] == '.' || fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		/* Sum of per-file hashes: independent of readdir order. */
		buf_reset(&acc);
		buf_printf(&acc, "%s/%lld/%lld.%ld", de->d_name, (long long)st.st_size,
			   (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		id += XXH3_64bits(acc.data, acc.len);
	}
	closedir(dir);
out:
	buf_free(&path);
	buf_free(&acc);
	return id;
}

static bool case_name_ok(const char *name, size_t len)
{
	/* Editor and rsync litter is never a test case. */
	return len > 0 && name[0] != '.' && name[len - 1] != '~' && name[0] != '#';
}

static bool name_is_llm(const char *name)
{
	return !strncmp(name, "llm-", 4);
}

static int name_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int lx = name_is_llm(x), ly = name_is_llm(y);

	/* A person's cases first (a failure names one of them when it can, and they
	 * are known before the llm- cases they overrule). */
	return lx != ly ? lx - ly : strcmp(x, y);
}

/*
 * Call @fn on each case of tests/ (@fd taken), one at a time, in name order, until
 * their bytes reach @max: hard links make a small directory hold any number of big
 * files, and the daemon must not hold them all for one reader.  @fn may take the
 * case (clearing *c); a nonzero return stops the walk and is returned.  *@cut tells
 * that cases were left out for the cap, or past the first PROC_CASES_MAX names.
 * A single file over PROC_CASE_MAX is a case that cannot be run: with @toobig the
 * walk stops there and returns -EFBIG with the case's name in @toobig (admission
 * must not pass code a person's case was never run on); without, it is left out
 * and *@cut set.
 */
int proc_foreach_case(int fd, size_t max, int (*fn)(struct llm_case *c, void *arg), void *arg,
		      bool *cut, struct buf *toobig)
{
	char **names = NULL;
	size_t nnames = 0, total = 0, i, nhuman = 0;
	uint64_t *human = NULL; /* input hashes of a person's cases */
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	*cut = false;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".in") ||
		    !case_name_ok(de->d_name, len - 3))
			continue;
		if (nnames == PROC_CASES_MAX) {
			*cut = true; /* (which ones is readdir's order: say so) */
			break;
		}
		names = xrealloc(names, (nnames + 1) * sizeof(*names));
		names[nnames] = xstrndup(de->d_name, len - 3);
		nnames++;
	}
	if (nnames)
		qsort(names, nnames, sizeof(*names), name_cmp);
	for (i = 0; i < nnames && !*cut && !ret; i++) {
		struct llm_case c = {0};
		struct buf name = BUF_INIT;
		size_t room = max - total, lim = room < PROC_CASE_MAX ? room : PROC_CASE_MAX;
		int rc;

		/* Each file with what is left of the budget: never more than @max in all. */
		buf_printf(&name, "%s.in", names[i]);
		rc = file_read_all(dirfd(dir), name.data, lim, &c.in);
		if (!rc) {
			room -= c.in.len;
			lim = room < PROC_CASE_MAX ? room : PROC_CASE_MAX;
			buf_reset(&name);
			buf_printf(&name, "%s.out", names[i]);
			rc = file_read_all(dirfd(dir), name.data, lim, &c.out);
		}
		if (rc == -EFBIG && lim < PROC_CASE_MAX) {
			*cut = true;
		} else if (rc == -EFBIG) {
			if (toobig) {
				buf_adds(toobig, names[i]);
				ret = -EFBIG;
			} else {
				*cut = true;
			}
		}
		buf_free(&name);
		if (!rc) {
			/* (An input without its answer, yet, is not a case.) */
			uint64_t h = XXH3_64bits(buf_str(&c.in), c.in.len);
			bool overruled = false;

			total += c.in.len + c.out.len;
			/* A person's case wins over an LLM's (tests/llm-*) for the same input. */
			if (!name_is_llm(names[i])) {
				human = xrealloc(human, (nhuman + 1) * sizeof(*human));
				human[nhuman++] = h;
			} else {
				for (size_t k = 0; k < nhuman && !overruled; k++)
					overruled = human[k] == h;
			}
			c.name = names[i];
			names[i] = NULL;
			if (!overruled)
				ret = fn(&c, arg);
		}
		free(c.name);
		buf_free(&c.in);
		buf_free(&c.out);
	}
	closedir(dir);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	free(human);
	return ret;
}

struct case_list {
	struct llm_case *cases;
	size_t n;
};

static int case_list_add(struct llm_case *c, void *arg)
{
	struct case_list *l = arg;

	l->cases = xrealloc(l->cases, (l->n + 1) * sizeof(*l->cases));
	l->cases[l->n++] = *c;
	memset(c, 0, sizeof(*c));
	return 0;
}

/* The cases of tests/ (@fd taken), in name order, at most @max bytes in all. */
static int proc_read_cases_max(int fd, size_t max, struct llm_case **out, size_t *nout, bool *cut)
{
	struct case_list l = {0};
	int ret = proc_foreach_case(fd, max, case_list_add, &l, cut, NULL);

	*out = l.cases;
	*nout = l.n;
	return ret;
}

int proc_read_cases(int fd, struct llm_case **out, size_t *nout)
{
	bool cut;

	return proc_read_cases_max(fd, proc_tests_max(), out, nout, &cut);
}

size_t proc_tests_max(void)
{
	/* (proc_init sets the default; a fuzz target or unit test may not call it) */
	return procs.cfg.tests_max ? procs.cfg.tests_max : (size_t)PROC_DEFAULT_TESTS_MAX_MB << 20;
}

/* A type's tests/, never through a symlink (it could otherwise name any file on the
 * host), or -errno. */
int proc_tests_open(const char *type)
{
	struct buf path = BUF_INIT;
	int fd;

	store_type_dir(type, &path);
	buf_adds(&path, "/tests");
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY, 0);
	buf_free(&path);
	return fd;
}

void proc_tests_cut(const char *type, size_t n)
{
	log_warn("procs/%s: tests/ holds more than %zu MiB of cases, more than %d cases, or "
		 "a case over %d MiB: only %zu are used (raise -o tests_max, or make the cases "
		 "fewer or smaller)",
		 type, proc_tests_max() >> 20, PROC_CASES_MAX, PROC_CASE_MAX >> 20, n);
}

/* Load the cases of a type's tests/, sorted by name. */
int proc_load_cases(const char *type, struct llm_case **out, size_t *nout)
{
	bool cut = false;
	int fd, ret;

	*out = NULL;
	*nout = 0;
	fd = proc_tests_open(type);
	if (fd < 0)
		return 0;
	ret = proc_read_cases_max(fd, proc_tests_max(), out, nout, &cut);
	if (cut)
		proc_tests_cut(type, *nout);
	return ret;
}
