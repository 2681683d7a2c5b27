/*
 * fuzz: the entry points of seglamfs's fuzz targets, one per parser of outside
 * data (see fuzz/README.md).
 *
 * Each fuzz/fuzz_TARGET.c defines fuzz_TARGET(data, size), which feeds one input
 * to the real code and aborts (FUZZ_CHECK) when an invariant does not hold.
 * Built with -DFUZZ_LIBFUZZER (scripts/fuzz, clang -fsanitize=fuzzer) it also
 * defines LLVMFuzzerTestOneInput; built without (tests/unit/test_fuzz_regress.c,
 * gcc) the regression test calls the entry points on every file of
 * fuzz/corpus/TARGET/ and fuzz/regress/TARGET/.
 */
#ifndef SEGLAM_FUZZ_H
#define SEGLAM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* X(name): every target, in the order scripts/fuzz runs them. */
#define FUZZ_TARGETS(X)                                                                            \
	X(name)                                                                                    \
	X(reply)                                                                                   \
	X(openai)                                                                                  \
	X(anthropic)                                                                               \
	X(meta)                                                                                    \
	X(cases)                                                                                   \
	X(frame)                                                                                   \
	X(sandbox)                                                                                 \
	X(batch)                                                                                   \
	X(precheck)                                                                                \
	X(retry)

#define FUZZ_DECLARE(t) int fuzz_##t(const uint8_t *data, size_t size);
FUZZ_TARGETS(FUZZ_DECLARE)
#undef FUZZ_DECLARE

/* An invariant of the code under test: a violation is a finding, like a crash. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#ifdef FUZZ_LIBFUZZER
#define FUZZ_MAIN(t)                                                                               \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                              \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                               \
	{                                                                                          \
		return fuzz_##t(data, size);                                                       \
	}
#else
#define FUZZ_MAIN(t)
#endif

#endif
