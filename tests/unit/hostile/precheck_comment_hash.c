/* After a comment, a '#' first on a line is a directive in normal text but not
 * in text skipped by #if 0; there the #warning is not one, its apostrophe opens a
 * literal that runs over the newline, and the #endif ends the skipped part.
 * expect: ENOEXEC a directive after a comment on its line is not allowed */
#include <seglam.h>
#if 0
/**/ #warning 'x
/* '
#endif
#include "/etc/passwd"
*/
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
