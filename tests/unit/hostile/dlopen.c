/* Declares dlopen()/dlsym() and loads libc to reach system().
 * expect: ENOEXEC 'dlopen' is not available */
#include <seglam.h>
void *dlopen(const char *file, int mode);
void *dlsym(void *h, const char *name);
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	void *h = dlopen("libc.so.6", 2);
	int (*sys)(const char *) = (int (*)(const char *))dlsym(h, "system");
	(void)in; (void)len;
	seglam_printf(out, "%d\n", sys ? sys("touch /tmp/seglam-pwned-dlopen") : -1);
	return 0;
}
