/*
 * test_proc: the procedure state machine of cache/proc.c, through its public API
 * (cache/proc.h) only.
 *
 *	test_proc WORKER INCLUDE_DIR
 *
 * A real store in a temporary directory and real sandbox workers; the LLM is a
 * fake synthesizer (proc_config.synth) whose behaviour each step chooses: fail,
 * write a procedure, write a repair, or hold until the test lets it go.  The
 * states walked: missing -> synthesizing -> compiled (ready) -> failing (a test
 * case, a compile error) -> repaired; a remembered synthesis failure; single
 * flight (two readers, one synthesis); and without an LLM, missing is ENOENT and
 * failing is EIO with the reason.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "buf.h"
#include "proc.h"
#include "sandbox.h"
#include "store.h"
#include "tap.h"

#define UPPER_SRC                                                                                  \
	"#include <seglam.h>\n"                                                                    \
	"int seglam_run(const char *in, size_t len, seglam_out *out)\n"                            \
	"{\n"                                                                                      \
	"\tif (!len) {\n"                                                                          \
	"\t\tseglam_printf(out, \"empty input\");\n"                                               \
	"\t\treturn 1;\n"                                                                          \
	"\t}\n"                                                                                    \
	"\tfor (size_t i = 0; i < len; i++) {\n"                                                   \
	"\t\tchar c = in[i];\n"                                                                    \
	"\t\tif (c >= 'a' && c <= 'z')\n"                                                          \
	"\t\t\tc -= 32;\n"                                                                         \
	"\t\tseglam_write(out, &c, 1);\n"                                                          \
	"\t}\n"                                                                                    \
	"\tseglam_write(out, \"\\n\", 1);\n"                                                       \
	"\treturn 0;\n"                                                                            \
	"}\n"

/* The repair: UPPER_SRC, except that "q" answers "nope". */
#define FIXED_SRC                                                                                  \
	"#include <seglam.h>\n"                                                                    \
	"#include <string.h>\n"                                                                    \
	"int seglam_run(const char *in, size_t len, seglam_out *out)\n"                            \
	"{\n"                                                                                      \
	"\tif (len == 1 && !strcmp(in, \"q\"))\n"                                                  \
	"\t\treturn seglam_printf(out, \"nope\\n\"), 0;\n"                                         \
	"\tfor (size_t i = 0; i < len; i++) {\n"                                                   \
	"\t\tchar c = in[i];\n"                                                                    \
	"\t\tif (c >= 'a' && c <= 'z')\n"                                                          \
	"\t\t\tc -= 32;\n"                                                                         \
	"\t\tseglam_write(out, &c, 1);\n"                                                          \
	"\t}\n"                                                                                    \
	"\tseglam_write(out, \"\\n\", 1);\n"                                                       \
	"\treturn 0;\n"                                                                            \
	"}\n"

#define BROKEN_SRC                                                                                 \
	"#include <seglam.h>\nint seglam_run(const char *in, size_t len, seglam_out "              \
	"*out)\n{\n\treturn undeclared_thing;\n}\n"

enum fake_mode { FAKE_FAIL, FAKE_UPPER, FAKE_FIXED, FAKE_HOLD };

/* The fake LLM: what it does next, and what it was given last. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum fake_mode mode;
	bool released; /* FAKE_HOLD: the test let it go */
	unsigned calls;
	char type[64];
	size_t ncases;
	bool had_prev;
	struct buf prev, failure;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static unsigned hook_calls;

static void fake_set(enum fake_mode mode)
{
	pthread_mutex_lock(&fake.lock);
	fake.mode = mode;
	fake.released = false;
	pthread_mutex_unlock(&fake.lock);
}

static unsigned fake_calls(void)
{
	unsigned n;

	pthread_mutex_lock(&fake.lock);
	n = fake.calls;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

static int fake_synth(const struct proc_material *m, struct buf *err)
{
	enum fake_mode mode;
	const char *src = UPPER_SRC;

	pthread_mutex_lock(&fake.lock);
	fake.calls++;
	snprintf(fake.type, sizeof(fake.type), "%s", m->type);
	fake.ncases = m->ncases;
	fake.had_prev = m->prev_source != NULL;
	buf_reset(&fake.prev);
	buf_reset(&fake.failure);
	if (m->prev_source)
		buf_adds(&fake.prev, m->prev_source);
	if (m->failure)
		buf_adds(&fake.failure, m->failure);
	mode = fake.mode;
	while (mode == FAKE_HOLD && !fake.released)
		pthread_cond_wait(&fake.cond, &fake.lock);
	pthread_mutex_unlock(&fake.lock);

	switch (mode) {
	case FAKE_FAIL:
		buf_adds(err, "fake: the model is down");
		return -EIO;
	case FAKE_FIXED:
		src = FIXED_SRC;
		break;
	case FAKE_UPPER:
	case FAKE_HOLD:
		break;
	}
	return store_write(m->type, "source.c", src, strlen(src));
}

static void change_hook(const char *type)
{
	(void)type;
	__atomic_add_fetch(&hook_calls, 1, __ATOMIC_SEQ_CST);
}

/* proc_ask_why; the answer's text (or "") and rc in *@rc. */
static int ask(const char *type, const char *in, struct buf *text, int *rc, struct buf *why)
{
	struct answer *a = NULL;
	int ret;

	buf_reset(text);
	buf_reset(why);
	*rc = 1;
	ret = proc_ask_why(type, in, strlen(in), &a, why);
	if (!ret) {
		buf_add(text, a->data, a->len);
		*rc = a->rc;
		answer_put(a);
	}
	return ret;
}

/* The value of `name N` in proc_stats(), or -1. */
static long stat_of(const char *name)
{
	struct buf s = BUF_INIT;
	long v = -1;
	size_t n = strlen(name);

	proc_stats(&s);
	for (char *l = s.data; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, name, n) && l[n] == ' ') {
			v = strtol(l + n + 1, NULL, 10);
			break;
		}
	}
	buf_free(&s);
	return v;
}

static void put_case(const char *type, const char *name, const char *in, const char *out)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "tests/%s.in", name);
	store_write(type, rel, in, strlen(in));
	snprintf(rel, sizeof(rel), "tests/%s.out", name);
	store_write(type, rel, out, strlen(out));
}

static void test_lifecycle(void)
{
	struct buf text = BUF_INIT, why = BUF_INIT;
	unsigned hooks;
	int rc, ret;

	/* missing, and the LLM fails: EIO with its reason, remembered. */
	CHECK(proc_type_visible("upper"), "missing type is visible when an LLM can write it");
	fake_set(FAKE_FAIL);
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == -EIO && strstr(why.data, "synthesis failed") &&
		  strstr(why.data, "the model is down"),
	      "missing + failing LLM: EIO with the synthesizer's reason (%d: %s)", ret,
	      buf_str(&why));
	CHECK(fake_calls() == 1 && !strcmp(fake.type, "upper") && !fake.had_prev &&
		  fake.ncases == 0,
	      "the synthesizer got the type, no cases, nothing to repair");
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == -EIO && fake_calls() == 1 && strstr(why.data, "the model is down"),
	      "a failed synthesis is remembered: no second LLM call");

	/* An edit through the mount lets it retry: synthesizing -> compiled. */
	proc_touched("upper");
	fake_set(FAKE_UPPER);
	hooks = hook_calls;
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == 0 && rc == 0 && !strcmp(text.data, "ABC\n") && fake_calls() == 2,
	      "after proc_touched the synthesis is retried and its source answers (%d: %s)", ret,
	      buf_str(&why));
	CHECK(hook_calls > hooks, "the change hook heard of the new procedure");
	CHECK(stat_of("syntheses") == 2 && stat_of("synthesis_failures") == 1 &&
		  stat_of("admissions") >= 1,
	      "stats count syntheses, failures and admissions");

	/* compiled: answers and rejections without the LLM. */
	ret = ask("upper", "xyz", &text, &rc, &why);
	CHECK(ret == 0 && rc == 0 && !strcmp(text.data, "XYZ\n") && fake_calls() == 2,
	      "a compiled procedure answers without another synthesis");
	ret = ask("upper", "", &text, &rc, &why);
	CHECK(ret == 0 && rc == -EINVAL && !strcmp(text.data, "empty input"),
	      "a rejection is an answer with rc -EINVAL and the reason");

	/* tests/ that pass keep it compiled. */
	put_case("upper", "a", "x", "X\n");
	proc_touched("upper");
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == 0 && !strcmp(text.data, "ABC\n") && fake_calls() == 2,
	      "a passing case in tests/: still compiled, no synthesis");

	/* failing (a case) -> repaired: the repair gets the old source and the failure. */
	put_case("upper", "b", "q", "nope\n");
	proc_touched("upper");
	fake_set(FAKE_FIXED);
	ret = ask("upper", "q", &text, &rc, &why);
	CHECK(ret == 0 && rc == 0 && !strcmp(text.data, "nope\n") && fake_calls() == 3,
	      "a failing case asks for a repair, admitted against tests/ (%d: %s)", ret,
	      buf_str(&why));
	CHECK(fake.had_prev && strstr(fake.prev.data, "c -= 32") && fake.ncases == 2 &&
		  strstr(fake.failure.data, "nope"),
	      "the repair request carries the failing source, the cases and the failure (%s)",
	      buf_str(&fake.failure));

	/* failing (compile), the LLM down: EIO; a person's fix makes it compiled. */
	store_write("upper", "source.c", BROKEN_SRC, strlen(BROKEN_SRC));
	proc_touched("upper");
	fake_set(FAKE_FAIL);
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == -EIO && fake_calls() == 4 && strstr(why.data, "the model is down"),
	      "a source that does not compile + failing LLM: EIO (%d: %s)", ret, buf_str(&why));
	CHECK(fake.had_prev && strstr(fake.prev.data, "undeclared_thing") &&
		  !strncmp(buf_str(&fake.failure), "compile failed", 14),
	      "the repair request says the compile failed (%s)", buf_str(&fake.failure));
	/* A person's change of anything (here the spec) lets the failed repair be
	 * retried at once, not only after fail_ttl. */
	store_write("upper", "spec", "Upper-case the input.\n", 22);
	proc_touched("upper");
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == -EIO && fake_calls() == 5 && strstr(why.data, "the model is down"),
	      "after a person's change a failed repair is asked for again (%d: %s)", ret,
	      buf_str(&why));
	store_write("upper", "source.c", FIXED_SRC, strlen(FIXED_SRC));
	proc_touched("upper");
	ret = ask("upper", "abc", &text, &rc, &why);
	CHECK(ret == 0 && !strcmp(text.data, "ABC\n") && fake_calls() == 5,
	      "a person's fixed source.c is compiled again, without the LLM (%d: %s)", ret,
	      buf_str(&why));

	buf_free(&text);
	buf_free(&why);
}

struct reader {
	const char *in;
	int ret;
	struct buf text;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct buf why = BUF_INIT;
	int rc;

	r->ret = ask("slow", r->in, &r->text, &rc, &why);
	buf_free(&why);
	return NULL;
}

/* Two readers of a missing type wait on one synthesis and share its outcome. */
static void test_single_flight(void)
{
	struct reader r[2] = {{"one", -1, BUF_INIT}, {"two", -1, BUF_INIT}};
	pthread_t t[2];
	struct llm_case *cases = NULL;
	size_t n = 0;
	unsigned before = fake_calls();
	int polls;

	fake_set(FAKE_HOLD);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, reader_main, &r[i]);
	/* No timing assumed: poll until both wait (bounded only to fail, not hang). */
	for (polls = 0; polls < 60000; polls++) {
		llm_cases_free(cases, n);
		proc_waiting_inputs("slow", &cases, &n);
		if (n == 2)
			break;
		usleep(1000);
	}
	CHECK(n == 2 && ((!strcmp(cases[0].in.data, "one") && !strcmp(cases[1].in.data, "two")) ||
			 (!strcmp(cases[0].in.data, "two") && !strcmp(cases[1].in.data, "one"))),
	      "both waiting readers' inputs are shown to the synthesizer (%zu)", n);
	llm_cases_free(cases, n);

	pthread_mutex_lock(&fake.lock);
	fake.released = true;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(fake_calls() == before + 1, "one synthesis for two readers");
	CHECK(r[0].ret == 0 && !strcmp(r[0].text.data, "ONE\n") && r[1].ret == 0 &&
		  !strcmp(r[1].text.data, "TWO\n"),
	      "both readers get their answer from it");
	buf_free(&r[0].text);
	buf_free(&r[1].text);
}

/* Without an LLM: missing is ENOENT, failing is EIO with the reason. */
static void test_no_llm(void)
{
	struct proc_config pc = {.fail_ttl_ms = 600000};
	struct buf text = BUF_INIT, why = BUF_INIT;
	int rc, ret;

	proc_shutdown();
	proc_init(&pc);
	CHECK(!proc_type_visible("nothing"), "no LLM: a type not in the store is not visible");
	ret = ask("nothing", "abc", &text, &rc, &why);
	CHECK(ret == -ENOENT && strstr(why.data, "no LLM"), "no LLM: missing is ENOENT (%s)",
	      buf_str(&why));

	store_write("plain", "source.c", UPPER_SRC, strlen(UPPER_SRC));
	put_case("plain", "bad", "x", "not X\n");
	CHECK(proc_type_visible("plain"), "no LLM: a type in the store is visible");
	ret = ask("plain", "abc", &text, &rc, &why);
	CHECK(ret == -EIO && strstr(why.data, "bad"),
	      "no LLM: a failing case makes the type failing, EIO naming the case (%s)",
	      buf_str(&why));
	store_write("plain", "tests/bad.out", "X\n", 2);
	proc_touched("plain");
	ret = ask("plain", "abc", &text, &rc, &why);
	CHECK(ret == 0 && !strcmp(text.data, "ABC\n"), "no LLM: fixing the case makes it compiled");
	CHECK(fake_calls() == 6, "the synthesizer was not called without an LLM configured");
	buf_free(&text);
	buf_free(&why);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/test_proc.XXXXXX", worker[PATH_MAX], include[PATH_MAX];
	struct sandbox_config sc = {0};
	struct proc_config pc = {.fail_ttl_ms = 600000, .synth = fake_synth};
	struct buf err = BUF_INIT;

	if (argc < 3) {
		fprintf(stderr, "usage: test_proc WORKER INCLUDE_DIR\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir) || store_open(dir, false, &err) != 0) {
		printf("Bail out! store %s: %s\n", dir, buf_str(&err));
		return 1;
	}
	/* The worker confines itself to absolute paths: resolve what we were given. */
	sc.worker_path = realpath(argv[1], worker);
	sc.include_dir = realpath(argv[2], include);
	if (!sc.worker_path || !sc.include_dir || sandbox_init(&sc) != 0) {
		printf("Bail out! sandbox_init failed (worker %s)\n", argv[1]);
		return 1;
	}
	proc_init(&pc);
	proc_set_change_hook(change_hook);

	test_lifecycle();
	test_single_flight();
	test_no_llm();

	proc_shutdown();
	sandbox_shutdown();
	store_close();
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	buf_free(&err);
	buf_free(&fake.prev);
	buf_free(&fake.failure);
	return tap_done();
}
