/*
 * prompt: builds the system and user prompts from the template llm/prompt.txt
 * (compiled in; its header says what each section is for).  This file only
 * fills placeholders: every word the model reads is in prompt.txt.
 */
#include "llm.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* llm/prompt.txt, generated into prompt_txt.c by embed.py at build time. */
extern const char llm_prompt_txt[];
extern const size_t llm_prompt_txt_len;

/* Bounds that keep a prompt reasonable whatever tests/ and spec hold. */
#define LLM_PROMPT_MAX_CASES 40
#define LLM_PROMPT_MAX_CASE_BYTES 2000
#define LLM_PROMPT_MAX_SPEC 16384
#define LLM_PROMPT_MAX_SOURCE 65536
#define LLM_PROMPT_MAX_FAILURE 8192

struct llm_subst {
	const char *key;
	const char *val;
	size_t len;
};

/* The text of section "@@ NAME" of the template, without its header line. */
static void llm_section(const char *name, const char **text, size_t *len)
{
	const char *t = llm_prompt_txt, *end = t + llm_prompt_txt_len, *p = t;
	size_t n = strlen(name);

	*text = "";
	*len = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next = eol ? eol + 1 : end;

		if ((size_t)(end - p) >= n + 3 && !memcmp(p, "@@ ", 3) && !memcmp(p + 3, name, n) &&
		    (p + 3 + n == end || p[3 + n] == '\n')) {
			const char *q = next;

			while (q < end) {
				if ((size_t)(end - q) >= 3 && !memcmp(q, "@@ ", 3))
					break;
				eol = memchr(q, '\n', (size_t)(end - q));
				q = eol ? eol + 1 : end;
			}
			*text = next;
			*len = (size_t)(q - next);
			return;
		}
		p = next;
	}
}

static void llm_render(struct buf *out, const char *section, const struct llm_subst *subst,
		       size_t nsubst)
{
	const char *t, *end;
	size_t len;

	llm_section(section, &t, &len);
	end = t + len;
	while (t < end) {
		const char *open = memmem(t, (size_t)(end - t), "{{", 2), *close;
		size_t i;

		if (!open) {
			buf_add(out, t, (size_t)(end - t));
			break;
		}
		buf_add(out, t, (size_t)(open - t));
		close = memmem(open + 2, (size_t)(end - open - 2), "}}", 2);
		if (!close) {
			buf_add(out, open, (size_t)(end - open));
			break;
		}
		for (i = 0; i < nsubst; i++) {
			if (strlen(subst[i].key) == (size_t)(close - open - 2) &&
			    !memcmp(open + 2, subst[i].key, (size_t)(close - open - 2)))
				break;
		}
		if (i < nsubst)
			buf_add(out, subst[i].val, subst[i].len);
		else
			buf_add(out, open, (size_t)(close + 2 - open));
		t = close + 2;
	}
}

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), 0 if invalid. */
static size_t llm_utf8_len(const unsigned char *s, size_t n)
{
	size_t k;
	uint32_t c;

	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	k = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (n < k)
		return 0;
	c = s[0] & (0x7f >> k);
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((k == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000))) || (k == 4 && c < 0x10000) ||
	    c > 0x10ffff)
		return 0;
	return k;
}

/*
 * @data as a C string literal, valid UTF-8 kept as is (the prompt travels as
 * JSON, which wants UTF-8), everything else escaped, at most @max input bytes.
 */
static void llm_quote(struct buf *b, const char *data, size_t len, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)data;
	size_t n = len < max ? len : max, i = 0;
	int after_hex = 0;

	buf_addc(b, '"');
	while (i < n) {
		unsigned char c = s[i];
		size_t k;

		/* "\x01" "a" must not read as "\x1a". */
		if (after_hex &&
		    ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			buf_adds(b, "\"\"");
		after_hex = 0;
		if (c == '\n') {
			buf_adds(b, "\\n");
		} else if (c == '\t') {
			buf_adds(b, "\\t");
		} else if (c == '\r') {
			buf_adds(b, "\\r");
		} else if (c == '"' || c == '\\') {
			buf_addc(b, '\\');
			buf_addc(b, (char)c);
		} else if (c >= 0x20 && c < 0x7f) {
			buf_addc(b, (char)c);
		} else if (c >= 0x80 && (k = llm_utf8_len(s + i, n - i))) {
			buf_add(b, s + i, k);
			i += k;
			continue;
		} else {
			buf_adds(b, "\\x");
			buf_addc(b, hex[c >> 4]);
			buf_addc(b, hex[c & 15]);
			after_hex = 1;
		}
		i++;
	}
	buf_addc(b, '"');
	if (n < len)
		buf_printf(b, " ... (%zu bytes in all, the rest not shown)", len);
}

/* A fenced block that no run of backticks in @text can close early. */
static void llm_fence(struct buf *b, const char *lang, const char *text, size_t max)
{
	size_t len = strlen(text), run = 0, longest = 0;

	for (size_t i = 0; i < len; i++) {
		run = text[i] == '`' ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	longest = longest < 3 ? 3 : longest + 1;
	for (size_t i = 0; i < longest; i++)
		buf_addc(b, '`');
	buf_adds(b, lang);
	buf_addc(b, '\n');
	buf_add(b, text, len < max ? len : max);
	/* The closing fence alone on its line, always: after the marker of a cut
	 * too ("... (cut)```" leaves the block open to the model). */
	if (len > max)
		buf_adds(b, text[max - 1] == '\n' ? "... (cut)\n" : "\n... (cut)\n");
	else if (len && text[len - 1] != '\n')
		buf_addc(b, '\n');
	for (size_t i = 0; i < longest; i++)
		buf_addc(b, '`');
}

/* Limits of the composition section: a few types, each briefly. */
#define LLM_PROMPT_MAX_CALLABLE 8
#define LLM_PROMPT_MAX_CALLABLE_SPEC 1500
#define LLM_PROMPT_MAX_EXAMPLE_BYTES 200

/* Composition: the existing types the procedure may seglam_call, appended to @user. */
static void llm_prompt_callable(const struct llm_prompt_input *in, struct buf *user)
{
	struct buf types = BUF_INIT;

	if (!in->ncallable || !in->callable)
		return;
	for (size_t i = 0; i < in->ncallable && i < LLM_PROMPT_MAX_CALLABLE; i++) {
		const struct llm_callable *c = &in->callable[i];
		struct buf ex = BUF_INIT, qi = BUF_INIT, qo = BUF_INIT;
		const char *spec = c->spec && *c->spec ? c->spec : "(no spec)";
		size_t n = strlen(spec);

		while (n && (spec[n - 1] == '\n' || spec[n - 1] == '\r'))
			n--;
		if (n > LLM_PROMPT_MAX_CALLABLE_SPEC)
			n = LLM_PROMPT_MAX_CALLABLE_SPEC;
		if (c->has_example) {
			llm_quote(&qi, buf_str(&c->example.in), c->example.in.len,
				  LLM_PROMPT_MAX_EXAMPLE_BYTES);
			llm_quote(&qo, buf_str(&c->example.out), c->example.out.len,
				  LLM_PROMPT_MAX_EXAMPLE_BYTES);
			struct llm_subst es[] = {{"in", qi.data, qi.len}, {"out", qo.data, qo.len}};
			llm_render(&ex, "callable-example", es, 2);
		}
		struct llm_subst s[] = {
		    {"type", c->type ? c->type : "", strlen(c->type ? c->type : "")},
		    {"spec", spec, n},
		    {"example", buf_str(&ex), ex.len}};
		llm_render(&types, "callable-type", s, 3);
		buf_free(&ex);
		buf_free(&qi);
		buf_free(&qo);
	}
	while (types.len && types.data[types.len - 1] == '\n')
		buf_truncate(&types, types.len - 1);
	struct llm_subst s[] = {{"types", buf_str(&types), types.len}};
	llm_render(user, "callable", s, 1);
	buf_free(&types);
}

/* Section @one rendered once per input ({{in}}), without the final newline. */
static void llm_input_list(struct buf *list, const char *one, const struct llm_case *inputs,
			   size_t n)
{
	size_t i;

	for (i = 0; i < n && i < LLM_PROMPT_MAX_CASES; i++) {
		struct buf qi = BUF_INIT;

		llm_quote(&qi, buf_str(&inputs[i].in), inputs[i].in.len, LLM_PROMPT_MAX_CASE_BYTES);
		struct llm_subst s[] = {{"in", qi.data, qi.len}};
		llm_render(list, one, s, 1);
		buf_free(&qi);
	}
	if (i < n)
		buf_printf(list, "- and %zu more not shown\n", n - i);
	while (list->len && list->data[list->len - 1] == '\n')
		buf_truncate(list, list->len - 1);
}

static void llm_inputs_section(struct buf *out, const struct llm_case *inputs, size_t n)
{
	struct buf list = BUF_INIT;

	if (!n)
		return;
	llm_input_list(&list, "input", inputs, n);
	struct llm_subst s[] = {{"inputs", buf_str(&list), list.len}};
	llm_render(out, "inputs", s, 1);
	buf_free(&list);
}

static void llm_spec_cases(const char *type, const char *spec_text, const struct llm_case *cs,
			   size_t nc, struct buf *spec, struct buf *cases);

void llm_prompt_build(const struct llm_prompt_input *in, struct buf *system, struct buf *user)
{
	struct buf spec = BUF_INIT, cases = BUF_INIT, src = BUF_INIT, fail = BUF_INIT;
	struct buf inputs = BUF_INIT;
	const char *type = in->type ? in->type : "";

	llm_render(system, "system", NULL, 0);
	llm_spec_cases(type, in->spec, in->cases, in->ncases, &spec, &cases);
	llm_inputs_section(&inputs, in->inputs, in->ninputs);

	struct llm_subst us[] = {{"type", type, strlen(type)},
				 {"spec", buf_str(&spec), spec.len},
				 {"cases", buf_str(&cases), cases.len},
				 {"inputs", buf_str(&inputs), inputs.len}};
	llm_render(user, "user", us, 4);
	llm_prompt_callable(in, user);

	if (in->prev_source || in->failure) {
		llm_fence(&src, "c", in->prev_source ? in->prev_source : "(no code)",
			  LLM_PROMPT_MAX_SOURCE);
		llm_fence(&fail, "", in->failure ? in->failure : "(no message)",
			  LLM_PROMPT_MAX_FAILURE);
		struct llm_subst s[] = {{"type", type, strlen(type)},
					{"source", src.data, src.len},
					{"failure", fail.data, fail.len}};
		llm_render(user, "repair", s, 3);
		if (in->disagreement)
			llm_render(user, "withdraw-help", NULL, 0);
	}
	buf_free(&spec);
	buf_free(&cases);
	buf_free(&src);
	buf_free(&fail);
	buf_free(&inputs);
}

void llm_prompt_answers(const struct llm_answers_input *in, struct buf *system, struct buf *user)
{
	struct buf spec = BUF_INIT, cases = BUF_INIT, list = BUF_INIT, picks = BUF_INIT;
	const char *type = in->type ? in->type : "";
	char num[16];

	llm_render(system, "answers-system", NULL, 0);
	llm_spec_cases(type, in->spec, in->cases, in->ncases, &spec, &cases);
	llm_input_list(&list, "answers-input", in->inputs, in->ninputs);
	if (in->picks) {
		snprintf(num, sizeof(num), "%u", in->picks);
		struct llm_subst s[] = {{"picks", num, strlen(num)}};
		llm_render(&picks, "answers-picks", s, 1);
	}
	struct llm_subst us[] = {{"type", type, strlen(type)},
				 {"spec", buf_str(&spec), spec.len},
				 {"cases", buf_str(&cases), cases.len},
				 {"inputs", buf_str(&list), list.len},
				 {"picks", buf_str(&picks), picks.len}};
	llm_render(user, "answers-user", us, 5);
	buf_free(&spec);
	buf_free(&cases);
	buf_free(&list);
	buf_free(&picks);
}

/* The {{spec}} and {{cases}} parts shared by both requests. */
static void llm_spec_cases(const char *type, const char *spec_text, const struct llm_case *cs,
			   size_t nc, struct buf *spec, struct buf *cases)
{
	struct llm_prompt_input one = {.spec = spec_text, .cases = cs, .ncases = nc};
	struct llm_prompt_input *in = &one;

	if (in->spec && *in->spec) {
		size_t n = strlen(in->spec);

		while (n && (in->spec[n - 1] == '\n' || in->spec[n - 1] == '\r'))
			n--;
		if (n > LLM_PROMPT_MAX_SPEC)
			n = LLM_PROMPT_MAX_SPEC;
		struct llm_subst s[] = {{"spec", in->spec, n}};
		llm_render(spec, "spec", s, 1);
	}

	if (in->ncases) {
		struct buf list = BUF_INIT;
		size_t i;

		for (i = 0; i < in->ncases && i < LLM_PROMPT_MAX_CASES; i++) {
			const struct llm_case *c = &in->cases[i];
			struct buf qi = BUF_INIT, qo = BUF_INIT;
			const char *name = c->name ? c->name : "";

			llm_quote(&qi, buf_str(&c->in), c->in.len, LLM_PROMPT_MAX_CASE_BYTES);
			llm_quote(&qo, buf_str(&c->out), c->out.len, LLM_PROMPT_MAX_CASE_BYTES);
			struct llm_subst s[] = {{"name", name, strlen(name)},
						{"in", qi.data, qi.len},
						{"out", qo.data, qo.len}};
			llm_render(&list, "case", s, 3);
			buf_free(&qi);
			buf_free(&qo);
		}
		if (i < in->ncases)
			buf_printf(&list, "- and %zu more cases not shown\n", in->ncases - i);
		while (list.len && list.data[list.len - 1] == '\n')
			buf_truncate(&list, list.len - 1);
		struct llm_subst s[] = {{"cases", buf_str(&list), list.len}};
		llm_render(cases, "cases", s, 1);
		buf_free(&list);
	} else {
		struct llm_subst s[] = {{"type", type, strlen(type)}};
		llm_render(cases, "no-cases", s, 1);
	}
}
