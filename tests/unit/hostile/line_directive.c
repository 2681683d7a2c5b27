/* #line would let a source lie about where its errors are.
 * expect: ENOEXEC #line 1 "/etc/shadow" is not allowed */
#include <seglam.h>
#line 1 "/etc/shadow"
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
