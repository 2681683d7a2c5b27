/*
 * fuzz frame: sandbox/worker/frame.c from the daemon's side, the worker hostile.
 * The input is a worker's reply stream; it is put into a pipe whose write end is
 * then closed, and read back the way sandbox/exchange.c sandbox_exchange() does:
 * header (frame_read_full), validation against a status range and a length cap
 * (frame_get_response), payload.  Every byte handed out must be exactly the
 * stream's, no length may exceed the cap, and nothing may block.
 *
 * Input: [u8 flags][u8 cap_lo][u8 cap_hi][stream...]; flags bit 0-1: highest
 * valid status (the daemon uses 3 for load replies); bit 3: a run's reply instead
 * (highest FRAME_CALL: call requests, whose payload then goes through
 * frame_get_call); bit 2: blocking reads (deadline -1, as the worker reads)
 * instead of poll + deadline.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"

int fuzz_frame(const uint8_t *data, size_t size)
{
	int32_t max_status, first, status;
	uint32_t cap, len;
	const uint8_t *s;
	size_t n, off = 0;
	uint8_t hdr[FRAME_RESP_HDR], req[FRAME_REQ_HDR], *payload;
	int p[2], blocking;

	if (size < 3)
		return 0;
	first = data[0] & 3;
	/* bit 3: the context of a run's reply (frame.h: FRAME_TOO_LARGE has no bytes) */
	max_status = data[0] & 8 ? FRAME_CALL : first;
	blocking = data[0] & 4;
	cap = (uint32_t)data[1] | (uint32_t)data[2] << 8;
	s = data + 3;
	n = size - 3;

	/* The encoders and decoders agree. */
	frame_put_request(req, (uint32_t)n);
	FUZZ_CHECK(frame_get_request(req) == (uint32_t)n);
	frame_put_response(hdr, first, cap);
	FUZZ_CHECK(frame_get_response(hdr, max_status, cap, &status, &len) ==
		   (first == FRAME_TOO_LARGE && max_status >= FRAME_CALL && cap ? -EPROTO : 0));

	FUZZ_CHECK(pipe2(p, O_CLOEXEC) == 0);
	if (n > 65536)
		fcntl(p[1], F_SETPIPE_SZ, (int)n);
	fcntl(p[1], F_SETFL, O_NONBLOCK); /* never block on a stream the pipe cannot hold */
	if (n && frame_write_full(p[1], s, n, -1) != 0) {
		/* Larger than the pipe can hold: not a case for this target. */
		close(p[0]);
		close(p[1]);
		return 0;
	}
	close(p[1]);
	if (!blocking)
		fcntl(p[0], F_SETFL, O_NONBLOCK);
	payload = malloc(cap + 1);
	FUZZ_CHECK(payload);
	for (;;) {
		int64_t deadline = blocking ? -1 : frame_now_ms() + 1000;
		ssize_t r = frame_read_full(p[0], hdr, sizeof(hdr), deadline);

		/* Never a timeout: the writer is gone, EOF comes at once. */
		FUZZ_CHECK(r >= 0 && r <= (ssize_t)sizeof(hdr));
		FUZZ_CHECK((size_t)r == (n - off < sizeof(hdr) ? n - off : sizeof(hdr)));
		FUZZ_CHECK(!memcmp(hdr, s + off, (size_t)r));
		off += (size_t)r;
		if (r < (ssize_t)sizeof(hdr))
			break; /* the worker died mid-header */
		status = -1;
		len = UINT32_MAX;
		if (frame_get_response(hdr, max_status, cap, &status, &len) < 0) {
			/* Nothing assigned on a protocol violation. */
			FUZZ_CHECK(status == -1 && len == UINT32_MAX);
			break; /* the daemon kills the worker */
		}
		FUZZ_CHECK(status >= 0 && status <= max_status);
		FUZZ_CHECK(len <= cap);
		FUZZ_CHECK(!(status == FRAME_TOO_LARGE && max_status >= FRAME_CALL && len));
		r = frame_read_full(p[0], payload, len, deadline);
		FUZZ_CHECK(r >= 0 && (size_t)r <= len);
		FUZZ_CHECK((size_t)r == (n - off < len ? n - off : len));
		FUZZ_CHECK(!r || !memcmp(payload, s + off, (size_t)r));
		off += (size_t)r;
		if ((size_t)r < len)
			break; /* the worker died mid-payload */
		if (status == FRAME_CALL) {
			/* A call request (composition): TYPE NUL INPUT, all within it. */
			const char *type, *in;
			size_t inlen;

			payload[len] = '\0';
			if (frame_get_call((const char *)payload, len, &type, &in, &inlen) == 0) {
				size_t tl = strlen(type);

				FUZZ_CHECK(type == (const char *)payload);
				FUZZ_CHECK(tl >= 1 && tl <= FRAME_CALL_TYPE_MAX);
				FUZZ_CHECK(in == type + tl + 1 && in + inlen == type + len);
			}
		}
	}
	FUZZ_CHECK(off <= n);
	free(payload);
	close(p[0]);
	return 0;
}

FUZZ_MAIN(frame)
