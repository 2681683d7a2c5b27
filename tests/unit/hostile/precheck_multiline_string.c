/* tcc lets a string literal run on over the newline to its closing quote; a
 * precheck that ended it at the newline took that quote for an opener and the
 * comment opener before it for a comment, hiding the #include from itself.
 * expect: ENOEXEC missing terminating " character */
#include <seglam.h>
const char *s = "abc
/* "
#include "/etc/passwd"
// */
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
