/*
 * anthropic: the Anthropic Messages protocol: request body, headers, and the
 * reply as the concatenation of its text blocks.
 */
#include "http.h"
#include "provider.h"
#include "text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "log.h"

static long llm_json_count(const cJSON *obj, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < 1e15
		   ? (long)n->valuedouble
		   : -1;
}

int llm_anthropic_parse(const char *data, size_t len, struct llm_reply *reply, struct buf *err)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *content, *block, *usage, *stop;
	int ret = -EIO, blocks = 0;

	if (!root) {
		buf_adds(err, "anthropic: malformed reply: not JSON");
		goto out;
	}
	content = cJSON_GetObjectItemCaseSensitive(root, "content");
	if (!cJSON_IsArray(content)) {
		buf_adds(err, "anthropic: malformed reply: no content[]");
		goto out;
	}
	/* Text blocks only: thinking and tool blocks are not the answer. */
	cJSON_ArrayForEach(block, content)
	{
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(block, "type");
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(block, "text");

		if (cJSON_IsString(type) && !strcmp(type->valuestring, "text") &&
		    cJSON_IsString(text)) {
			buf_adds(&reply->text, text->valuestring);
			blocks++;
		}
	}
	if (!blocks) {
		buf_adds(err, "anthropic: malformed reply: no text block in content[]");
		goto out;
	}
	stop = cJSON_GetObjectItemCaseSensitive(root, "stop_reason");
	if (cJSON_IsString(stop) && !strcmp(stop->valuestring, "max_tokens"))
		log_warn("anthropic: the reply was cut at max_tokens; the code may be truncated");
	usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
	reply->tokens_in = llm_json_count(usage, "input_tokens");
	reply->tokens_out = llm_json_count(usage, "output_tokens");
	ret = 0;
out:
	cJSON_Delete(root);
	return ret;
}

int llm_anthropic_complete(const struct llm_config *cfg, const char *system, const char *user,
			   uint64_t deadline_ms, struct llm_reply *reply, struct buf *err)
{
	struct llm_http_post post = {.provider = "anthropic", .parse = llm_anthropic_parse};
	struct buf url = BUF_INIT, auth = BUF_INIT;
	cJSON *body = cJSON_CreateObject(), *msgs, *m;
	const char *base = cfg->url ? cfg->url : "";
	size_t blen = strlen(base);

	while (blen && base[blen - 1] == '/')
		blen--;
	char *json = NULL;
	int ret = -EIO;

	cJSON_AddStringToObject(body, "model", cfg->model ? cfg->model : "");
	cJSON_AddNumberToObject(body, "max_tokens", cfg->max_tokens ? cfg->max_tokens : 4096);
	cJSON_AddStringToObject(body, "system", system);
	msgs = cJSON_AddArrayToObject(body, "messages");
	m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", "user");
	cJSON_AddStringToObject(m, "content", user);
	cJSON_AddItemToArray(msgs, m);
	cJSON_AddNumberToObject(body, "temperature", 0);
	json = cJSON_PrintUnformatted(body);
	if (!json) {
		buf_adds(err, "anthropic: cannot encode the request");
		goto out;
	}

	/* The SDKs' base URL has no /v1; forgive one that does rather than 404. */
	if (blen >= 3 && !strncasecmp(base + blen - 3, "/v1", 3))
		llm_url_join(&url, base, "/messages");
	else
		llm_url_join(&url, base, "/v1/messages");
	post.url = url.data;
	post.body = json;
	post.body_len = strlen(json);
	post.headers = curl_slist_append(NULL, "Content-Type: application/json");
	post.headers = curl_slist_append(post.headers, "anthropic-version: 2023-06-01");
	post.headers = curl_slist_append(post.headers, "Expect:");
	if (cfg->api_key && *cfg->api_key) {
		buf_printf(&auth, "x-api-key: %s", cfg->api_key);
		post.headers = curl_slist_append(post.headers, auth.data);
	}
	ret = llm_http_complete(cfg, &post, deadline_ms, reply, err);
out:
	llm_headers_free(post.headers);
	if (auth.data)
		explicit_bzero(auth.data, auth.len);
	buf_free(&auth);
	buf_free(&url);
	free(json);
	cJSON_Delete(body);
	return ret;
}
