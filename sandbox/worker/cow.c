/*
 * cow: the zygote's memory and copy-on-write (prefix worker_).
 *
 * Every fork write-protects all of the zygote's private pages (the new child
 * shares them copy-on-write), so the zygote's next write to each page it uses
 * is a page fault.  Most hosts take such a fault in a microsecond or two; where
 * the guest's page tables are shadowed by the host (a PVM guest,
 * docs/long-tail.md) each one traps to the host, 20-45 µs, and a type's first
 * ask met about ten of them in the zygote between the daemon's request and its
 * answer.  So what only the zygote uses (the relay buffer, the record of where
 * each slot's image is, the buffer a load is read into and the head of the
 * source it writes to the compile child) lives in mappings that
 * no child gets (MADV_DONTFORK, worker_private_map): a fork leaves them out, and
 * writable.  It also means no child ever holds a byte the zygote relayed or read
 * for a load (it wipes them too).
 *
 * Not the stack, which children need: writing its pages right after each fork
 * (MADV_POPULATE_WRITE) saved one fault a first ask and cost six page copies a
 * fork, warm hits included (docs/long-tail.md).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "worker_int.h"

static uintptr_t worker_page_size(void)
{
	static uintptr_t page;

	if (!page)
		page = (uintptr_t)sysconf(_SC_PAGESIZE);
	return page;
}

/* One madvise, or, on a kernel before 5.14 (which does not know the advice), a
 * write to each page.  A partial first page is left: it may belong to something
 * read-only.  (Its own page size: the zygote measures first touches with it
 * before load.c has mapped the arena.) */
void worker_populate(char *lo, char *hi)
{
	uintptr_t page = worker_page_size();
	uintptr_t a = ((uintptr_t)lo + page - 1) & ~(page - 1);

	if ((uintptr_t)hi <= a ||
	    madvise((void *)a, (size_t)((uintptr_t)hi - a), MADV_POPULATE_WRITE) == 0 ||
	    errno != EINVAL)
		return;
	for (; a < (uintptr_t)hi; a += page)
		*(volatile char *)a = *(volatile char *)a;
}

void *worker_private_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		worker_fail(WORKER_EXIT_SETUP, "worker: %zu bytes of working memory: %s", size,
			    strerror(errno));
	/* SECURITY.md point 9 promises that no child has these bytes, not that the
	 * zygote wipes them in time: without MADV_DONTFORK (only kernels before
	 * 2.6.16 refuse it) that promise cannot be kept, so do not start. */
	if (madvise(p, size, MADV_DONTFORK) != 0)
		worker_fail(
		    WORKER_EXIT_SETUP,
		    "worker: madvise(MADV_DONTFORK) of its own buffers: %s (kernel 2.6.16 or "
		    "later needed)",
		    strerror(errno));
	return p;
}
