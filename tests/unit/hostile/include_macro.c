/* An #include whose operand is a macro that expands to a host path.
 * expect: ENOEXEC is not allowed */
#include <seglam.h>
#define EVIL "/etc/passwd"
#include EVIL
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
