/*
 * fake_worker: a hostile stand-in for seglam-worker, for the sandbox fuzz
 * target.  sandbox/spawn.c starts it exactly as it starts the real worker
 * (posix_spawn, empty environment, fd 0 requests, fd 1 responses, fd 4 loads);
 * the target passes the path of a file holding the fuzz input as INCLUDE_DIR
 * (argv[1]).
 *
 * The file is [u8 mode][reply stream...].  mode:
 *   bit 0    read one request frame first (as the real worker does: the first is
 *            a load, on fd 4)
 *   bits 1-2 how the stream is written: at once, 1 byte, 3 bytes, or two halves
 *            with a pause between
 *   bit 3    stay alive afterwards, reading requests until EOF (so the daemon
 *            may keep this worker and send it more inputs)
 *   bits 4-5 how it ends: exit 0, exit 66 (out of memory), SIGSEGV, SIGSYS
 * Never built with sanitizers, never calls anything but plain syscalls.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void put(const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(1, p, n);

		if (w <= 0)
			_exit(0); /* the daemon has gone or killed the pipe */
		p += w;
		n -= (size_t)w;
	}
}

static void skip_request(int fd)
{
	uint8_t hdr[4], chunk[4096];
	uint32_t len;

	if (read(fd, hdr, 4) != 4)
		return;
	memcpy(&len, hdr, 4);
	if (len == 0xfffffff1u) {
		/* a load (frame.h): slot, source length; then the source */
		uint32_t l[2];

		if (read(fd, l, sizeof(l)) != (ssize_t)sizeof(l))
			return;
		len = l[1];
	} else if (len == 0xfffffff0u) {
		/* a batch (frame.h): slot, then flags, flush_ms, count, bytes,
		 * out_max; then bytes */
		uint32_t b[6];

		if (read(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			return;
		len = b[4];
	} else {
		uint32_t slot; /* an input: its slot, then its bytes */

		if (read(fd, &slot, 4) != 4)
			return;
	}
	while (len) {
		ssize_t r = read(fd, chunk, len < sizeof(chunk) ? len : sizeof(chunk));

		if (r <= 0)
			return;
		len -= (uint32_t)r;
	}
}

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	struct stat st;
	ssize_t n = 0, r;
	int fd, mode, step;

	if (argc < 2 || (fd = open(argv[1], O_RDONLY)) < 0)
		return 64;
	while (n < (ssize_t)sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - (size_t)n)) > 0)
		n += r;
	close(fd);
	if (n < 1)
		return 67;
	mode = buf[0];
	if (mode & 1)
		skip_request(fstat(4, &st) == 0 && S_ISFIFO(st.st_mode) ? 4 : 0);
	switch (mode >> 1 & 3) {
	case 0:
		put(buf + 1, (size_t)n - 1);
		break;
	case 1:
	case 2:
		step = (mode >> 1 & 3) == 1 ? 1 : 3;
		for (ssize_t i = 1; i < n; i += step)
			put(buf + i, (size_t)(n - i < step ? n - i : step));
		break;
	case 3: {
		struct timespec ms = {0, 1000000};
		size_t half = (size_t)(n - 1) / 2;

		put(buf + 1, half);
		nanosleep(&ms, NULL);
		put(buf + 1 + half, (size_t)n - 1 - half);
		break;
	}
	}
	if (mode & 8) {
		uint8_t chunk[4096];

		while (read(0, chunk, sizeof(chunk)) > 0)
			;
	}
	switch (mode >> 4 & 3) {
	case 0:
		return 0;
	case 1:
		return 66;
	case 2:
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
		break;
	case 3:
		signal(SIGSYS, SIG_DFL);
		raise(SIGSYS);
		break;
	}
	return 0;
}
