/*
 * main: the seglamfs command: options, start-up and shutdown order.
 *
 * Order matters: the store and sandbox are set up before mounting (so errors are
 * reported on the terminal), threads are started only after fuse_daemonize()
 * (fork keeps only the calling thread), and on the way out counters are flushed
 * before the store is closed.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "config.h"
#include "fs.h"
#include "library.h"
#include "llm.h"
#include "node.h"
#include "options.h"
#include "log.h"
#include "proc.h"
#include "sandbox.h"
#include "store.h"
#include "route.h"
#include "synth.h"
#include "usage.h"

/* A number macro as a string literal (the defaults in usage()). */
#define STR_(x) #x
#define STR(x) STR_(x)

struct options {
	char *store;
	int positional;
	unsigned timeout_ms, revalidate_ms, memo_mb, workers, worker_types, workers_mem_mb,
	    worker_mem_mb, max_answer;
	unsigned fail_ttl_ms, repair_rounds, calls_per_hour, history, versions, validate;
	unsigned query_mem_mb, tests_max_mb;
	int allow_other, default_permissions;
	unsigned long tokens_per_hour;
	char *worker, *include, *library;
	int use_library, readonly, debug_log, show_help, show_version, allow_no_landlock;
	int worker_reuse;
	char *llm, *llm_url, *llm_model, *llm_command, *llm_max_tokens_field;
	unsigned llm_timeout_ms, llm_max_tokens;
	double price_in, price_out;
	int has_fsname;
};

#define OPT(t, p)                                                                                  \
	{                                                                                          \
		t, offsetof(struct options, p), 1                                                  \
	}
static const struct fuse_opt option_spec[] = {
    OPT("timeout=%u", timeout_ms),
    OPT("revalidate=%u", revalidate_ms),
    OPT("memo=%u", memo_mb),
    OPT("workers=%u", workers),
    OPT("worker_types=%u", worker_types),
    OPT("workers_mem=%u", workers_mem_mb),
    OPT("worker_mem=%u", worker_mem_mb),
    OPT("max_answer=%u", max_answer),
    OPT("fail_ttl=%u", fail_ttl_ms),
    OPT("history=%u", history),
    OPT("query_mem=%u", query_mem_mb),
    OPT("tests_max=%u", tests_max_mb),
    OPT("worker=%s", worker),
    OPT("include=%s", include),
    OPT("library", use_library),
    OPT("library=%s", library),
    OPT("log_debug", debug_log),
    OPT("allow_no_landlock", allow_no_landlock),
    OPT("worker_reuse", worker_reuse),
    OPT("llm=%s", llm),
    OPT("llm_url=%s", llm_url),
    OPT("llm_model=%s", llm_model),
    OPT("llm_command=%s", llm_command),
    OPT("llm_timeout=%u", llm_timeout_ms),
    OPT("llm_max_tokens=%u", llm_max_tokens),
    OPT("llm_max_tokens_field=%s", llm_max_tokens_field),
    OPT("repair_rounds=%u", repair_rounds),
    OPT("versions=%u", versions),
    OPT("validate=%u", validate),
    OPT("llm_calls_per_hour=%u", calls_per_hour),
    OPT("llm_tokens_per_hour=%lu", tokens_per_hour),
    OPT("price_in=%lf", price_in),
    OPT("price_out=%lf", price_out),
    OPT("-h", show_help),
    OPT("--help", show_help),
    OPT("-V", show_version),
    OPT("--version", show_version),
    FUSE_OPT_END,
};

static void usage(const char *prog)
{
	/* One option per line, the defaults from the modules' headers. */
	/* clang-format off */
	printf(
	    "usage: %s [options] STORE MOUNTPOINT\n\n"
	    "Mount the procedure store STORE at MOUNTPOINT:\n"
	    "  MOUNTPOINT/ask/TYPE/INPUT   read: the answer of procedure TYPE for INPUT\n"
	    "  MOUNTPOINT/procs/TYPE/      the procedure's source.c, tests/, spec, meta.json, log\n"
	    "  MOUNTPOINT/query/TYPE       write an input, read the answer\n"
	    "  MOUNTPOINT/query/.status/TYPE  the same, after a status line (seglam ask)\n"
	    "  MOUNTPOINT/map/TYPE         framed inputs in, framed answers out (seglam map)\n"
	    "  MOUNTPOINT/stats            counters\n\n"
	    "seglamfs options:\n"
	    "  -o library[=DIR]         copy the bundled procedures into STORE (new and\n"
	    "                           unedited library types)\n"
	    "  -o timeout=MS            time limit of one compile or run (default " STR(SANDBOX_DEFAULT_TIMEOUT_MS) ")\n"
	    "  -o revalidate=MS         how often the store is re-checked for changes made\n"
	    "                           elsewhere, e.g. by other daemons (default " STR(PROC_DEFAULT_REVALIDATE_MS) ")\n"
	    "  -o memo=MB               answer memo size (default " STR(PROC_DEFAULT_MEMO_MB) ")\n"
	    "  -o workers=N             live sandbox workers kept (default " STR(SANDBOX_DEFAULT_WORKERS) ")\n"
	    "  -o worker_types=N        compiled types one worker keeps (default " STR(SANDBOX_DEFAULT_WORKER_TYPES) ");\n"
	    "                           a worker holds one owner's types only\n"
	    "  -o workers_mem=MB        memory the live workers may hold together, each\n"
	    "                           counted by its private pages (default: no budget)\n"
	    "  -o worker_mem=MB         address-space limit of a worker (default " STR(SANDBOX_DEFAULT_MEM_MB) ")\n"
	    "  -o max_answer=BYTES      largest answer (default " STR(SANDBOX_DEFAULT_MAX_ANSWER) ")\n"
	    "  -o history=N             replaced sources kept in procs/TYPE/history/ (default " STR(PROC_DEFAULT_HISTORY) ")\n"
	    "  -o query_mem=MB          input all open query/ files may buffer together; past it\n"
	    "                           a write fails with ENOSPC (default " STR(FS_DEFAULT_QUERY_MEM_MB) ")\n"
	    "  -o tests_max=MB          test-case bytes read from one type's tests/ (default " STR(PROC_DEFAULT_TESTS_MAX_MB) ")\n"
	    "  -o worker=PATH           the seglam-worker binary\n"
	    "  -o include=DIR           the headers procedures compile against\n"
	    "  -o log_debug             verbose log\n"
	    "  -o allow_no_landlock     compile even without Landlock (kernel < 5.13): the\n"
	    "                           compiler could then read files of this host\n"
	    "  -o worker_reuse          run every input in the pooled worker itself (no fork\n"
	    "                           per run): faster, but a procedure may then remember\n"
	    "                           earlier inputs and show them to later readers\n"
	    "LLM options (environment: SEGLAM_LLM, SEGLAM_LLM_URL, SEGLAM_LLM_MODEL,\n"
	    "SEGLAM_LLM_API_KEY, SEGLAM_LLM_COMMAND; the key is never taken as an option):\n"
	    "  -o llm=openai|anthropic|command|none\n"
	    "  -o llm_url=URL  -o llm_model=NAME  -o llm_command=CMD\n"
	    "  -o llm_timeout=MS        one LLM request (default 120000)\n"
	    "  -o llm_max_tokens=N      (default 4096)  -o llm_max_tokens_field=NAME\n"
	    "  -o repair_rounds=N       repair rounds after a failed compile or test (default 3)\n"
	    "  -o fail_ttl=MS           how long a failed synthesis is remembered (default " STR(PROC_DEFAULT_FAIL_TTL_MS) ")\n"
	    "  -o llm_calls_per_hour=N  -o llm_tokens_per_hour=N   budget (default unlimited)\n"
	    "  -o versions=N            independent syntheses that must agree (default 1, max 5)\n"
	    "  -o validate=0|1          check syntheses against direct answers (default 1)\n"
	    "  -o price_in=P -o price_out=P  price per million tokens in/out: stats and\n"
	    "                           `seglam report` show an estimated cost (default none)\n"
	    "  -o fsname=NAME           the source shown by df and findmnt (default STORE)\n\n",
	    prog);
	/* clang-format on */
	printf("FUSE options:\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;

	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && o->positional++ == 0) {
		o->store = strdup(arg);
		return 0; /* consumed: fuse_parse_cmdline takes the mountpoint */
	}
	if (key == FUSE_OPT_KEY_OPT && !strcmp(arg, "ro"))
		o->readonly = 1; /* also passed on to the kernel */
	if (key == FUSE_OPT_KEY_OPT && !strncmp(arg, "fsname=", 7))
		o->has_fsname = 1;
	if (key == FUSE_OPT_KEY_OPT && !strcmp(arg, "allow_other"))
		o->allow_other = 1;
	if (key == FUSE_OPT_KEY_OPT && !strcmp(arg, "default_permissions"))
		o->default_permissions = 1;
	return 1;
}

static bool path_exists(const char *p)
{
	struct stat st;

	return p && stat(p, &st) == 0;
}

/*
 * Whether this binary runs from its build tree (then the worker, headers and
 * library come from the build and source trees) rather than from where it was
 * installed (then only installed files are used, even while the checkout it was
 * built from still exists).
 */
static bool in_build_tree(void)
{
	char self[PATH_MAX], build[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0 || !realpath(SEGLAM_BUILD_ROOT, build))
		return false;
	self[n] = '\0';
	return !strcmp(dirname(self), build);
}

static char *default_worker(void)
{
	if (in_build_tree() && path_exists(SEGLAM_BUILD_ROOT "/seglam-worker"))
		return strdup(SEGLAM_BUILD_ROOT "/seglam-worker");
	return strdup(SEGLAM_INSTALL_WORKER);
}

static const char *default_dir(const char *source, const char *installed)
{
	return in_build_tree() && path_exists(source) ? source : installed;
}

/*
 * Refuse what mount(2) would accept but nobody means: a mount point that is not
 * a directory, or one where something (often this same store) is mounted
 * already, which would stack a second daemon silently over the first.
 */
static int check_mountpoint(const char *mnt)
{
	struct stat st, up;
	char *parent;
	int ret = 0;

	if (stat(mnt, &st) != 0) {
		if (errno == ENOTCONN)
			fprintf(stderr,
				"seglamfs: %s: a dead FUSE mount (its daemon is gone): unmount it "
				"with fusermount3 -u %s\n",
				mnt, mnt);
		else
			fprintf(stderr, "seglamfs: %s: %s (create the mount point first)\n", mnt,
				strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"seglamfs: %s: not a directory: a mount point must be a directory\n", mnt);
		return -1;
	}
	if (asprintf(&parent, "%s/..", mnt) < 0)
		return -1;
	if (stat(parent, &up) == 0 && (up.st_dev != st.st_dev || up.st_ino == st.st_ino)) {
		fprintf(stderr,
			"seglamfs: %s: already a mount point: unmount it first (fusermount3 -u "
			"%s)\n",
			mnt, mnt);
		ret = -1;
	}
	free(parent);
	return ret;
}

static volatile int flush_stop;
/* flush_stop and the tick's wait only: the flushes run without it. */
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flush_cond = PTHREAD_COND_INITIALIZER;

/* Counters go to meta.json now and then, never on the hit path; the history
 * line once a minute. */
static void *flush_main(void *arg)
{
	unsigned ticks = 0;

	(void)arg;
	pthread_mutex_lock(&flush_lock);
	while (!flush_stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		pthread_cond_timedwait(&flush_cond, &flush_lock, &ts);
		pthread_mutex_unlock(&flush_lock);
		proc_flush();
		route_flush();
		if (++ticks % 6 == 0)
			usage_history_tick();
		pthread_mutex_lock(&flush_lock);
	}
	pthread_mutex_unlock(&flush_lock);
	usage_history_tick();
	return NULL;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = {0};
	struct options o = {0};
	struct buf err = BUF_INIT;
	struct sandbox_config sc = {0};
	struct proc_config pc = {0};
	struct synth_config syc = {0};
	struct fs_config fc = {0};
	struct usage_config uc = {0};
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop = NULL;
	pthread_t flusher;
	bool flusher_started = false, mounted = false, store_ok = false, sandbox_ok = false;
	int ret = 1;

	signal(SIGPIPE, SIG_IGN);
	o.repair_rounds = UINT_MAX; /* 0 is meaningful: no repair */
	o.validate = 1;
	if (options_check_numbers(argc, argv) != 0)
		goto out;
	if (fuse_opt_parse(&args, &o, option_spec, option_proc) != 0)
		goto out;
	/* Other users: the kernel checks their permissions against the store's owners
	 * and modes, so nobody changes another's procedure or gets root through it. */
	if (o.allow_other && !o.default_permissions &&
	    fuse_opt_add_arg(&args, "-odefault_permissions") != 0)
		goto out;
	if (o.show_version) {
		printf("seglamfs %s\n", SEGLAM_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (o.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out;
	if (!o.store || !opts.mountpoint) {
		fprintf(stderr, "usage: %s [options] STORE MOUNTPOINT (see --help)\n", argv[0]);
		goto out;
	}
	if (opts.debug || o.debug_log)
		log_set_level(LOG_LVL_DEBUG);
	if (check_mountpoint(opts.mountpoint) != 0)
		goto out;
	if (!o.has_fsname) {
		/* df and findmnt tell stores apart; the type stays fuse.seglamfs. */
		char real[PATH_MAX], *name = NULL, *opt = NULL;
		bool ok;

		ok = asprintf(&name, "fsname=%s", realpath(o.store, real) ? real : o.store) >= 0;
		ok = ok && fuse_opt_add_opt_escaped(&opt, name) == 0 &&
		     fuse_opt_add_arg(&args, "-o") == 0 && fuse_opt_add_arg(&args, opt) == 0;
		free(name);
		free(opt);
		if (!ok)
			goto out;
	}
	if (o.price_in < 0 || o.price_out < 0) {
		fprintf(stderr, "seglamfs: -o price_in/price_out: a price cannot be negative\n");
		goto out;
	}
	uc.price_in = o.price_in;
	uc.price_out = o.price_out;
	usage_init(&uc);

	/* The LLM: environment, overridden by options. */
	if (o.llm) {
		if (!strcmp(o.llm, "openai"))
			syc.llm.provider = LLM_OPENAI;
		else if (!strcmp(o.llm, "anthropic"))
			syc.llm.provider = LLM_ANTHROPIC;
		else if (!strcmp(o.llm, "command"))
			syc.llm.provider = LLM_COMMAND;
		else if (!strcmp(o.llm, "none"))
			syc.llm.provider = LLM_NONE;
		else {
			fprintf(stderr,
				"seglamfs: -o llm=%s: unknown provider (openai, anthropic, "
				"command or none)\n",
				o.llm);
			goto out;
		}
	}
	syc.llm.url = o.llm_url ? strdup(o.llm_url) : NULL;
	syc.llm.model = o.llm_model ? strdup(o.llm_model) : NULL;
	syc.llm.command = o.llm_command ? strdup(o.llm_command) : NULL;
	syc.llm.max_tokens_field = o.llm_max_tokens_field ? strdup(o.llm_max_tokens_field) : NULL;
	syc.llm.request_timeout_ms = o.llm_timeout_ms;
	syc.llm.max_tokens = o.llm_max_tokens;
	if (llm_config_resolve(&syc.llm, &err) != 0) {
		fprintf(stderr, "seglamfs: LLM configuration: %s\n", buf_str(&err));
		goto out;
	}
	syc.repair_rounds = o.repair_rounds == UINT_MAX ? 3 : o.repair_rounds;
	syc.calls_per_hour = o.calls_per_hour;
	syc.versions = o.versions;
	syc.validate = o.validate != 0;
	syc.tokens_per_hour = o.tokens_per_hour;

	if (store_open(o.store, o.readonly, &err) != 0) {
		fprintf(stderr, "seglamfs: %s\n", buf_str(&err));
		goto out;
	}
	store_ok = true;
	if (o.use_library || o.library) {
		const char *dir = o.library
				      ? o.library
				      : default_dir(SEGLAM_SOURCE_LIBRARY, SEGLAM_INSTALL_LIBRARY);

		if (library_install(dir, &err) != 0) {
			fprintf(stderr, "seglamfs: %s\n", buf_str(&err));
			goto out;
		}
	}

	sc.worker_path = o.worker ? o.worker : default_worker();
	sc.include_dir =
	    o.include ? o.include : default_dir(SEGLAM_SOURCE_INCLUDE, SEGLAM_INSTALL_INCLUDE);
	sc.timeout_ms = o.timeout_ms; /* 0: the module's default (its header) */
	sc.max_answer = o.max_answer;
	sc.mem_limit = (size_t)o.worker_mem_mb << 20;
	sc.max_workers = o.workers;
	sc.worker_types = o.worker_types;
	sc.mem_budget = (size_t)o.workers_mem_mb << 20;
	sc.allow_no_landlock = o.allow_no_landlock;
	sc.worker_reuse = o.worker_reuse;
	if (!path_exists(sc.worker_path) || !path_exists(sc.include_dir)) {
		fprintf(stderr,
			"seglamfs: %s: not found (pass -o worker=PATH and -o include=DIR)\n",
			path_exists(sc.worker_path) ? sc.include_dir : sc.worker_path);
		goto out;
	}
	if (sandbox_init(&sc) != 0) {
		fprintf(stderr, "seglamfs: cannot start the sandbox\n");
		goto out;
	}
	sandbox_ok = true;

	pc.revalidate_ms = o.revalidate_ms;
	pc.memo_bytes = (size_t)o.memo_mb << 20;
	pc.fail_ttl_ms = o.fail_ttl_ms;
	pc.history_max = o.history;
	pc.tests_max = (size_t)o.tests_max_mb << 20;
	proc_config_defaults(&pc); /* route/ and fs/ below take these values */
	if (syc.llm.provider != LLM_NONE) {
		synth_init(&syc);
		pc.synth = synth_procedure;
	}
	proc_init(&pc);
	proc_set_change_hook(fs_inval_type);
	{
		struct route_config rc = {pc.revalidate_ms, pc.fail_ttl_ms, syc.repair_rounds,
					  syc.llm.provider != LLM_NONE};

		route_init(&rc);
		route_set_change_hook(fs_inval_type);
	}

	fc.timeout = pc.revalidate_ms / 1000.0;
	fc.readonly = o.readonly;
	fc.shared = o.allow_other;
	fc.query_mem = (size_t)o.query_mem_mb << 20;
	fs_init(&fc);
	node_init();

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), NULL);
	if (!se)
		goto out_proc;
	fs_set_session(se);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	mounted = true;
	log_info("mounted %s on %s (LLM: %s; worker %s, headers %s)", o.store, opts.mountpoint,
		 llm_provider_name(syc.llm.provider), sc.worker_path, sc.include_dir);
	if (!opts.foreground)
		log_use_syslog(1);
	fuse_daemonize(opts.foreground);

	if (fs_inval_start(se) != 0)
		goto out_unmount;
	if (pthread_create(&flusher, NULL, flush_main, NULL) == 0)
		flusher_started = true;

	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		loop = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(loop, opts.clone_fd);
		/* Misses wait for the LLM inside a request: allow enough threads that
		 * hits keep flowing meanwhile (libfuse's default is 10). */
		fuse_loop_cfg_set_max_threads(
		    loop, opts.max_threads > 0 && opts.max_threads <= 1000 ? opts.max_threads : 64);
		/* UINT_MAX means "not given": passing it on makes libfuse complain. */
		if (opts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(loop, opts.max_idle_threads);
		ret = fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	ret = ret ? 1 : 0;

	fs_inval_stop();
	fs_shutdown_handles();
	if (flusher_started) {
		pthread_mutex_lock(&flush_lock);
		flush_stop = 1;
		pthread_cond_signal(&flush_cond);
		pthread_mutex_unlock(&flush_lock);
		pthread_join(flusher, NULL);
	}
out_unmount:
	if (mounted)
		fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_proc:
	route_shutdown();
	proc_shutdown();
	node_shutdown();
out:
	if (sandbox_ok)
		sandbox_shutdown();
	if (store_ok)
		store_close();
	if (!o.worker && sc.worker_path)
		free((char *)sc.worker_path);
	llm_config_free(&syc.llm);
	free(opts.mountpoint);
	free(o.store);
	free(o.worker);
	free(o.include);
	free(o.library);
	free(o.llm);
	free(o.llm_url);
	free(o.llm_model);
	free(o.llm_command);
	free(o.llm_max_tokens_field);
	fuse_opt_free_args(&args);
	buf_free(&err);
	return ret;
}
