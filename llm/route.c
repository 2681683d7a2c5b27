/* llm_route: the routing prompt and reply blocks; see llm_route.h. */
#include "llm_route.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char route_system[] =
    "You route questions asked in plain words to procedures of seglamfs, a cache of\n"
    "reasoning as code.  A type is a deterministic C procedure from an input string to an\n"
    "answer; patterns are the phrasings of questions that belong to a type, with slots\n"
    "{NAME} that extract the type's input.  Answers come from running the procedure,\n"
    "never from you, so route only questions that a pure function of an input answers.\n"
    "\n"
    "Pattern syntax: literal text with slots {NAME}, optionally followed by ` => TEMPLATE`\n"
    "(text with the same slots) that builds the input; without it the input is the\n"
    "slots' values joined by one space.  There is no other syntax: no regex, no optional\n"
    "parts, one phrasing a line.  Matching ignores case, treats white space runs as one\n"
    "space and ignores white space and ?.! at both ends; each slot takes the shortest\n"
    "text that lets the rest match.  Every pattern needs at least one whole literal word.\n"
    "When patterns of several types match a question the one with the most literal\n"
    "characters wins and a tie answers nothing, so make patterns specific to the type.\n"
    "\n"
    "Reuse an existing type when it fits (give only new patterns for it); make a new\n"
    "type only when none fits.  Reply with exactly these fenced blocks:\n"
    "\n"
    "```route\n"
    "type: TYPE-NAME\n"
    "```\n"
    "(or `none: REASON` when no procedure can answer, e.g. it needs the current time,\n"
    "the network or opinions).  TYPE-NAME is 1 to 128 of A-Z a-z 0-9 . _ + -.\n"
    "\n"
    "```patterns\n"
    "a phrasing with a {slot}\n"
    "```\n"
    "\n"
    "```questions\n"
    "THE QUESTION ASKED => ITS INPUT\n"
    "another phrasing of it => ITS INPUT\n"
    "```\n"
    "\n"
    "The patterns must match the question asked and give exactly the input of each line\n"
    "of the questions block.  For a new type also give the procedure, as\n"
    "\n"
    "```c\n"
    "#include <seglam.h>\n"
    "int seglam_run(const char *in, size_t len, seglam_out *out) { ... }\n"
    "```\n"
    "\n"
    "(return 0 with the answer written by seglam_write/seglam_printf, conventionally\n"
    "ending with a newline, or nonzero to reject the input with a reason; only the\n"
    "standard C headers string.h stdlib.h stdio.h ctype.h math.h stdint.h stdbool.h\n"
    "limits.h; no files, time or network), a ```spec block saying what the type means,\n"
    "and a ```tests block of lines `INPUT => ANSWER` (the answer without its newline).\n";

void llm_route_prompt(const struct llm_route_input *in, struct buf *system, struct buf *user)
{
	size_t i;

	buf_adds(system, route_system);
	buf_printf(user, "Question:\n%s\n\n", in->question);
	if (!in->ntypes)
		buf_adds(user, "There are no existing types near this question.\n");
	else
		buf_adds(user, "The nearest existing types:\n");
	for (i = 0; i < in->ntypes; i++) {
		const struct llm_route_type *t = &in->types[i];

		buf_printf(user, "\n## type: %s\n", t->name);
		if (t->spec && *t->spec)
			buf_printf(user, "spec:\n%s\n", t->spec);
		if (t->patterns && *t->patterns)
			buf_printf(user, "patterns:\n%s\n", t->patterns);
		if (t->examples && *t->examples)
			buf_printf(user, "questions:\n%s\n", t->examples);
	}
	if (in->prev_reply) {
		buf_printf(user,
			   "\nYour previous reply was not admitted:\n%s\n\nIt was:\n%s\n"
			   "Reply again, fixing this.\n",
			   in->failure ? in->failure : "(no reason)", in->prev_reply);
	}
}

static const char *line_end(const char *s, const char *e)
{
	const char *nl = memchr(s, '\n', (size_t)(e - s));

	return nl ? nl : e;
}

int llm_reply_block(const char *reply, size_t len, const char *tag, struct buf *out)
{
	const char *p = reply, *e = reply + len;
	size_t taglen = strlen(tag);
	int n = 0;
	bool in = false, mine = false, think = false;

	buf_reset(out);
	while (p < e) {
		const char *le = line_end(p, e), *s = p;
		size_t ll;

		while (s < le && (*s == ' ' || *s == '\t'))
			s++;
		ll = (size_t)(le - s);
		if (ll && s[ll - 1] == '\r')
			ll--;
		if (!in && !think && ll >= 7 && !strncasecmp(s, "<think>", 7))
			think = true;
		if (think) {
			if (memmem(s, ll, "</think>", 8))
				think = false;
		} else if (ll >= 3 && !strncmp(s, "```", 3)) {
			if (in) {
				in = false;
			} else {
				const char *t = s + 3;
				size_t tl = ll - 3;

				while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
					tl--;
				in = true;
				mine = tl == taglen && !strncasecmp(t, tag, taglen);
				n += mine;
			}
		} else if (in && mine) {
			buf_add(out, p, (size_t)(s - p) + ll);
			buf_addc(out, '\n');
		}
		p = le < e ? le + 1 : e;
	}
	if (!out->data)
		buf_grow(out, 1);
	return n;
}
