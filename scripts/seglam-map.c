/*
 * seglam-map: the engine of `seglam map` (scripts/seglam execs it).
 *
 *	seglam-map [-0] MOUNT TYPE [FILE]
 *
 * Reads inputs (one a line, or NUL-separated with -0) from FILE or standard
 * input, sends them through MOUNT/map/TYPE and writes one answer per input, in
 * order.  The framing of map/TYPE is documented in README.md ("seglam map").
 *
 * The loop alternates: take what standard input has (up to MAP_CYCLE_BYTES of
 * it without waiting for more), write those inputs in one write, read back
 * their records, print them.  So a pipe that trickles (tail -f) is answered line
 * by line, a file goes through in large batches, and neither side ever holds
 * more than one cycle: memory stays flat whatever the input size.
 *
 * Exit status: 0 every input answered; 1 some inputs rejected or failed (their
 * lines are empty, stderr says why); 2 unknown type or not a mount; 3 the
 * procedure cannot run at all; 64 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAP_INPUT_MAX (1u << 20)   /* the mount's limit for one input */
#define MAP_CYCLE_BYTES (1u << 20) /* input bytes per write */
#define MAP_CYCLE_INPUTS 32768u	   /* inputs per write */
#define MAP_READ_CHUNK (1u << 20)

struct mbuf {
	char *data;
	size_t len, cap;
};

static const char *prog = "seglam map";
static const char *mnt, *type;
static bool nul_mode;
static char sep = '\n';
static int exit_rc;

static void mbuf_need(struct mbuf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 65536;

	while (cap < b->len + extra)
		cap *= 2;
	b->data = realloc(b->data, cap);
	if (!b->data) {
		fprintf(stderr, "%s: out of memory\n", prog);
		exit(3);
	}
	b->cap = cap;
}

static void mbuf_add(struct mbuf *b, const void *p, size_t n)
{
	if (!n)
		return;
	mbuf_need(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_le32(char *p, uint32_t v)
{
	p[0] = (char)(v & 0xff);
	p[1] = (char)((v >> 8) & 0xff);
	p[2] = (char)((v >> 16) & 0xff);
	p[3] = (char)(v >> 24);
}

static uint32_t get_le32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

/* Standard output (written at the end of each cycle), standard input not yet
 * split, frames to write, records read. */
static struct mbuf outb, in, frames, rb;

static void out_flush(void)
{
	size_t done = 0;

	while (done < outb.len) {
		ssize_t r = write(1, outb.data + done, outb.len - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (errno != EPIPE)
				fprintf(stderr, "%s: standard output: %s\n", prog, strerror(errno));
			exit(errno == EPIPE ? exit_rc : 3);
		}
		done += (size_t)r;
	}
	outb.len = 0;
}

/* The reason for a failed stream: the last line of procs/TYPE/log, without its
 * time stamp; false when there is none. */
static bool print_log_reason(void)
{
	char path[4096], line[4096], last[4096] = "";
	const char *p = last;
	FILE *f;

	snprintf(path, sizeof(path), "%s/procs/%s/log", mnt, type);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		memcpy(last, line, sizeof(line));
	fclose(f);
	p += strspn(p, "0123456789TZ:-");
	if (*p == ' ')
		p++;
	if (!*p)
		return false;
	fprintf(stderr, "%s: %s: cannot run: %s%s", prog, type, p,
		p[strlen(p) - 1] == '\n' ? "" : "\n");
	return true;
}

/* An input with no answer: an empty output line and the reason on stderr. */
static void no_answer(uint64_t line, const char *what, const char *why, size_t whylen)
{
	while (whylen && (why[whylen - 1] == '\n' || why[whylen - 1] == '\r'))
		whylen--;
	out_flush(); /* keep stdout and stderr in order for a terminal */
	fprintf(stderr, "%s: %s: %s %llu: %s%s%.*s\n", prog, type, nul_mode ? "input" : "line",
		(unsigned long long)line, what, whylen ? ": " : "", (int)whylen, why);
	mbuf_add(&outb, &sep, 1);
	exit_rc = 1;
}

static void emit(uint64_t line, uint32_t kind, const char *data, size_t len)
{
	if (kind == 0) {
		if (!nul_mode) {
			if (len && data[len - 1] == '\n')
				len--;
			if (memchr(data, '\n', len)) {
				no_answer(line, "the answer holds a newline (use seglam map -0)",
					  "", 0);
				return;
			}
		}
		mbuf_add(&outb, data, len);
		mbuf_add(&outb, &sep, 1);
		if (outb.len >= MAP_READ_CHUNK)
			out_flush(); /* large answers: hold one chunk, not a cycle's worth */
	} else {
		no_answer(line, kind == 1 ? "rejected" : "failed", data, len);
	}
}

static int map_fd = -1;

static void stream_failed(const char *what)
{
	int e = errno;

	out_flush();
	if (e == ENOENT) {
		fprintf(stderr,
			"%s: %s: unknown type (no procedure, and no LLM configured to "
			"write one)\n",
			prog, type);
		exit(2);
	}
	if (e == ENOSPC) {
		fprintf(stderr,
			"%s: %s: %s: the mount's buffers for map/ are full (the streams "
			"open now hold -o query_mem); try again when some have ended\n",
			prog, type, what);
		exit(3);
	}
	if (e != EIO || !print_log_reason())
		fprintf(stderr, "%s: %s: %s: %s (see seglam log %s)\n", prog, type, what,
			strerror(e), type);
	exit(3);
}

/* Write the frames of one cycle, read back their @n records, print them. */
static void cycle(size_t n, uint64_t *line)
{
	size_t done = 0, at = 0;

	while (done < frames.len) {
		ssize_t r = write(map_fd, frames.data + done, frames.len - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			stream_failed("writing inputs");
		done += (size_t)r;
	}
	frames.len = 0;
	rb.len = 0;
	while (n) {
		ssize_t r;

		/* Complete records first. */
		while (n && rb.len - at >= 8) {
			uint32_t kind = get_le32(rb.data + at), len = get_le32(rb.data + at + 4);

			if (rb.len - at - 8 < len)
				break;
			emit((*line)++, kind, rb.data + at + 8, len);
			at += 8 + (size_t)len;
			n--;
		}
		if (!n)
			break;
		if (at) {
			memmove(rb.data, rb.data + at, rb.len - at);
			rb.len -= at;
			at = 0;
		}
		mbuf_need(&rb, MAP_READ_CHUNK);
		r = read(map_fd, rb.data + rb.len, rb.cap - rb.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			stream_failed("reading answers");
		if (r == 0) {
			errno = EPROTO;
			stream_failed("the answers ended early");
		}
		rb.len += (size_t)r;
	}
	out_flush();
}

static uint64_t lineno = 1;
static size_t nframes, scan; /* in.data[0..scan) holds no separator */
static bool skipping;	     /* dropping a line over MAP_INPUT_MAX as it comes */

static void add_frame(const char *p, size_t len)
{
	char h[4];

	put_le32(h, (uint32_t)len);
	mbuf_add(&frames, h, 4);
	mbuf_add(&frames, p, len);
	nframes++;
}

static void send_frames(void)
{
	if (nframes)
		cycle(nframes, &lineno);
	nframes = 0;
}

static void too_long(void)
{
	send_frames(); /* what came before is answered first: output stays in order */
	no_answer(lineno++, "failed", "input longer than 1 MiB", 23);
}

/* Turn the complete inputs held in @in into frames, up to one cycle's worth; keep
 * the rest (and a partial input) in @in. */
static void split(void)
{
	size_t start = 0;

	if (!in.len)
		return;
	while (nframes < MAP_CYCLE_INPUTS && frames.len < MAP_CYCLE_BYTES) {
		char *e = memchr(in.data + scan, sep, in.len - scan);
		size_t len;

		if (!e) {
			scan = in.len;
			break;
		}
		len = (size_t)(e - in.data) - start;
		if (skipping)
			skipping = false; /* reported when it began */
		else if (len > MAP_INPUT_MAX)
			too_long();
		else
			add_frame(in.data + start, len);
		start = scan = (size_t)(e - in.data) + 1;
	}
	if (start) {
		memmove(in.data, in.data + start, in.len - start);
		in.len -= start;
		scan -= start;
	}
	if (!skipping && scan == in.len && in.len > MAP_INPUT_MAX) {
		too_long();
		skipping = true;
	}
	if (skipping) {
		in.len = 0;
		scan = 0;
	}
}

int main(int argc, char **argv)
{
	char path[4096];
	bool eof = false;
	int fd = 0, a = 1;

	if (a < argc && !strcmp(argv[a], "-0")) {
		nul_mode = true;
		sep = '\0';
		a++;
	}
	if (argc - a < 2 || argc - a > 3) {
		fprintf(stderr, "usage: seglam map [-0] TYPE [FILE]\n");
		return 64;
	}
	mnt = argv[a];
	type = argv[a + 1];
	if (argc - a == 3 && strcmp(argv[a + 2], "-") != 0) {
		fd = open(argv[a + 2], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[a + 2], strerror(errno));
			return 64;
		}
	}
	snprintf(path, sizeof(path), "%s/map", mnt);
	if (access(path, F_OK) != 0) {
		fprintf(stderr,
			"%s: %s: not a seglamfs mount with map/ (set SEGLAM_MOUNT or use -m)\n",
			prog, mnt);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/map/%s", mnt, type);
	map_fd = open(path, O_RDWR | O_CLOEXEC);
	if (map_fd < 0)
		stream_failed("cannot open map/TYPE");

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		split();
		if (nframes >= MAP_CYCLE_INPUTS || frames.len >= MAP_CYCLE_BYTES) {
			send_frames();
			continue;
		}
		if (eof) {
			if (in.len) /* the last input, without a final separator */
				add_frame(in.data, in.len);
			send_frames();
			break;
		}
		/* Send what there is rather than wait for more input (streaming). */
		if (nframes && poll(&p, 1, 0) == 0) {
			send_frames();
			continue;
		}
		mbuf_need(&in, MAP_READ_CHUNK);
		r = read(fd, in.data + in.len, MAP_READ_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "%s: reading input: %s\n", prog, strerror(errno));
			return 3;
		}
		if (r == 0)
			eof = true;
		in.len += (size_t)r;
	}
	out_flush();
	free(in.data);
	free(frames.data);
	free(rb.data);
	free(outb.data);
	return exit_rc;
}
