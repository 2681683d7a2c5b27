/*
 * test_llm_http: llm_complete() against the scripted test server
 * (tests/llm_server.py, started here as a child) for both HTTP protocols, and
 * the command provider with shell scripts: replies, usage, retries, timeouts,
 * errors, and that the API key never leaves in an error or a log line.
 *
 * Usage: test_llm_http [path/to/llm_server.py]   (default tests/llm_server.py)
 * Prints "ok N - name" / "not ok N - name"; exits non-zero on any failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "llm.h"
#include "log.h"
#include "tap.h"

extern char **environ;

#define KEY "sk-test-SECRET-0123456789abcdef"

static int server_port;
static pid_t server_pid;
static char tmpdir[] = "/tmp/test_llm_http.XXXXXX";

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t collect(char *d, size_t s, size_t n, void *arg)
{
	buf_add(arg, d, s * n);
	return s * n;
}

/* A request to the server's control API; returns the body (caller frees). */
static char *ctl(const char *method, const char *path, const char *json)
{
	struct buf url = BUF_INIT, resp = BUF_INIT;
	CURL *c = curl_easy_init();

	buf_printf(&url, "http://127.0.0.1:%d%s", server_port, path);
	curl_easy_setopt(c, CURLOPT_URL, url.data);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json ? json : "");
	if (curl_easy_perform(c) != CURLE_OK)
		fprintf(tap_out, "# control request %s failed\n", path);
	curl_easy_cleanup(c);
	buf_free(&url);
	return buf_steal(&resp);
}

static void script(const char *json)
{
	free(ctl("POST", "/_reset", "{}"));
	free(ctl("POST", "/_script", json));
}

/* /_calls parsed; caller cJSON_Delete()s. */
static cJSON *calls(void)
{
	char *s = ctl("GET", "/_calls", NULL);
	cJSON *j = cJSON_Parse(s);

	free(s);
	return j;
}

static int ncalls(void)
{
	cJSON *j = calls();
	cJSON *c = cJSON_GetObjectItem(j, "count");
	int n = cJSON_IsNumber(c) ? c->valueint : -1;

	cJSON_Delete(j);
	return n;
}

static void start_server(const char *path)
{
	char portfile[300], slog[300],
	    *argv[] = {"python3", (char *)path,		"--port", "0", "--port-file",
		       portfile,  "--exit-with-parent", NULL};
	posix_spawn_file_actions_t fa;
	long long t0 = now_ms();
	int rc;

	snprintf(portfile, sizeof(portfile), "%s/port", tmpdir);
	snprintf(slog, sizeof(slog), "%s/server.log", tmpdir);
	/* Not our stdout: a runner waiting for EOF there would wait for the server. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, slog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawn(&server_pid, "/usr/bin/python3", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(tap_out, "Bail out! cannot start %s\n", path);
		exit(1);
	}
	while (now_ms() - t0 < 15000) {
		FILE *f = fopen(portfile, "r");

		if (f) {
			if (fscanf(f, "%d", &server_port) != 1)
				server_port = 0;
			fclose(f);
			if (server_port)
				return;
		}
		usleep(20000);
	}
	fprintf(tap_out, "Bail out! %s did not start\n", path);
	kill(server_pid, SIGKILL);
	exit(1);
}

static void make_cfg(struct llm_config *cfg, enum llm_provider p)
{
	char url[100];

	memset(cfg, 0, sizeof(*cfg));
	cfg->provider = p;
	if (p == LLM_OPENAI)
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/", server_port);
	else
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", server_port);
	cfg->url = strdup(url);
	cfg->model = strdup("test-model");
	cfg->api_key = strdup(KEY);
	cfg->connect_timeout_ms = 1000;
	cfg->request_timeout_ms = 3000;
	cfg->total_timeout_ms = 10000;
	cfg->max_retries = 4;
}

static const char *jstr(cJSON *obj, const char *name)
{
	cJSON *v = cJSON_GetObjectItem(obj, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *hdr(cJSON *call, const char *name)
{
	cJSON *h = cJSON_GetObjectItem(cJSON_GetObjectItem(call, "headers"), name);

	return cJSON_IsString(h) ? h->valuestring : NULL;
}

#define PROC                                                                                       \
	"#include <seglam.h>\\n\\nint seglam_run(const char *in, size_t len, seglam_out "          \
	"*out)\\n{\\n"                                                                             \
	"\\tseglam_write(out, in, len);\\n\\treturn 0;\\n}\\n"

static void test_provider(enum llm_provider p)
{
	const char *pn = llm_provider_name(p);
	struct llm_config cfg;
	struct llm_reply r;
	struct buf err = BUF_INIT, code = BUF_INIT;
	long long t0;
	int ret;
	cJSON *j, *call, *body;

	make_cfg(&cfg, p);

	/* A good reply, with usage. */
	script("[{\"kind\": \"code\", \"code\": \"" PROC "\", \"usage\": [123, 45]}]");
	ret = llm_complete(&cfg, "SYSTEM PROMPT", "Type: echo\nUSER PROMPT", &r, &err);
	CHECK(ret == 0 && r.tokens_in == 123 && r.tokens_out == 45 && r.attempts == 1,
	      "%s: good reply, usage", pn);
	CHECK(ret == 0 && llm_reply_code(r.text.data, r.text.len, &code) == 0 &&
		  strstr(code.data, "seglam_write(out, in, len);"),
	      "%s: the code comes out of the reply", pn);
	j = calls();
	call = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "calls"), 0);
	body = cJSON_GetObjectItem(call, "body");
	CHECK(ncalls() == 1, "%s: one call", pn);
	if (p == LLM_OPENAI) {
		cJSON *msgs = cJSON_GetObjectItem(body, "messages");

		CHECK(hdr(call, "authorization") &&
			  !strcmp(hdr(call, "authorization"), "Bearer " KEY),
		      "openai: Bearer key");
		CHECK(!strcmp(jstr(call, "path"), "/v1/chat/completions"),
		      "openai: path under the base URL, trailing slash stripped");
		CHECK(cJSON_GetArraySize(msgs) == 2 &&
			  !strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "role"), "system") &&
			  !strcmp(jstr(cJSON_GetArrayItem(msgs, 0), "content"), "SYSTEM PROMPT") &&
			  cJSON_GetObjectItem(body, "max_tokens") &&
			  cJSON_GetObjectItem(body, "temperature") &&
			  cJSON_GetObjectItem(body, "temperature")->valuedouble == 0 &&
			  !strcmp(jstr(body, "model"), "test-model"),
		      "openai: body (system + user messages, max_tokens, temperature 0, model)");
	} else {
		CHECK(hdr(call, "x-api-key") && !strcmp(hdr(call, "x-api-key"), KEY) &&
			  hdr(call, "anthropic-version") &&
			  !strcmp(hdr(call, "anthropic-version"), "2023-06-01") &&
			  !hdr(call, "authorization"),
		      "anthropic: x-api-key and anthropic-version");
		CHECK(!strcmp(jstr(call, "path"), "/v1/messages") &&
			  cJSON_IsString(cJSON_GetObjectItem(body, "system")) &&
			  cJSON_GetArraySize(cJSON_GetObjectItem(body, "messages")) == 1 &&
			  cJSON_GetObjectItem(body, "max_tokens"),
		      "anthropic: /v1/messages, top-level system, max_tokens");
	}
	cJSON_Delete(j);
	llm_reply_free(&r);

	/* Usage missing. */
	script("[{\"kind\": \"code\", \"code\": \"" PROC "\", \"usage\": false}]");
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == 0 && r.tokens_in == -1 && r.tokens_out == -1, "%s: no usage: tokens -1", pn);
	llm_reply_free(&r);

	/* 429 with Retry-After: 1, then success. */
	script("[{\"kind\": \"status\", \"status\": 429, \"headers\": {\"Retry-After\": \"1\"}}]");
	t0 = now_ms();
	ret = llm_complete(&cfg, "s", "Type: upper\n", &r, &err);
	CHECK(ret == 0 && now_ms() - t0 >= 1000 && ncalls() == 2 && r.attempts == 2,
	      "%s: 429 Retry-After 1 retried after >= 1 s (%lld ms)", pn, now_ms() - t0);
	llm_reply_free(&r);

	/* 500, then 529 with retry-after-ms, then success. */
	script("[{\"kind\": \"status\", \"status\": 500}, {\"kind\": \"status\", \"status\": 529, "
	       "\"headers\": {\"retry-after-ms\": \"50\", \"Retry-After\": \"30\"}}]");
	t0 = now_ms();
	ret = llm_complete(&cfg, "s", "Type: upper\n", &r, &err);
	CHECK(ret == 0 && ncalls() == 3 && r.attempts == 3 && now_ms() - t0 < 3000,
	      "%s: 500 and 529 retried; retry-after-ms wins (%lld ms)", pn, now_ms() - t0);
	llm_reply_free(&r);

	/* 401 at once, with the server echoing the key. */
	script("{\"responses\": [], \"api_key\": \"the-right-key\"}");
	buf_reset(&err);
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == -EACCES && ncalls() == 1 && strstr(err.data, "401") &&
		  strstr(err.data, "SEGLAM_LLM_API_KEY") && !strstr(err.data, KEY) &&
		  !strstr(err.data, "0123456789abcdef"),
	      "%s: 401 -> -EACCES at once, key scrubbed: %s", pn, err.data);
	llm_reply_free(&r);

	/* insufficient_quota: no retry. */
	script("[{\"kind\": \"status\", \"status\": 429, \"body\": {\"error\": {\"message\": "
	       "\"You exceeded your current quota\", \"type\": \"insufficient_quota\", "
	       "\"code\": \"insufficient_quota\"}}}]");
	buf_reset(&err);
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == -EDQUOT && ncalls() == 1 && strstr(err.data, "quota"),
	      "%s: insufficient_quota -> -EDQUOT, no retry: %s", pn, err.data);
	llm_reply_free(&r);

	/* {"error": "..."} shape, 404. */
	script("[{\"kind\": \"status\", \"status\": 404, \"body\": {\"error\": \"model 'x' not "
	       "found\"}}]");
	buf_reset(&err);
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == -EINVAL && ncalls() == 1 && strstr(err.data, "model 'x' not found") &&
		  strstr(err.data, "HTTP 404"),
	      "%s: {\"error\": string} 404 -> -EINVAL: %s", pn, err.data);
	llm_reply_free(&r);

	/* A redirect (http:// for an https:// server): not followed, and said so. */
	script("[{\"kind\": \"status\", \"status\": 301, \"body\": \"<html>Moved</html>\", "
	       "\"headers\": {\"Location\": \"https://127.0.0.1/v1\"}}]");
	buf_reset(&err);
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret != 0 && ncalls() == 1 && strstr(err.data, "HTTP 301: <html>Moved</html>") &&
		  strstr(err.data, "(a redirect: check the URL, e.g. https)"),
	      "%s: 301 -> a redirect, check the URL: %s", pn, err.data);
	llm_reply_free(&r);

	/* A 5xx with an empty body says so, not "HTTP 500: ". */
	script("[{\"kind\": \"status\", \"status\": 500, \"body\": \"\"}]");
	cfg.max_retries = 0;
	buf_reset(&err);
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret != 0 && ncalls() == 1 && strstr(err.data, "HTTP 500 (empty body)"),
	      "%s: 500 with an empty body: (empty body): %s", pn, err.data);
	cfg.max_retries = 4;
	llm_reply_free(&r);

	/* Malformed JSON with 200. */
	script("[{\"kind\": \"malformed\"}]");
	buf_reset(&err);
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == -EIO && ncalls() == 1 && strstr(err.data, "malformed"),
	      "%s: malformed JSON -> -EIO: %s", pn, err.data);
	llm_reply_free(&r);

	/* Slow but within the request timeout. */
	script("[{\"kind\": \"slow\", \"delay\": 1.2}]");
	ret = llm_complete(&cfg, "s", "Type: upper\n", &r, &err);
	CHECK(ret == 0 && r.attempts == 1, "%s: slow reply within the timeout", pn);
	llm_reply_free(&r);

	/* Hang: bounded by the total timeout. */
	script("{\"responses\": [], \"default\": {\"kind\": \"hang\"}}");
	cfg.request_timeout_ms = 800;
	cfg.total_timeout_ms = 2000;
	buf_reset(&err);
	t0 = now_ms();
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == -EIO && now_ms() - t0 < 2600 && now_ms() - t0 >= 700,
	      "%s: hung server -> -EIO within the total timeout (%lld ms): %s", pn, now_ms() - t0,
	      err.data);
	llm_reply_free(&r);
	cfg.request_timeout_ms = 3000;
	cfg.total_timeout_ms = 10000;

	if (p == LLM_ANTHROPIC) {
		script("[{\"kind\": \"text\", \"text\": \"AB\", \"split\": true}]");
		ret = llm_complete(&cfg, "s", "u", &r, &err);
		CHECK(ret == 0 && !strcmp(r.text.data, "AB"),
		      "anthropic: text blocks concatenated, thinking block skipped");
		llm_reply_free(&r);
	} else {
		free(cfg.api_key);
		cfg.api_key = NULL;
		free(cfg.max_tokens_field);
		cfg.max_tokens_field = strdup("max_completion_tokens");
		script("[{\"kind\": \"code\", \"code\": \"" PROC "\"}]");
		ret = llm_complete(&cfg, "s", "u", &r, &err);
		j = calls();
		call = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "calls"), 0);
		body = cJSON_GetObjectItem(call, "body");
		CHECK(ret == 0 && !hdr(call, "authorization") &&
			  cJSON_GetObjectItem(body, "max_completion_tokens") &&
			  !cJSON_GetObjectItem(body, "max_tokens") &&
			  !cJSON_GetObjectItem(body, "temperature"),
		      "openai: no key -> no Authorization; max_completion_tokens, no temperature");
		cJSON_Delete(j);
		llm_reply_free(&r);
	}
	llm_config_free(&cfg);
	buf_free(&err);
	buf_free(&code);
}

/* The real prompt, the server's auto mode, the parser: the path a miss takes. */
static void test_end_to_end(enum llm_provider p)
{
	struct llm_prompt_input in = {.type = "upper"};
	struct buf sys = BUF_INIT, user = BUF_INIT, err = BUF_INIT, code = BUF_INIT;
	struct llm_config cfg;
	struct llm_reply r;
	int ret;

	make_cfg(&cfg, p);
	llm_prompt_build(&in, &sys, &user);
	script("[]");
	ret = llm_complete(&cfg, sys.data, user.data, &r, &err);
	CHECK(ret == 0 && llm_reply_code(r.text.data, r.text.len, &code) == 0 &&
		  strstr(code.data, "toupper"),
	      "%s: prompt -> server (auto) -> code for type upper", llm_provider_name(p));
	llm_reply_free(&r);

	script("[{\"kind\": \"text\", \"text\": \"<think>\\n```c\\nint seglam_run(void) "
	       "{ return 9; }\\n```\\n</think>\\nAnswer:\\n```c\\n" PROC "```\\n\"}]");
	ret = llm_complete(&cfg, sys.data, user.data, &r, &err);
	CHECK(ret == 0 && llm_reply_code(r.text.data, r.text.len, &code) == 0 &&
		  strstr(code.data, "seglam_write") && !strstr(code.data, "return 9"),
	      "%s: a reply with a <think> block", llm_provider_name(p));
	llm_reply_free(&r);
	llm_config_free(&cfg);
	buf_free(&sys);
	buf_free(&user);
	buf_free(&err);
	buf_free(&code);
}

static void test_closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	struct llm_config cfg;
	struct llm_reply r;
	struct buf err = BUF_INIT;
	char url[64];
	long long t0;
	int ret;

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &alen);
	port = ntohs(a.sin_port);
	close(fd);
	make_cfg(&cfg, LLM_OPENAI);
	free(cfg.url);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", port);
	cfg.url = strdup(url);
	cfg.max_retries = 1;
	t0 = now_ms();
	ret = llm_complete(&cfg, "s", "u", &r, &err);
	CHECK(ret == -EIO && r.attempts == 2 && now_ms() - t0 < 2000 && strstr(err.data, "gave up"),
	      "closed port -> -EIO quickly after a retry (%lld ms): %s", now_ms() - t0, err.data);
	llm_reply_free(&r);
	llm_config_free(&cfg);
	buf_free(&err);
}

static char *write_script(const char *name, const char *text)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
		exit(1);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, 0755);
	return path;
}

static void test_command(void)
{
	struct llm_config cfg = {
	    .provider = LLM_COMMAND, .request_timeout_ms = 5000, .total_timeout_ms = 10000};
	struct llm_reply r;
	struct buf err = BUF_INIT, code = BUF_INIT, big = BUF_INIT;
	char *pidfile, cmd[400], *s;
	long long t0;
	int ret, pid = 0;
	FILE *f;

	cfg.command = write_script("reply.sh", "#!/bin/sh\ncat >/dev/null\n"
					       "echo 'Here it is:'\necho '```c'\n"
					       "echo '#include <seglam.h>'\n"
					       "echo 'int seglam_run(const char *in, size_t len, "
					       "seglam_out *out) { return 0; }'\necho '```'\n");
	ret = llm_complete(&cfg, "SYS", "USR", &r, &err);
	CHECK(ret == 0 && llm_reply_code(r.text.data, r.text.len, &code) == 0 &&
		  strstr(code.data, "seglam_run") && r.attempts == 1 && r.tokens_in == -1,
	      "command: a script replying with a fenced block");
	llm_reply_free(&r);
	free(cfg.command);

	cfg.command = strdup("cat");
	for (int i = 0; i < 40000; i++)
		buf_adds(&big, "0123456789abcdef0123456789abcdef0123456789abcdef01234567\n");
	ret = llm_complete(&cfg, "SYS", big.data, &r, &err);
	CHECK(ret == 0 &&
		  r.text.len ==
		      big.len + strlen("<system>\nSYS\n</system>\n\n<user>\n\n</user>\n") &&
		  !strncmp(r.text.data, "<system>\nSYS\n</system>\n\n<user>\n0123", 35),
	      "command: a 2 MB prompt through cat, system and user separated");
	llm_reply_free(&r);
	free(cfg.command);

	cfg.command = strdup("printf 'no stdin read'");
	ret = llm_complete(&cfg, "SYS", big.data, &r, &err);
	CHECK(ret == 0 && !strcmp(r.text.data, "no stdin read"),
	      "command: ignoring stdin is fine (no SIGPIPE)");
	llm_reply_free(&r);
	free(cfg.command);

	if (asprintf(&pidfile, "%s/sleep.pid", tmpdir) < 0)
		exit(1);
	snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s; wait", pidfile);
	cfg.command = strdup(cmd);
	cfg.request_timeout_ms = 500;
	buf_reset(&err);
	t0 = now_ms();
	ret = llm_complete(&cfg, "SYS", "USR", &r, &err);
	f = fopen(pidfile, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	usleep(100000);
	{
		/* Gone, or a zombie waiting for init: not running anyway. */
		char stat[64], st = 0;

		snprintf(stat, sizeof(stat), "/proc/%d/stat", pid);
		f = pid ? fopen(stat, "r") : NULL;
		if (f) {
			if (fscanf(f, "%*d %*s %c", &st) != 1)
				st = 0;
			fclose(f);
		}
		CHECK(ret == -EIO && now_ms() - t0 < 1500 && strstr(err.data, "timed out") && pid &&
			  (!f || st == 'Z'),
		      "command: timeout kills the process group (%lld ms): %s", now_ms() - t0,
		      err.data);
	}
	llm_reply_free(&r);
	free(cfg.command);
	free(pidfile);
	cfg.request_timeout_ms = 5000;

	cfg.command =
	    strdup("cat >/dev/null; echo partial; echo 'boom: it broke' >&2; echo second >&2; "
		   "exit 3");
	buf_reset(&err);
	ret = llm_complete(&cfg, "SYS", "USR", &r, &err);
	CHECK(ret == -EIO && strstr(err.data, "status 3: boom: it broke") &&
		  !strstr(err.data, "second"),
	      "command: exit status and first stderr line: %s", err.data);
	llm_reply_free(&r);
	free(cfg.command);

	cfg.command = strdup("true");
	buf_reset(&err);
	ret = llm_complete(&cfg, "SYS", "USR", &r, &err);
	CHECK(ret == -EIO && strstr(err.data, "no output"), "command: empty output -> -EIO");
	llm_reply_free(&r);
	free(cfg.command);
	cfg.command = NULL;

	(void)s;
	buf_free(&err);
	buf_free(&code);
	buf_free(&big);
}

/*
 * curl's allocator, watched: the copies curl_slist_append makes of a header
 * holding the key (curl strdups it) must be wiped before they are freed, as
 * the provider wipes its own (a core dump, a later allocation would show it).
 */
static struct {
	pthread_mutex_t lock;
	void *live[64]; /* strdup'd copies holding the key, not yet freed */
	size_t len[64];
	unsigned copies, unwiped;
} keycopy = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char *watch_strdup(const char *s)
{
	char *d = strdup(s);

	pthread_mutex_lock(&keycopy.lock);
	for (unsigned i = 0; d && strstr(d, KEY) && i < 64; i++) {
		if (!keycopy.live[i]) {
			keycopy.live[i] = d;
			keycopy.len[i] = strlen(d);
			keycopy.copies++;
			break;
		}
	}
	pthread_mutex_unlock(&keycopy.lock);
	return d;
}

static void watch_free(void *p)
{
	pthread_mutex_lock(&keycopy.lock);
	for (unsigned i = 0; p && i < 64; i++) {
		if (keycopy.live[i] == p) {
			keycopy.live[i] = NULL;
			keycopy.unwiped += memmem(p, keycopy.len[i], KEY, strlen(KEY)) != NULL;
			break;
		}
	}
	pthread_mutex_unlock(&keycopy.lock);
	free(p);
}

static void *watch_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

/* The key must not be in anything logged (fd 2 went to this file). */
static void test_log(const char *logpath)
{
	struct buf log = BUF_INIT;
	char chunk[4096];
	size_t n;
	FILE *f = fopen(logpath, "r");

	while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&log, chunk, n);
	if (f)
		fclose(f);
	CHECK(log.len > 0 && !memmem(log.data, log.len, KEY, strlen(KEY)) &&
		  !memmem(log.data, log.len, "0123456789abcdef", 16) &&
		  memmem(log.data, log.len, "retry", 5),
	      "the log (%zu bytes, with retries) never holds the key", log.len);
	buf_free(&log);
}

int main(int argc, char **argv)
{
	const char *server = argc > 1 ? argv[1] : "tests/llm_server.py";
	char logpath[300];
	int fd, status;

	signal(SIGPIPE, SIG_DFL); /* as harsh as it gets: a SIGPIPE would kill us */
	if (!mkdtemp(tmpdir))
		return 1;
	tap_out = fdopen(dup(1), "w"); /* the real stdout; fd 2 goes to a log we grep */
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	log_set_level(LOG_LVL_DEBUG);
	curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, watch_free, realloc, watch_strdup,
			     watch_calloc);

	start_server(server);
	test_provider(LLM_OPENAI);
	test_provider(LLM_ANTHROPIC);
	test_end_to_end(LLM_OPENAI);
	test_end_to_end(LLM_ANTHROPIC);
	test_closed_port();
	test_command();
	test_log(logpath);
	CHECK(keycopy.copies > 0 && keycopy.unwiped == 0,
	      "curl's copies of the key's header (%u) are wiped before they are freed (%u not)",
	      keycopy.copies, keycopy.unwiped);

	kill(server_pid, SIGTERM);
	waitpid(server_pid, &status, 0);
	if (tap.failed) {
		char line[512];
		FILE *f = fopen(logpath, "r");

		fprintf(tap_out, "# log:\n");
		while (f && fgets(line, sizeof(line), f))
			fprintf(tap_out, "# %s", line);
		if (f)
			fclose(f);
	} else {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd))
			fprintf(tap_out, "# could not remove %s\n", tmpdir);
	}
	return tap_done();
}
