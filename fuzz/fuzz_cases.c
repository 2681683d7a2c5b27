/*
 * fuzz cases: cache/cases.c proc_read_cases, the reader of a type's tests/
 * directory, which anyone with write access to the store (or the mount) fills.
 *
 * The input describes a directory as records, each starting on a line "=== ":
 *
 *   === NAME          a regular file NAME; its content is every following byte
 *                     up to the newline before the next "=== " line
 *   === NAME/         an empty directory NAME
 *   === NAME -> DEST  a symbolic link NAME to DEST
 *   === NAME |        a FIFO NAME (nobody ever writes to it)
 *
 * ('/' and NUL in NAME become '_').  The target creates that directory under
 * /dev/shm (or $TMPDIR), calls proc_read_cases() on it and compares the result
 * with the contract of proc.h: pairs NAME.in + NAME.out of regular files, editor
 * litter (.x, #x, x~) ignored, a person's cases first and then the LLM's (llm-*)
 * each sorted by name, an llm- case with a person's input left out, contents exact.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm.h"
#include "proc.h"

#define MAX_ENTRIES 1000

enum kind { K_FILE, K_DIR, K_LINK, K_FIFO };

struct entry {
	char name[201];
	enum kind kind;
	const uint8_t *data;
	size_t len;
};

static char base[256];

static const char *fuzz_dir(void)
{
	if (!base[0]) {
		const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");

		snprintf(base, sizeof(base), "%s/seglam-fuzz-cases-XXXXXX", tmp ? tmp : "/tmp");
		FUZZ_CHECK(mkdtemp(base));
	}
	return base;
}

/* Empty the directory (it holds files, links and empty directories only). */
static void empty_dir(int dfd)
{
	int fd = dup(dfd);
	DIR *d = fdopendir(fd);
	struct dirent *de;

	FUZZ_CHECK(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dfd, de->d_name, 0) < 0)
			FUZZ_CHECK(unlinkat(dfd, de->d_name, AT_REMOVEDIR) == 0);
	}
	closedir(d);
}

static size_t parse(const uint8_t *data, size_t size, struct entry *e)
{
	size_t n = 0, p = 0;

	/* Find the first record. */
	while (p < size && !(size - p >= 4 && !memcmp(data + p, "=== ", 4) &&
			     (p == 0 || data[p - 1] == '\n'))) {
		const uint8_t *nl = memchr(data + p, '\n', size - p);

		p = nl ? (size_t)(nl - data) + 1 : size;
	}
	while (p < size && n < MAX_ENTRIES) {
		const uint8_t *nl;
		size_t h = p + 4, he, c, ce;
		struct entry *x = &e[n];
		const char *arrow;

		nl = memchr(data + h, '\n', size - h);
		he = nl ? (size_t)(nl - data) : size;
		c = nl ? he + 1 : size;
		/* Content up to "\n=== " */
		for (ce = c; ce < size; ce++)
			if (data[ce] == '\n' && size - ce >= 5 && !memcmp(data + ce + 1, "=== ", 4))
				break;
		p = ce < size ? ce + 1 : size;

		memset(x, 0, sizeof(*x));
		size_t k = 0;
		for (size_t i = h; i < he && k < sizeof(x->name) - 1; i++)
			x->name[k++] = data[i] == '/' && i + 1 < he ? '_'
				       : data[i]		    ? (char)data[i]
								    : '_';
		x->data = data + c;
		x->len = ce - c;
		x->kind = K_FILE;
		if (k && x->name[k - 1] == '/') {
			x->name[--k] = '\0';
			x->kind = K_DIR;
		} else if (k >= 2 && !strcmp(x->name + k - 2, " |")) {
			x->name[k -= 2] = '\0';
			x->kind = K_FIFO;
		} else if ((arrow = strstr(x->name, " -> "))) {
			x->kind = K_LINK;
			x->data = (const uint8_t *)arrow + 4;
			x->len = strlen(arrow + 4);
			x->name[arrow - x->name] = '\0';
		}
		for (char *s = x->name; *s; s++)
			if (*s == '/')
				*s = '_';
		if (!x->name[0] || !strcmp(x->name, ".") || !strcmp(x->name, ".."))
			continue;
		n++;
	}
	return n;
}

static bool make(int dfd, struct entry *x)
{
	int fd;

	switch (x->kind) {
	case K_FILE:
		fd = openat(dfd, x->name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
			    0644);
		if (fd < 0)
			return false; /* a directory or link of that name is there */
		FUZZ_CHECK(write(fd, x->data, x->len) == (ssize_t)x->len);
		close(fd);
		return true;
	case K_DIR:
		return mkdirat(dfd, x->name, 0755) == 0;
	case K_FIFO:
		return mkfifoat(dfd, x->name, 0644) == 0;
	case K_LINK: {
		char dest[256];

		snprintf(dest, sizeof(dest), "%.*s", (int)x->len, (const char *)x->data);
		return dest[0] && symlinkat(dest, dfd, x->name) == 0;
	}
	}
	return false;
}

static bool name_ok(const char *name, size_t len)
{
	return len > 0 && name[0] != '.' && name[0] != '#' && name[len - 1] != '~';
}

static bool is_llm(const char *name)
{
	return !strncmp(name, "llm-", 4);
}

/* Is made[@i] the .in of a case pair? Then *@in and *@out are its two files. */
static bool case_pair(struct entry *const *made, size_t nmade, size_t i, const struct entry **in,
		      const struct entry **out)
{
	size_t len = strlen(made[i]->name);
	char outname[sizeof(made[i]->name) + 4];

	*in = made[i];
	*out = NULL;
	if ((*in)->kind != K_FILE || len < 4 || strcmp((*in)->name + len - 3, ".in") ||
	    !name_ok((*in)->name, len - 3))
		return false;
	snprintf(outname, sizeof(outname), "%.*s.out", (int)(len - 3), (*in)->name);
	for (size_t j = 0; j < nmade; j++)
		if (!strcmp(made[j]->name, outname))
			*out = made[j];
	return *out && (*out)->kind == K_FILE;
}

int fuzz_cases(const uint8_t *data, size_t size)
{
	static struct entry e[MAX_ENTRIES], *made[MAX_ENTRIES];
	struct llm_case *cases = NULL;
	size_t n, nmade = 0, ncases = 0, expect = 0;
	int dfd, fd;

	n = parse(data, size, e);
	dfd = open(fuzz_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(dfd >= 0);
	empty_dir(dfd);
	for (size_t i = 0; i < n; i++) {
		struct entry *old = NULL;

		for (size_t j = 0; j < nmade; j++)
			if (!strcmp(made[j]->name, e[i].name))
				old = made[j];
		/* A later file record of an existing file replaces its content. */
		if (old && !(old->kind == K_FILE && e[i].kind == K_FILE))
			continue;
		if (!make(dfd, &e[i]))
			continue;
		if (old)
			*old = e[i];
		else
			made[nmade++] = &e[i];
	}

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(proc_read_cases(fd, &cases, &ncases) == 0);

	/* What the contract says it must find: every pair NAME.in + NAME.out of
	 * regular files, except an llm- case whose input a person's case also has
	 * (the person's case overrules it). */
	for (size_t i = 0; i < nmade; i++) {
		const struct entry *in, *out;
		size_t len;
		bool seen = false;

		if (!case_pair(made, nmade, i, &in, &out))
			continue;
		len = strlen(in->name);
		if (is_llm(in->name)) {
			bool overruled = false;

			for (size_t k = 0; k < nmade && !overruled; k++) {
				const struct entry *hin, *hout;

				overruled = case_pair(made, nmade, k, &hin, &hout) &&
					    !is_llm(hin->name) && hin->len == in->len &&
					    (!in->len || !memcmp(hin->data, in->data, in->len));
			}
			if (overruled)
				continue;
		}
		expect++;
		for (size_t j = 0; j < ncases; j++) {
			if (strlen(cases[j].name) != len - 3 ||
			    memcmp(cases[j].name, in->name, len - 3))
				continue;
			FUZZ_CHECK(!seen);
			seen = true;
			FUZZ_CHECK(cases[j].in.len == in->len);
			FUZZ_CHECK(!in->len || !memcmp(cases[j].in.data, in->data, in->len));
			FUZZ_CHECK(cases[j].out.len == out->len);
			FUZZ_CHECK(!out->len || !memcmp(cases[j].out.data, out->data, out->len));
		}
		FUZZ_CHECK(seen);
	}
	FUZZ_CHECK(ncases == expect);
	/* A person's cases first, then the LLM's; each group by name. */
	for (size_t j = 0; j + 1 < ncases; j++) {
		int lx = is_llm(cases[j].name), ly = is_llm(cases[j + 1].name);

		FUZZ_CHECK(lx < ly || (lx == ly && strcmp(cases[j].name, cases[j + 1].name) < 0));
	}

	llm_cases_free(cases, ncases);
	close(dfd);
	return 0;
}

FUZZ_MAIN(cases)
