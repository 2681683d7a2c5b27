/*
 * http: one POST to an LLM provider through libcurl, retried with exponential
 * backoff and jitter on what is worth retrying (429, 408, 409, 5xx including 529,
 * connection errors, timeouts), honouring Retry-After / retry-after-ms, all within
 * the deadline of the llm_complete() call.  Also: the one-time curl_global_init,
 * and turning error bodies of any shape into one line.
 */
#include "http.h"
#include "provider.h"

#include "clock.h"
#include "text.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "retry.h"

/* Backoff before retry k (0-based) is in [d/2, d] with d = min(BASE << k, CAP). */
#define LLM_BACKOFF_BASE_MS 500
#define LLM_BACKOFF_CAP_MS 8000
/* An attempt with less time than this left is not worth starting. */
#define LLM_MIN_ATTEMPT_MS 50

static pthread_once_t llm_curl_once = PTHREAD_ONCE_INIT;
static CURLcode llm_curl_status;

static void llm_curl_init(void)
{
	llm_curl_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct llm_http_resp {
	struct buf body;
	int64_t retry_after_ms; /* -1: the server did not say (llm_retry_after) */
	int overflow;
};

static size_t llm_http_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct llm_http_resp *r = arg;
	size_t n = size * nmemb;

	if (r->body.len + n > LLM_MAX_RESPONSE) {
		r->overflow = 1;
		return 0;
	}
	buf_add(&r->body, data, n);
	return n;
}

static int llm_header_is(const char *line, size_t len, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
		return 0;
	*val = line + n + 1;
	return 1;
}

/* Retry-After is seconds or an HTTP date; retry-after-ms (OpenAI, Anthropic) wins. */
static size_t llm_http_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct llm_http_resp *r = arg;
	size_t len = size * nmemb;
	const char *v;
	int64_t ms;

	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		/* A new response (after a 100 Continue, say): forget the last one's. */
		r->retry_after_ms = -1;
		return len;
	}
	if (llm_header_is(line, len, "retry-after-ms", &v)) {
		ms = llm_retry_after(v, len - (size_t)(v - line), 1, time(NULL));
		if (ms >= 0)
			r->retry_after_ms = ms;
	} else if (r->retry_after_ms < 0 && llm_header_is(line, len, "retry-after", &v)) {
		r->retry_after_ms = llm_retry_after(v, len - (size_t)(v - line), 0, time(NULL));
	}
	return len;
}

void llm_headers_free(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h; h = h->next)
		if (h->data)
			explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

void llm_http_error_message(const char *body, size_t len, struct buf *msg, int *quota)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	const cJSON *e, *m = NULL, *t = NULL, *c = NULL;

	*quota = 0;
	if (!root) {
		/* An HTML page from a proxy, or plain text: its first line will do. */
		size_t n = 0;

		while (n < len && body[n] != '\n')
			n++;
		llm_add_oneline(msg, body, n, 200);
		goto out;
	}
	e = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsObject(e)) {
		m = cJSON_GetObjectItemCaseSensitive(e, "message");
		t = cJSON_GetObjectItemCaseSensitive(e, "type");
		c = cJSON_GetObjectItemCaseSensitive(e, "code");
	} else if (cJSON_IsString(e)) {
		m = e;
	} else {
		/* vLLM / FastAPI: {"message": ...} or {"detail": ...} at the top. */
		m = cJSON_GetObjectItemCaseSensitive(root, "message");
		if (!cJSON_IsString(m))
			m = cJSON_GetObjectItemCaseSensitive(root, "detail");
	}
	if ((cJSON_IsString(c) && !strcmp(c->valuestring, "insufficient_quota")) ||
	    (cJSON_IsString(t) && !strcmp(t->valuestring, "insufficient_quota")))
		*quota = 1;
	if (cJSON_IsString(m) && *m->valuestring)
		llm_add_oneline(msg, m->valuestring, strlen(m->valuestring), 300);
	else if (cJSON_IsString(t))
		llm_add_oneline(msg, t->valuestring, strlen(t->valuestring), 100);
	else
		llm_add_oneline(msg, body, len, 200);
out:
	cJSON_Delete(root);
}

static int llm_curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static int llm_status_retryable(long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

/* Per-call jitter source: rand() is not thread-safe, and quality hardly matters. */
static unsigned llm_jitter(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (unsigned)(*state >> 32);
}

static void llm_sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The hint that goes with a final HTTP error, pointing at the setting to check. */
static const char *llm_status_hint(long status, int quota)
{
	if (quota)
		return " (check the account's plan and billing)";
	if (status == 401 || status == 403)
		return " (check SEGLAM_LLM_API_KEY)";
	if (status == 404)
		return " (check SEGLAM_LLM_URL and SEGLAM_LLM_MODEL)";
	if (status == 400)
		return " (check SEGLAM_LLM_MODEL and the max tokens field)";
	/* curl is not told to follow redirects (a POST would become a GET): most
	 * often http:// where the server wants https:// */
	if (status >= 300 && status < 400)
		return " (a redirect: check the URL, e.g. https)";
	return "";
}

int llm_http_complete(const struct llm_config *cfg, const struct llm_http_post *post,
		      uint64_t deadline_ms, struct llm_reply *reply, struct buf *err)
{
	struct llm_http_resp resp = {BUF_INIT, -1, 0};
	struct buf last = BUF_INIT; /* why the last attempt failed, for the final message */
	char errbuf[CURL_ERROR_SIZE];
	uint64_t start = clock_mono_ms(), jitter = start * 2654435761u ^ (uintptr_t)&resp;
	CURL *curl = NULL;
	int ret = -EIO;

	pthread_once(&llm_curl_once, llm_curl_init);
	if (llm_curl_status != CURLE_OK) {
		buf_printf(err, "%s: curl_global_init failed: %s", post->provider,
			   curl_easy_strerror(llm_curl_status));
		goto out;
	}
	curl = curl_easy_init();
	if (!curl) {
		buf_printf(err, "%s: curl_easy_init failed", post->provider);
		goto out;
	}

	for (unsigned attempt = 0;; attempt++) {
		uint64_t now = clock_mono_ms(), left = deadline_ms > now ? deadline_ms - now : 0;
		long status = 0;
		CURLcode rc;
		int retry, quota = 0;
		uint64_t wait;

		if (left < LLM_MIN_ATTEMPT_MS) {
			buf_printf(err, "%s: %s (total timeout of %u ms reached after %u attempts)",
				   post->provider, buf_str(&last), cfg->total_timeout_ms, attempt);
			goto out;
		}
		buf_reset(&resp.body);
		resp.retry_after_ms = -1;
		resp.overflow = 0;
		errbuf[0] = '\0';
		curl_easy_reset(curl);
		curl_easy_setopt(curl, CURLOPT_URL, post->url);
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post->body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post->body_len);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, post->headers);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, llm_http_write);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
		curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, llm_http_header);
		curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp);
		curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
		/* Signals would hit random threads of the daemon; no alarm()-based DNS. */
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(
		    curl, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)(cfg->connect_timeout_ms < left ? cfg->connect_timeout_ms : left));
		curl_easy_setopt(
		    curl, CURLOPT_TIMEOUT_MS,
		    (long)(cfg->request_timeout_ms < left ? cfg->request_timeout_ms : left));
		curl_easy_setopt(curl, CURLOPT_USERAGENT, "seglamfs");
		curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");

		rc = curl_easy_perform(curl);
		reply->attempts++;
		buf_reset(&last);
		if (rc == CURLE_OK)
			curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

		if (rc != CURLE_OK) {
			if (resp.overflow) {
				buf_printf(err, "%s: reply larger than %u bytes", post->provider,
					   LLM_MAX_RESPONSE);
				goto out;
			}
			llm_add_oneline(&last, errbuf[0] ? errbuf : curl_easy_strerror(rc),
					strlen(errbuf[0] ? errbuf : curl_easy_strerror(rc)), 300);
			if (rc == CURLE_OPERATION_TIMEDOUT)
				buf_printf(&last, " (request timeout %u ms)",
					   cfg->request_timeout_ms);
			else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
				buf_adds(&last, " (is the server up? check SEGLAM_LLM_URL)");
			llm_scrub(&last, cfg->api_key);
			retry = llm_curl_retryable(rc);
		} else if (status >= 200 && status < 300) {
			ret = post->parse(resp.body.data, resp.body.len, reply, err);
			goto out;
		} else {
			struct buf msg = BUF_INIT;

			llm_http_error_message(resp.body.data, resp.body.len, &msg, &quota);
			/* A server may echo the key it was sent ("Incorrect API key: sk-..."). */
			llm_scrub(&msg, cfg->api_key);
			if (msg.len)
				buf_printf(&last, "HTTP %ld: %s", status, buf_str(&msg));
			else
				buf_printf(&last, "HTTP %ld (empty body)", status);
			buf_free(&msg);
			retry = !quota && llm_status_retryable(status);
			if (!retry) {
				buf_printf(err, "%s: %s%s", post->provider, buf_str(&last),
					   llm_status_hint(status, quota));
				if (quota)
					ret = -EDQUOT;
				else if (status == 401 || status == 403)
					ret = -EACCES;
				else if (status >= 400 && status < 500)
					ret = -EINVAL;
				goto out;
			}
		}
		if (!retry) {
			buf_printf(err, "%s: %s", post->provider, buf_str(&last));
			goto out;
		}
		if (attempt >= cfg->max_retries) {
			buf_printf(err, "%s: %s (gave up after %u attempts in %.1f s)",
				   post->provider, buf_str(&last), attempt + 1,
				   (double)(clock_mono_ms() - start) / 1000);
			goto out;
		}

		if (resp.retry_after_ms >= 0) {
			wait = (uint64_t)resp.retry_after_ms;
		} else {
			uint64_t d = LLM_BACKOFF_BASE_MS << (attempt < 5 ? attempt : 5);

			if (d > LLM_BACKOFF_CAP_MS)
				d = LLM_BACKOFF_CAP_MS;
			wait = d / 2 + llm_jitter(&jitter) % (d / 2 + 1);
		}
		now = clock_mono_ms();
		left = deadline_ms > now ? deadline_ms - now : 0;
		/* Sleeping into the deadline only to give up then helps nobody. */
		if (wait + LLM_MIN_ATTEMPT_MS > left) {
			buf_printf(err,
				   "%s: %s (no time left for a retry in %llu ms within the total "
				   "timeout of %u ms)",
				   post->provider, buf_str(&last), (unsigned long long)wait,
				   cfg->total_timeout_ms);
			goto out;
		}
		log_warn("%s: %s; retry %u of %u in %llu ms", post->provider, buf_str(&last),
			 attempt + 1, cfg->max_retries, (unsigned long long)wait);
		llm_sleep_ms(wait);
	}
out:
	if (curl)
		curl_easy_cleanup(curl);
	buf_free(&resp.body);
	buf_free(&last);
	return ret;
}
