/*
 * nolandlock-worker: runs the real seglam-worker on a kernel that seems to have no
 * Landlock, for test_sandbox.  A seccomp filter makes landlock_create_ruleset fail
 * with ENOSYS (what a kernel before 5.13, or one without landlock in its lsm= list,
 * answers), then the real worker is exec'd with the same argv: the filter stays.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);

	(void)argc;
	if (!ctx ||
	    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(landlock_create_ruleset), 0) <
		0 ||
	    seccomp_load(ctx) < 0)
		return 65;
	seccomp_release(ctx);
	execv(SEGLAM_REAL_WORKER, argv);
	return 64;
}
