/* frame: the daemon <-> worker pipe protocol, see frame.h.  No allocation, no
 * globals: both the daemon and the seccomp-locked worker use it. */
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t frame_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for @events on @fd until @deadline_ms.  Returns 0 or -ETIMEDOUT/-errno. */
static int frame_wait(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline_ms - frame_now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0; /* readable, writable, HUP or ERR: the syscall will tell */
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

ssize_t frame_read_full(int fd, void *buf, size_t n, int64_t deadline_ms)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r > 0) {
			got += (size_t)r;
		} else if (r == 0) {
			break;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN && deadline_ms >= 0) {
			int w = frame_wait(fd, POLLIN, deadline_ms);

			if (w < 0)
				return w;
		} else {
			return -errno;
		}
	}
	return (ssize_t)got;
}

int frame_write_full(int fd, const void *buf, size_t n, int64_t deadline_ms)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);

		if (r >= 0) {
			done += (size_t)r;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN && deadline_ms >= 0) {
			int w = frame_wait(fd, POLLOUT, deadline_ms);

			if (w < 0)
				return w;
		} else {
			return -errno;
		}
	}
	return 0;
}

void frame_put_request(uint8_t hdr[FRAME_REQ_HDR], uint32_t len)
{
	memcpy(hdr, &len, 4);
}

uint32_t frame_get_request(const uint8_t hdr[FRAME_REQ_HDR])
{
	uint32_t len;

	memcpy(&len, hdr, 4);
	return len;
}

void frame_put_response(uint8_t hdr[FRAME_RESP_HDR], int32_t status, uint32_t len)
{
	memcpy(hdr, &status, 4);
	memcpy(hdr + 4, &len, 4);
}

int frame_get_response(const uint8_t hdr[FRAME_RESP_HDR], int32_t max_status, uint32_t cap,
		       int32_t *status, uint32_t *len)
{
	int32_t s;
	uint32_t l;

	memcpy(&s, hdr, 4);
	memcpy(&l, hdr + 4, 4);
	if (s < 0 || s > max_status || l > cap)
		return -EPROTO;
	if (s == FRAME_TOO_LARGE && max_status >= FRAME_CALL && l != 0) /* a run's reply */
		return -EPROTO;
	*status = s;
	*len = l;
	return 0;
}

int frame_get_call(const char *p, size_t len, const char **type, const char **in, size_t *inlen)
{
	const char *nul =
	    memchr(p, '\0', len < FRAME_CALL_TYPE_MAX + 1 ? len : FRAME_CALL_TYPE_MAX + 1);

	if (!nul || nul == p)
		return -EPROTO;
	*type = p;
	*in = nul + 1;
	*inlen = len - (size_t)(nul + 1 - p);
	return 0;
}

ssize_t frame_send_fds(int sock, const int fds[FRAME_WORKER_FDS])
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(FRAME_WORKER_FDS * sizeof(int))];
	} u;
	char byte = 'W';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(FRAME_WORKER_FDS * sizeof(int));
	memcpy(CMSG_DATA(c), fds, FRAME_WORKER_FDS * sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}
