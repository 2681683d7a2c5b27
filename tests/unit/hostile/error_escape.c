/* A compile error that quotes the source: ESC and BEL from an #error line must
 * reach the log and the reader escaped, never raw (issue 10 item 7).
 * expect: ENOEXEC #error \x1b[2J\x07 cleared your screen */
#include <seglam.h>
#error [2J cleared your screen
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
