/*
 * compile: libtcc (prefix worker_).  Compiles one procedure's source in memory
 * against the allowed headers, relocates it into a buffer of its own (so the
 * image's bounds are known), and refuses the image if any global it uses is
 * neither in the image nor in worker_syms (abi.c).  Rewrites tcc's messages for
 * the LLM and the user: line numbers, no paths of this host.
 */
#include <libtcc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "worker_int.h"

struct worker_compile {
	struct buf msg;
	const char *include_dir;
	const char *code_lo, *code_hi; /* relocated image */
	const char *bad_symbol;
};

/* Append @msg to @b without the include directory's path ("ctype.h:20: ..."
 * rather than a path of this host), wherever tcc put it: first, or on the
 * second line of "In file included from <string>:2:\n/.../ctype.h:20: ...". */
static void worker_add_unpathed(struct buf *b, const char *msg, const char *dir, size_t dl)
{
	const char *p;

	while (dl && (p = strstr(msg, dir))) {
		buf_add(b, msg, (size_t)(p - msg));
		msg = p + dl;
		if (*msg == '/')
			msg++;
		else
			buf_add(b, dir, dl); /* not the directory: only a name like it */
	}
	buf_adds(b, msg);
}

/* Rewrite tcc's "<string>:3: error: 'x' undeclared" into "line 3: 'x' undeclared". */
static void worker_tcc_error(void *opaque, const char *msg)
{
	struct worker_compile *c = opaque;
	size_t dl = strlen(c->include_dir);

	if (c->msg.len >= FRAME_MAX_MESSAGE)
		return;
	if (strncmp(msg, "<string>:", 9) == 0) {
		char *end;
		unsigned long line = strtoul(msg + 9, &end, 10);

		if (end != msg + 9 && *end == ':') {
			msg = end + 1;
			while (*msg == ' ')
				msg++;
			if (strncmp(msg, "error: ", 7) == 0)
				msg += 7;
			buf_printf(&c->msg, "line %lu: ", line);
		}
	} else if (strncmp(msg, "tcc: error: ", 12) == 0) {
		msg += 12;
		if (strncmp(msg, "undefined symbol '", 18) == 0) {
			/* a function outside the allowed headers: say so, for the LLM */
			const char *q = strchr(msg + 18, '\'');

			buf_printf(&c->msg,
				   "'%.*s' is not available to procedures (they may only "
				   "call functions declared in the allowed headers)\n",
				   q ? (int)(q - msg - 18) : 64, msg + 18);
			return;
		}
	}
	worker_add_unpathed(&c->msg, msg, c->include_dir, dl);
	buf_addc(&c->msg, '\n');
}

/* tcc resolves a symbol that is neither defined nor added with dlsym(RTLD_DEFAULT),
 * i.e. from anything linked into this process (system, dlopen, fopen...).  After
 * relocation every global must therefore be in the procedure's own image or be
 * one of worker_syms. */
static void worker_check_symbol(void *opaque, const char *name, const void *val)
{
	struct worker_compile *c = opaque;
	const char *p = val;

	if (c->bad_symbol || !p || (p >= c->code_lo && p <= c->code_hi))
		return;
	for (size_t i = 0; i < worker_nsyms; i++)
		if (worker_syms[i].addr == val && strcmp(worker_syms[i].name, name) == 0)
			return;
	c->bad_symbol = name;
}

/* Options, include paths and the symbols procedures may use: everything before
 * the source.  A compile child does this while it waits for its load (load.c),
 * so that, and the pages it touches, are off the cold path. */
TCCState *worker_compiler_new(const char *include_dir)
{
	TCCState *s = tcc_new();

	if (!s)
		return NULL;
	tcc_set_options(s, "-nostdlib -nostdinc");
	tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
	tcc_add_include_path(s, include_dir);
	tcc_add_sysinclude_path(s, include_dir);
	/* The precheck rejects _Pragma; this also neutralises one built by ## pasting. */
	tcc_define_symbol(s, "_Pragma(x)", "");
	for (size_t i = 0; i < worker_nsyms; i++)
		tcc_add_symbol(s, worker_syms[i].name, worker_syms[i].addr);
	return s;
}

/*
 * A compile of a fixed, trusted procedure whose result is thrown away: tcc's
 * first-use work, its code and the headers then in the page cache, and the pages
 * a compile touches (tcc's tables, the heap it allocates and frees) present in
 * this process.  In a fresh fork that is most of a compile's price on a VM where
 * a process's first touch of a page is expensive (docs/long-tail.md: a compile
 * child that did this compiled a procedure in about 400 µs rather than 2.5 ms).
 * With @libtcc1 the image is also relocated (into memory unmapped at once); a
 * NULL @libtcc1 parses only, so nothing here ever becomes executable.
 */
/* The rehearsal's messages: none is expected, and tcc's default would write to
 * stderr, which a compile child may not (its filter: SIGSYS).  Headers that do
 * not compile (another seglamfs's include/) made the rehearsal, not the load,
 * fail that way. */
static void worker_tcc_quiet(void *opaque, const char *msg)
{
	(void)opaque;
	(void)msg;
}

void worker_compile_rehearse(const char *include_dir, const char *libtcc1)
{
	static const char src[] = "#include <seglam.h>\n#include <ctype.h>\n#include <string.h>\n"
				  "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
				  "{\n\tfor (size_t i = 0; i < len; i++) {\n"
				  "\t\tchar c = (char)toupper((unsigned char)in[i]);\n"
				  "\t\tseglam_write(out, &c, 1);\n\t}\n"
				  "\treturn seglam_write(out, \"\\n\", strlen(\"\\n\"));\n}\n";
	TCCState *s = worker_compiler_new(include_dir);
	void *mem;
	int size;

	if (!s)
		return;
	tcc_set_error_func(s, NULL, worker_tcc_quiet);
	if (tcc_compile_string(s, src) < 0 || !libtcc1 || tcc_add_file(s, libtcc1) < 0 ||
	    (size = tcc_relocate(s, NULL)) <= 0)
		goto out;
	mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		goto out;
	tcc_relocate(s, mem);
	munmap(mem, (size_t)size);
out:
	tcc_delete(s);
}

worker_run_fn worker_compile(TCCState *s, const char *src, const char *include_dir,
			     const char *libtcc1, char *at, size_t room, size_t *image,
			     struct buf *err)
{
	struct worker_compile c = {.msg = BUF_INIT, .include_dir = include_dir};
	worker_run_fn fn = NULL;
	void *mem = MAP_FAILED;
	int size;

	if (!s)
		s = worker_compiler_new(include_dir);
	if (!s) {
		buf_adds(err, "out of memory starting the compiler");
		goto out;
	}
	tcc_set_error_func(s, &c, worker_tcc_error);
	if (tcc_compile_string(s, src) < 0)
		goto fail;
	/* After the source: tcc only takes the archive members that resolve
	 * symbols still undefined (va_arg, long double and int128 helpers). */
	if (tcc_add_file(s, libtcc1) < 0)
		goto fail;
	size = tcc_relocate(s, NULL);
	if (size < 0)
		goto fail;
	*image = (size_t)size;
	if (at && (size_t)size > room)
		goto out; /* the caller says so: no room at @at */
	/* Our own buffer rather than TCC_RELOCATE_AUTO, so the image bounds are known
	 * (and, for a zygote's slot, where the zygote will keep it: load.c). */
	mem = mmap(at, (size_t)size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);
	if (mem == MAP_FAILED) {
		buf_adds(err, "out of memory relocating the procedure");
		goto out;
	}
	if (tcc_relocate(s, mem) < 0)
		goto fail;
	c.code_lo = mem;
	c.code_hi = (const char *)mem + size;
	tcc_list_symbols(s, &c, worker_check_symbol);
	if (c.bad_symbol) {
		buf_printf(err,
			   "'%s' is not available to procedures (they may only call the "
			   "functions declared in the allowed headers)",
			   c.bad_symbol);
		goto out;
	}
	fn = (worker_run_fn)tcc_get_symbol(s, "seglam_run");
	if (!fn) {
		buf_adds(err, "seglam_run is not defined");
		goto out;
	}
	/* s stays alive on success: it owns the sections the code points into. */
	s = NULL;
	goto out;
fail:
	while (c.msg.len && c.msg.data[c.msg.len - 1] == '\n')
		buf_truncate(&c.msg, c.msg.len - 1);
	buf_adds(err, c.msg.len ? c.msg.data : "compilation failed");
out:
	if (!fn && mem != MAP_FAILED && !at)
		munmap(mem, (size_t)size);
	if (s)
		tcc_delete(s);
	buf_free(&c.msg);
	return fn;
}
