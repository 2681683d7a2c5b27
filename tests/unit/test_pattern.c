/* test_pattern: unit tests of question patterns (parsing, normalizing, matching) and of
 * reading the blocks of a routing reply (llm/route.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "llm_route.h"
#include "pattern.h"

static int failures, count;

#define CHECK(cond, name)                                                                          \
	do {                                                                                       \
		count++;                                                                           \
		if (cond) {                                                                        \
			printf("ok %d - %s\n", count, name);                                       \
		} else {                                                                           \
			printf("not ok %d - %s (%s:%d)\n", count, name, __FILE__, __LINE__);       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* The input @line gives for @question, or "<miss>" / "<bad: reason>". */
static const char *run(const char *line, const char *question)
{
	static char out[512];
	struct buf why = BUF_INIT, q = BUF_INIT, in = BUF_INIT;
	struct pat p;
	int r = pat_parse(line, strlen(line), &p, &why);

	if (r <= 0) {
		snprintf(out, sizeof(out), "<bad: %s>", r ? buf_str(&why) : "blank");
	} else {
		pat_normalize(question, strlen(question), &q);
		if (pat_match(&p, q.data, q.len, &in))
			snprintf(out, sizeof(out), "%s", buf_str(&in));
		else
			snprintf(out, sizeof(out), "<miss>");
		pat_free(&p);
	}
	buf_free(&why);
	buf_free(&q);
	buf_free(&in);
	return out;
}

static unsigned lits(const char *line)
{
	struct buf why = BUF_INIT;
	struct pat p;
	unsigned n = 0;

	if (pat_parse(line, strlen(line), &p, &why) == 1)
		n = p.lits;
	pat_free(&p);
	buf_free(&why);
	return n;
}

static void words_cb(const char *w, size_t len, void *arg)
{
	struct buf *b = arg;

	buf_add(b, w, len);
	buf_addc(b, '|');
}

/* Deterministic pseudo-random bytes (xorshift), for the robustness checks. */
static unsigned long long rng = 88172645463325252ull;

static unsigned next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)rng;
}

/* Random lines and questions from a small alphabet rich in syntax: never a crash,
 * and a match always yields a NUL-terminated input no longer than the question
 * plus the template. */
static void test_random(void)
{
	static const char alpha[] = "ab {}=> x?.!\t{a}{b}";
	struct buf why = BUF_INIT, in = BUF_INIT, nq = BUF_INIT;
	int parsed = 0, matched = 0, bad = 0;

	for (int i = 0; i < 20000; i++) {
		char line[40], qs[40];
		size_t ll = next() % sizeof(line), ql = next() % sizeof(qs);
		struct pat p;

		for (size_t k = 0; k < ll; k++)
			line[k] = alpha[next() % (sizeof(alpha) - 1)];
		for (size_t k = 0; k < ql; k++)
			qs[k] = alpha[next() % (sizeof(alpha) - 1)];
		buf_reset(&why);
		if (pat_parse(line, ll, &p, &why) != 1)
			continue;
		parsed++;
		pat_normalize(qs, ql, &nq);
		if (pat_match(&p, nq.data, nq.len, &in)) {
			matched++;
			if (!in.data || in.data[in.len] != '\0' ||
			    in.len > nq.len + (p.tmpl ? strlen(p.tmpl) * nq.len : 0) + p.nslots)
				bad++;
		}
		pat_free(&p);
	}
	CHECK(parsed > 100 && matched > 10 && bad == 0, "random lines and questions");
	buf_free(&why);
	buf_free(&in);
	buf_free(&nq);
}

static void test_reply_blocks(void)
{
	static const char reply[] =
	    "<think>\n```route\ntype: wrong\n```\n</think>\n"
	    "Sure.\n\n```route\r\ntype: capital-of\r\n```\n"
	    "```patterns\ncapital of {c}\n  what is the capital of {c}\n```\n"
	    "```questions\ncapital of France => France\n```\n";
	struct buf b = BUF_INIT, sys = BUF_INIT, user = BUF_INIT;
	struct llm_route_type t = {"capital-of", "A country's capital.", "capital of {c}\n",
				   "capital of France => France\n"};
	struct llm_route_input in = {"What is the capital of Peru?", &t, 1, NULL, NULL};

	CHECK(llm_reply_block(reply, strlen(reply), "route", &b) == 1 &&
		  !strcmp(b.data, "type: capital-of\n"),
	      "route block, think block dropped, CRLF");
	CHECK(llm_reply_block(reply, strlen(reply), "PATTERNS", &b) == 1 &&
		  !strcmp(b.data, "capital of {c}\n  what is the capital of {c}\n"),
	      "patterns block, tag case-insensitive, indentation kept");
	CHECK(llm_reply_block(reply, strlen(reply), "tests", &b) == 0 && b.len == 0,
	      "missing block");
	CHECK(llm_reply_block("```route\ntype: x", 16, "route", &b) == 1 &&
		  !strcmp(b.data, "type: x\n"),
	      "unclosed block runs to the end");
	llm_route_prompt(&in, &sys, &user);
	CHECK(strstr(user.data, "Question:\nWhat is the capital of Peru?\n") &&
		  strstr(user.data, "## type: capital-of\n") &&
		  strstr(user.data, "capital of France => France") && strstr(sys.data, "```route"),
	      "routing prompt holds the question and the nearest types");
	buf_free(&b);
	buf_free(&sys);
	buf_free(&user);
}

int main(void)
{
	struct buf b = BUF_INIT, why = BUF_INIT;
	struct pat p;

	pat_normalize("  What  is\tit?!. ", 17, &b);
	CHECK(!strcmp(b.data, "What is it"), "normalize trims ends and folds white space");
	pat_normalize("?!", 2, &b);
	CHECK(b.len == 0 && b.data && !b.data[0], "normalize of only punctuation is empty");

	CHECK(!strcmp(run("what is the capital of {country}", "What is the capital of France?"),
		      "France"),
	      "slot keeps the question's case");
	CHECK(!strcmp(run("what is the capital of {country}",
			  "what is the capital of the Republic of Korea"),
		      "the Republic of Korea"),
	      "slot takes several words");
	CHECK(!strcmp(run("what is the capital of {country}", "what is the capital letter of x"),
		      "<miss>"),
	      "near-miss is a miss");
	CHECK(!strcmp(run("capital of {country}", "what is the capital of France"), "<miss>"),
	      "literal text must cover the whole question");
	CHECK(!strcmp(run("how many days between {start} and {end} => {start} {end}",
			  "How many  days between 2026-01-01 and 2026-11-26?"),
		      "2026-01-01 2026-11-26"),
	      "template builds the input");
	CHECK(!strcmp(run("days between {a} and {b} => {b},{a},{b}", "days between x and y"),
		      "y,x,y"),
	      "template may reorder and repeat slots");
	CHECK(!strcmp(run("{a} and {b}", "x and y and z"), "x y and z"),
	      "slots are shortest first, left to right");
	CHECK(!strcmp(run("{a}{b}", "xyz"), "x yz"), "adjacent slots: the first is shortest");
	CHECK(!strcmp(run("what is {x} in decimal?", "what is MCMXCIV in decimal"), "MCMXCIV"),
	      "pattern's ending ? is ignored");
	CHECK(!strcmp(run("is {n} prime", "is  prime"), "<miss>"), "a slot takes one char or more");
	CHECK(!strcmp(run("# a comment", "x"), "<bad: blank>"), "comment line");
	CHECK(!strcmp(run("   ", "x"), "<bad: blank>"), "blank line");
	CHECK(!strncmp(run("what is {x", "x"), "<bad: a '{'", 11), "unclosed slot refused");
	CHECK(!strncmp(run("what is x}", "x"), "<bad: a '}'", 11), "stray } refused");
	CHECK(!strncmp(run("{a} and {a}", "x"), "<bad: slot {a} appears twice", 28),
	      "duplicate slot refused");
	CHECK(!strncmp(run("sum of {a} => {b}", "x"), "<bad: template slot {b}", 23),
	      "template slot not in pattern refused");
	CHECK(!strcmp(run("WHAT IS {x}", "what is y"), "y"), "case is ignored in literals");
	CHECK(lits("what is the capital of {country}") == 23, "literal characters counted");
	CHECK(lits("capital of {c} => {c}") == 11, "template not counted");
	CHECK(pat_parse("{a}{b}{c}{d}{e}{f}{g}{h}{i}{j}c", 31, &p, &why) == 1, "many slots parse");
	buf_reset(&b);
	pat_normalize(
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", 79,
	    &why);
	CHECK(!pat_match(&p, why.data, why.len, &b), "hostile pattern: bounded work, a miss");
	{
		unsigned long budget = 1000;

		CHECK(!pat_match_budget(&p, why.data, why.len, &b, &budget) && budget == 0,
		      "a budget is spent, then a miss");
	}
	pat_free(&p);
	buf_reset(&why);
	CHECK(pat_parse("What is the {x} of {y}s now", 27, &p, &why) == 1, "parse for words");
	buf_reset(&b);
	pat_words(&p, words_cb, &b);
	CHECK(!strcmp(buf_str(&b), "what|is|the|of|now|"), "whole literal words, lowercased");
	pat_free(&p);
	buf_free(&b);
	buf_free(&why);
	test_random();
	test_reply_blocks();
	printf("1..%d\n", count);
	return failures ? 1 : 0;
}
