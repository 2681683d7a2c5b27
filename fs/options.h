/*
 * options: checking the numeric -o options before fuse_opt parses them.
 *
 * fuse_opt's "%u" takes "-5" as 4294967291 and wraps overflow silently; a limit
 * that wraps is worse than no mount (a 7-minute read instead of 5 ms), so every
 * numeric option is checked here first: digits only, within its range.
 */
#ifndef SEGLAM_OPTIONS_H
#define SEGLAM_OPTIONS_H

/* Returns 0, or -1 after printing "seglamfs: -o NAME=VALUE: must be ..." to stderr. */
int options_check_numbers(int argc, char **argv);

#endif
