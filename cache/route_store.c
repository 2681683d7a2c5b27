/*
 * route_store: the routing index's side of the store (see route_int.h).
 *
 * Reads a type's patterns and questions/ (route_tdata_load: the store I/O, with no
 * lock held), files it in the index (write lock, short), walks the store on the
 * first question, and keeps the index fresh: a type touched through this mount is
 * looked at again, and STORE/routes/TYPE notes tell other daemons sharing the
 * store (and this one, from them) which types changed.  Log lines are written
 * after the index is unlocked: a log line is store I/O too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"
#include "route_int.h"
#include "xalloc.h"

/* ---- loading a type from the store -------------------------------------- */

static void sig_of(const char *path, struct sig *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	/* Resolved beneath STORE: a type directory planted as a symlink is not followed. */
	if (store_lstat(path, &st) == 0) {
		s->exists = true;
		s->ino = (uint64_t)st.st_ino;
		s->size = (int64_t)st.st_size;
		s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
}

static bool sig_eq(const struct sig *a, const struct sig *b)
{
	return a->exists == b->exists && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

static void type_sigs(const char *name, struct sig *ps, struct sig *qs)
{
	struct buf path = BUF_INIT;
	size_t base;

	store_type_dir(name, &path);
	base = path.len;
	buf_adds(&path, "/patterns");
	sig_of(path.data, ps);
	buf_truncate(&path, base);
	buf_adds(&path, "/questions");
	sig_of(path.data, qs);
	buf_free(&path);
}

void route_tdata_free(struct tdata *d)
{
	for (size_t i = 0; i < d->npats; i++)
		pat_free(&d->pats[i]);
	free(d->pats);
	for (size_t i = 0; i < d->nex; i++) {
		free(d->ex[i].name);
		free(d->ex[i].q);
		free(d->ex[i].in);
	}
	free(d->ex);
	free(d->reason);
	free(d->spec);
	memset(d, 0, sizeof(*d));
}

/* Parse patterns text into @d (appending); on a bad line sets d->reason. */
void route_tdata_parse(struct tdata *d, const char *text, size_t len)
{
	struct buf why = BUF_INIT;
	size_t p = 0, lineno = 0;

	while (p < len && !d->reason) {
		const char *nl = memchr(text + p, '\n', len - p);
		size_t e = nl ? (size_t)(nl - text) : len;
		struct pat pt;
		int r;

		lineno++;
		buf_reset(&why);
		r = pat_parse(text + p, e - p, &pt, &why);
		if (r < 0) {
			buf_printf(&why, " (line %zu: %.*s)", lineno,
				   (int)(e - p > 200 ? 200 : e - p), text + p);
			d->reason = buf_steal(&why);
		} else if (r > 0) {
			d->pats = xrealloc(d->pats, (d->npats + 1) * sizeof(*d->pats));
			d->pats[d->npats++] = pt;
		}
		p = nl ? e + 1 : len;
	}
	buf_free(&why);
}

static bool litter(const char *name, size_t len)
{
	return !len || name[0] == '.' || name[0] == '#' || name[len - 1] == '~' ||
	       !strcmp(name, "4913") || atomic_is_tmpname(name);
}

static int cmp_ex(const void *a, const void *b)
{
	return strcmp(((const struct rex *)a)->name, ((const struct rex *)b)->name);
}

static void tdata_examples(struct tdata *d, const char *name)
{
	struct buf path = BUF_INIT, q = BUF_INIT, in = BUF_INIT, nq = BUF_INIT, fn = BUF_INIT;
	struct dirent *de;
	DIR *dir;
	int fd;

	store_type_dir(name, &path);
	buf_adds(&path, "/questions");
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	buf_free(&path);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) && d->nex < ROUTE_EXAMPLES_MAX) {
		size_t len = strlen(de->d_name);
		struct rex *x;

		if (len < 3 || strcmp(de->d_name + len - 2, ".q") || litter(de->d_name, len - 2))
			continue;
		buf_reset(&fn);
		buf_add(&fn, de->d_name, len - 2);
		buf_adds(&fn, ".in");
		buf_reset(&q);
		buf_reset(&in);
		if (file_read_all(fd, de->d_name, ROUTE_EXAMPLE_BYTES, &q) != 0 ||
		    file_read_all(fd, fn.data, ROUTE_EXAMPLE_BYTES, &in) != 0)
			continue; /* a question without its input (yet) is no example */
		/* A final newline (echo) is not part of the input. */
		if (in.len && in.data[in.len - 1] == '\n')
			buf_truncate(&in, in.len - 1);
		pat_normalize(q.data ? q.data : "", q.len, &nq);
		if (!nq.len || memchr(nq.data, '\0', nq.len))
			continue;
		d->ex = xrealloc(d->ex, (d->nex + 1) * sizeof(*d->ex));
		x = &d->ex[d->nex++];
		x->name = xstrndup(de->d_name, len - 2);
		x->qlen = nq.len;
		x->q = buf_steal(&nq);
		x->inlen = in.len;
		if (!in.data)
			buf_grow(&in, 1);
		x->in = buf_steal(&in);
	}
	closedir(dir);
	if (d->nex)
		qsort(d->ex, d->nex, sizeof(*d->ex), cmp_ex);
	buf_free(&q);
	buf_free(&in);
	buf_free(&nq);
	buf_free(&fn);
}

/* Read a type's patterns and questions (no lock held: this is the store I/O). */
void route_tdata_load(const char *name, struct tdata *d)
{
	struct buf text = BUF_INIT;
	int r;

	memset(d, 0, sizeof(*d));
	type_sigs(name, &d->ps, &d->qs);
	if (d->ps.exists) {
		r = store_read(name, "patterns", ROUTE_PATTERNS_MAX, &text);
		if (r == -EFBIG) {
			d->reason =
			    xasprintf("the patterns file is over %u bytes", ROUTE_PATTERNS_MAX);
		} else if (r == 0) {
			route_tdata_parse(d, buf_str(&text), text.len);
		}
	}
	if (d->qs.exists)
		tdata_examples(d, name);
	/* The spec's words make a type near a question even before it has patterns. */
	buf_reset(&text);
	if (store_read(name, "spec", ROUTE_SPEC_MAX, &text) == 0 && text.len)
		d->spec = buf_steal(&text);
	buf_free(&text);
}

/* ---- filing what was read, telling other daemons ------------------------ */

/* Write the note STORE/routes/@name (see ROUTE_NOTES). */
static void note_change(const char *name)
{
	int fd;

	if (store_readonly())
		return;
	if (mkdirat(store_root_fd(), ROUTE_NOTES, 0755) != 0 && errno != EEXIST)
		return;
	fd = openat(store_root_fd(), ROUTE_NOTES, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (atomic_write(fd, name, "", 0, 0644) != 0)
		log_warn("routes: cannot note the change of %s for other daemons", name);
	close(fd);
}

/* Read @name from the store and file it; tell others when @note and it changed. */
void route_reload(const char *name, bool note)
{
	struct tdata d;
	struct buf why = BUF_INIT;
	struct rtype *t;
	struct refusal *others = NULL;
	size_t nothers = 0;
	bool changed, refused, gone;
	char *reason = NULL;

	route_tdata_load(name, &d);
	/* Asked before the lock: it is store I/O. */
	gone = !d.ps.exists && !d.qs.exists && !store_type_exists(name);
	pthread_rwlock_wrlock(&rt.lock);
	t = route_type_find(name);
	changed = !t || !sig_eq(&t->d.ps, &d.ps) || !sig_eq(&t->d.qs, &d.qs);
	if (!t && gone) {
		pthread_rwlock_unlock(&rt.lock);
		route_tdata_free(&d);
		return;
	}
	if (!t)
		t = route_type_get(name);
	refused = route_file_type(t, &d, true, &why);
	if (refused && t->d.reason)
		reason = xstrdup(t->d.reason);
	if (changed)
		nothers = route_refuse_winners(t, &others);
	pthread_rwlock_unlock(&rt.lock);
	if (reason) {
		log_warn("%s: patterns not used: %s", name, reason);
		store_log(name, "patterns: not used: %s (fix procs/%s/patterns or questions/)",
			  reason, name);
	}
	for (size_t i = 0; i < nothers; i++) {
		log_warn("%s: patterns not used: %s", others[i].name, others[i].reason);
		store_log(others[i].name, "patterns: not used: %s", others[i].reason);
		if (rt.hook)
			rt.hook(others[i].name);
		free(others[i].name);
		free(others[i].reason);
	}
	free(others);
	if (changed) {
		if (note)
			note_change(name);
		if (rt.hook)
			rt.hook(name);
	}
	free(reason);
	buf_free(&why);
}

void route_reload_if_changed(const char *name, bool note)
{
	struct sig ps, qs;
	struct rtype *t;
	bool same;

	type_sigs(name, &ps, &qs);
	pthread_rwlock_rdlock(&rt.lock);
	t = route_type_find(name);
	same = t ? sig_eq(&t->d.ps, &ps) && sig_eq(&t->d.qs, &qs) : !ps.exists && !qs.exists;
	if (t && same)
		atomic_store(&t->checked_ns, route_now_ns());
	pthread_rwlock_unlock(&rt.lock);
	if (!same)
		route_reload(name, note);
}

/* ---- walking and freshness ---------------------------------------------- */

static int walk_one(const char *name, void *arg)
{
	struct tdata d;
	struct buf why = BUF_INIT;

	struct rtype *t;
	char *reason = NULL;

	(void)arg;
	route_tdata_load(name, &d);
	pthread_rwlock_wrlock(&rt.lock);
	t = route_type_get(name);
	if (route_file_type(t, &d, false, &why) && t->d.reason)
		reason = xstrdup(t->d.reason);
	pthread_rwlock_unlock(&rt.lock);
	if (reason) {
		log_warn("%s: patterns not used: %s", name, reason);
		store_log(name, "patterns: not used: %s", reason);
	}
	free(reason);
	buf_free(&why);
	return 0;
}

/* Once every type is in, check what a type-by-type load could not: examples of
 * other types. */
static void walk_cross(void)
{
	struct buf why = BUF_INIT;
	struct refusal *refused = NULL;
	size_t nrefused = 0, iter = 0;
	struct rtype *t;

	pthread_rwlock_wrlock(&rt.lock);
	while ((t = hmap_next(&rt.types, &iter))) {
		if (!t->ok)
			continue;
		buf_reset(&why);
		if (route_admit_cross(t, t->name, t->d.pats, t->d.npats, &why) == 0)
			continue;
		route_unfile_patterns(t);
		t->d.reason = buf_steal(&why);
		refused = xreallocarray(refused, nrefused + 1, sizeof(*refused));
		refused[nrefused].name = xstrdup(t->name);
		refused[nrefused].reason = xstrdup(t->d.reason);
		nrefused++;
	}
	pthread_rwlock_unlock(&rt.lock);
	/* Logged with the index unlocked: a log line is store I/O. */
	for (size_t i = 0; i < nrefused; i++) {
		log_warn("%s: patterns not used: %s", refused[i].name, refused[i].reason);
		store_log(refused[i].name, "patterns: not used: %s", refused[i].reason);
		free(refused[i].name);
		free(refused[i].reason);
	}
	free(refused);
	buf_free(&why);
}

static void notes_scan(void)
{
	int64_t since;
	struct sig s;
	struct dirent *de;
	DIR *dir;
	int fd;

	sig_of(ROUTE_NOTES, &s);
	pthread_mutex_lock(&rt.mu);
	if (sig_eq(&s, &rt.notes)) {
		pthread_mutex_unlock(&rt.mu);
		return;
	}
	rt.notes = s;
	since = rt.notes_since - ROUTE_NOTE_SKEW_NS;
	rt.notes_since = route_real_ns();
	pthread_mutex_unlock(&rt.mu);
	fd = openat(store_root_fd(), ROUTE_NOTES, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	/* Only the notes written since the last scan: the others were seen then. */
	while ((de = readdir(dir))) {
		struct stat st;

		if (!store_type_valid(de->d_name, strlen(de->d_name)) ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec < since)
			continue;
		route_reload_if_changed(de->d_name, false);
	}
	closedir(dir);
}

/* The index is built on the first question (not at mount: most mounts of a big store
 * never see one), and kept fresh at most every revalidate_ms. */
void route_ready(void)
{
	int64_t now = route_now_ns();
	char **pending = NULL;
	size_t npending = 0;
	bool scan = false;

	pthread_mutex_lock(&rt.mu);
	if (rt.walked == 0) {
		rt.walked = 1;
		pthread_mutex_unlock(&rt.mu);
		/* (no other thread reads notes_since before walked == 2) */
		rt.notes_since = route_real_ns();
		sig_of(ROUTE_NOTES, &rt.notes);
		store_foreach_type(walk_one, NULL);
		walk_cross();
		pthread_mutex_lock(&rt.mu);
		rt.walked = 2;
		rt.notes_checked = route_now_ns();
		pthread_cond_broadcast(&rt.cond);
	}
	while (rt.walked != 2)
		pthread_cond_wait(&rt.cond, &rt.mu);
	if (rt.npending) {
		pending = rt.pending;
		npending = rt.npending;
		rt.pending = NULL;
		rt.npending = 0;
	}
	if (now - rt.notes_checked >= (int64_t)rt.cfg.revalidate_ms * 1000000) {
		rt.notes_checked = now;
		scan = true;
	}
	pthread_mutex_unlock(&rt.mu);
	for (size_t i = 0; i < npending; i++) {
		route_reload_if_changed(pending[i], true);
		free(pending[i]);
	}
	free(pending);
	if (scan)
		notes_scan();
}

/*
 * Other daemons learn of this change by its note, so it is written now, not at this
 * daemon's next question (which may never come).
 */
void route_touched(const char *type)
{
	struct sig ps, qs;
	int walked;

	pthread_mutex_lock(&rt.mu);
	walked = rt.walked;
	if (walked == 1) {
		/* The walk may have read the type already: look again once it is done. */
		for (size_t i = 0; i < rt.npending; i++)
			if (!strcmp(rt.pending[i], type))
				goto out;
		rt.pending = xreallocarray(rt.pending, rt.npending + 1, sizeof(*rt.pending));
		rt.pending[rt.npending] = xstrdup(type);
		rt.npending++;
	}
out:
	pthread_mutex_unlock(&rt.mu);
	if (walked == 2) {
		route_reload_if_changed(type, true);
	} else if (walked == 0) {
		/* No index here to compare with: note any type that has patterns or examples. */
		type_sigs(type, &ps, &qs);
		if (ps.exists || qs.exists)
			note_change(type);
	}
}
