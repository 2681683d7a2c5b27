/*
 * openai: the OpenAI chat completions protocol, which OpenAI, Ollama, llama.cpp's
 * llama-server and vLLM all speak: request body, headers, and reading the reply.
 */
#include "http.h"
#include "provider.h"
#include "text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"

static long llm_json_count(const cJSON *obj, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNumber(n) && n->valuedouble >= 0 && n->valuedouble < 1e15
		   ? (long)n->valuedouble
		   : -1;
}

int llm_openai_parse(const char *data, size_t len, struct llm_reply *reply, struct buf *err)
{
	cJSON *root = cJSON_ParseWithLength(data, len);
	const cJSON *choice, *msg, *content, *usage, *fin;
	int ret = -EIO;

	if (!root) {
		buf_adds(err, "openai: malformed reply: not JSON");
		goto out;
	}
	choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
	msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
	content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsString(content)) {
		buf_adds(&reply->text, content->valuestring);
	} else if (cJSON_IsArray(content)) {
		/* Some compatible servers send content parts instead of a string. */
		const cJSON *part;

		cJSON_ArrayForEach(part, content)
		{
			const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");

			if (cJSON_IsString(t))
				buf_adds(&reply->text, t->valuestring);
		}
	} else {
		const cJSON *refusal = cJSON_GetObjectItemCaseSensitive(msg, "refusal");

		if (cJSON_IsString(refusal)) {
			buf_adds(err, "openai: the model refused: ");
			llm_add_oneline(err, refusal->valuestring, strlen(refusal->valuestring),
					200);
		} else {
			buf_adds(err, "openai: malformed reply: no choices[0].message.content");
		}
		goto out;
	}
	fin = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
	if (cJSON_IsString(fin) && !strcmp(fin->valuestring, "length"))
		log_warn("openai: the reply was cut at max_tokens; the code may be truncated");
	usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
	reply->tokens_in = llm_json_count(usage, "prompt_tokens");
	reply->tokens_out = llm_json_count(usage, "completion_tokens");
	ret = 0;
out:
	cJSON_Delete(root);
	return ret;
}

int llm_openai_complete(const struct llm_config *cfg, const char *system, const char *user,
			uint64_t deadline_ms, struct llm_reply *reply, struct buf *err)
{
	struct llm_http_post post = {.provider = "openai", .parse = llm_openai_parse};
	struct buf url = BUF_INIT, auth = BUF_INIT;
	cJSON *body = cJSON_CreateObject(), *msgs, *m;
	char *json = NULL;
	int ret = -EIO;

	cJSON_AddStringToObject(body, "model", cfg->model ? cfg->model : "");
	msgs = cJSON_AddArrayToObject(body, "messages");
	m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", "system");
	cJSON_AddStringToObject(m, "content", system);
	cJSON_AddItemToArray(msgs, m);
	m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", "user");
	cJSON_AddStringToObject(m, "content", user);
	cJSON_AddItemToArray(msgs, m);
	cJSON_AddNumberToObject(body, cfg->max_tokens_field ? cfg->max_tokens_field : "max_tokens",
				cfg->max_tokens ? cfg->max_tokens : 4096);
	/*
	 * Deterministic as far as the server allows.  Models that want
	 * max_completion_tokens (OpenAI's reasoning models) reject any temperature
	 * but the default, so that setting also drops it.
	 */
	if (!cfg->max_tokens_field || strcmp(cfg->max_tokens_field, "max_completion_tokens"))
		cJSON_AddNumberToObject(body, "temperature", 0);
	json = cJSON_PrintUnformatted(body);
	if (!json) {
		buf_adds(err, "openai: cannot encode the request");
		goto out;
	}

	llm_url_join(&url, cfg->url, "/chat/completions");
	post.url = url.data;
	post.body = json;
	post.body_len = strlen(json);
	post.headers = curl_slist_append(NULL, "Content-Type: application/json");
	post.headers = curl_slist_append(post.headers, "Expect:");
	/* Local servers take no key: then no header at all. */
	if (cfg->api_key && *cfg->api_key) {
		buf_printf(&auth, "Authorization: Bearer %s", cfg->api_key);
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
