/*
 * command: the `command` provider.  Runs SEGLAM_LLM_COMMAND with /bin/sh -c in
 * its own process group, writes the prompt to its stdin, takes the reply from its
 * stdout, and kills the whole group when it runs past its time.
 *
 * The prompt on stdin is
 *
 *	<system>
 *	SYSTEM PROMPT
 *	</system>
 *
 *	<user>
 *	USER PROMPT
 *	</user>
 *
 * The daemon is multithreaded: posix_spawn (not fork), close-on-exec pipes, and
 * a socket for stdin so that a command that does not read it costs an EPIPE
 * (MSG_NOSIGNAL), never a SIGPIPE for the whole daemon.  One poll loop feeds
 * stdin and drains stdout and stderr, so neither side can block the other.
 */
#include "provider.h"

#include "clock.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define LLM_CMD_STDERR_MAX 4096

static void llm_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Read what is there; 1 at EOF, 0 otherwise. */
static int llm_drain(int fd, struct buf *b, size_t max, int *overflow)
{
	char tmp[65536];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n == 0)
		return 1;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : 1;
	if (b->len + (size_t)n > max) {
		*overflow = 1;
		n = (ssize_t)(max - b->len);
	}
	buf_add(b, tmp, (size_t)n);
	return 0;
}

int llm_command_complete(const struct llm_config *cfg, const char *system, const char *user,
			 uint64_t deadline_ms, struct llm_reply *reply, struct buf *err)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	struct buf prompt = BUF_INIT, eout = BUF_INIT;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int have_fa = 0, have_attr = 0, overflow = 0, status = 0, killed = 0;
	uint64_t start = clock_mono_ms(), limit, now = start;
	const char *why = NULL;
	size_t off = 0;
	pid_t pid = -1;
	sigset_t set;
	int ret = -EIO;
	char *argv[] = {"sh", "-c", cfg->command, NULL};

	if (!cfg->command) {
		buf_adds(err, "command: SEGLAM_LLM_COMMAND is not set");
		goto out;
	}
	limit = now + cfg->request_timeout_ms;
	if (!cfg->request_timeout_ms || limit > deadline_ms)
		limit = deadline_ms;
	buf_printf(&prompt, "<system>\n%s\n</system>\n\n<user>\n%s\n</user>\n", system, user);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) || pipe2(out, O_CLOEXEC) ||
	    pipe2(errp, O_CLOEXEC)) {
		buf_printf(err, "command: cannot make pipes: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	have_fa = 1;
	posix_spawn_file_actions_adddup2(&fa, in[1], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	posix_spawnattr_init(&attr);
	have_attr = 1;
	/* Own process group, to kill what the shell started too; default signals. */
	posix_spawnattr_setpgroup(&attr, 0);
	sigemptyset(&set);
	posix_spawnattr_setsigmask(&attr, &set);
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	posix_spawnattr_setsigdefault(&attr, &set);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF);
	ret = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
	if (ret) {
		buf_printf(err, "command: cannot run /bin/sh: %s", strerror(ret));
		pid = -1;
		ret = -EIO;
		goto out;
	}
	ret = -EIO;
	reply->attempts = 1;
	llm_close(&in[1]);
	llm_close(&out[1]);
	llm_close(&errp[1]);
	fcntl(in[0], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);

	while (out[0] >= 0 || errp[0] >= 0) {
		struct pollfd p[3];
		nfds_t np = 0;
		int iin = -1, iout = -1, ierr = -1;

		now = clock_mono_ms();
		if (now >= limit) {
			killed = 1;
			break;
		}
		if (in[0] >= 0) {
			p[np] = (struct pollfd){in[0], POLLOUT, 0};
			iin = (int)np++;
		}
		if (out[0] >= 0) {
			p[np] = (struct pollfd){out[0], POLLIN, 0};
			iout = (int)np++;
		}
		if (errp[0] >= 0) {
			p[np] = (struct pollfd){errp[0], POLLIN, 0};
			ierr = (int)np++;
		}
		if (poll(p, np, (int)(limit - now)) < 0) {
			if (errno == EINTR)
				continue;
			why = "poll failed";
			killed = 1;
			break;
		}
		if (iin >= 0 && p[iin].revents) {
			ssize_t n = send(in[0], prompt.data + off, prompt.len - off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n > 0)
				off += (size_t)n;
			/* EPIPE: the command does not want (all of) the prompt; its call. */
			if (off == prompt.len || (n < 0 && errno != EAGAIN && errno != EINTR))
				llm_close(&in[0]);
		}
		if (iout >= 0 && p[iout].revents) {
			if (llm_drain(out[0], &reply->text, LLM_MAX_RESPONSE, &overflow) ||
			    overflow)
				llm_close(&out[0]);
		}
		if (ierr >= 0 && p[ierr].revents) {
			int full = 0; /* past the cap: keep draining, keep only the head */

			if (llm_drain(errp[0], &eout, LLM_CMD_STDERR_MAX, &full))
				llm_close(&errp[0]);
		}
		if (overflow) {
			killed = 1;
			break;
		}
	}
	llm_close(&in[0]);
	if (killed) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		pid = -1;
		if (overflow)
			buf_printf(err, "command: reply larger than %u bytes", LLM_MAX_RESPONSE);
		else if (why)
			buf_printf(err, "command: %s (killed)", why);
		else
			buf_printf(err, "command: timed out after %llu ms (killed)",
				   (unsigned long long)(clock_mono_ms() - start));
		goto out;
	}
	/* Output is closed; the shell should be gone, or about to be. */
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (clock_mono_ms() >= limit) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			buf_adds(err,
				 "command: timed out waiting for the command to exit (killed)");
			pid = -1;
			goto out;
		}
		poll(NULL, 0, 5);
	}
	pid = -1;
	if (WIFSIGNALED(status) || !WIFEXITED(status) || WEXITSTATUS(status)) {
		size_t n = 0;

		if (WIFSIGNALED(status))
			buf_printf(err, "command: killed by signal %d", WTERMSIG(status));
		else
			buf_printf(err, "command: exited with status %d",
				   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		while (n < eout.len && (eout.data[n] == '\n' || eout.data[n] == '\r'))
			n++;
		if (n < eout.len) {
			size_t e = n;

			while (e < eout.len && eout.data[e] != '\n')
				e++;
			buf_adds(err, ": ");
			llm_add_oneline(err, eout.data + n, e - n, 300);
		}
		goto out;
	}
	if (!reply->text.len) {
		buf_adds(err, "command: no output on stdout");
		goto out;
	}
	ret = 0;
out:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	llm_close(&in[0]);
	llm_close(&in[1]);
	llm_close(&out[0]);
	llm_close(&out[1]);
	llm_close(&errp[0]);
	llm_close(&errp[1]);
	if (have_fa)
		posix_spawn_file_actions_destroy(&fa);
	if (have_attr)
		posix_spawnattr_destroy(&attr);
	buf_free(&prompt);
	buf_free(&eout);
	if (ret)
		buf_free(&reply->text);
	return ret;
}
