/*
 * bench/gen-store.c: write a seglamfs store of N procedures directly on disk, in
 * the store layout of cache/store.c (store_type_dir): STORE/seglamfs-store and
 * STORE/procs/HH/HH/TYPE/source.c, HHHH the top 16 bits of XXH3_64(TYPE).
 *
 *   gen-store STORE N PREFIX      types PREFIX0000000 ... (N of them)
 *   gen-store STORE N PREFIX q    the same, each with procs/TYPE/patterns
 *                                 ("what is the TYPE of {x}", "TYPE of {x}") and one
 *                                 example question (questions/ex.q|.in), for the
 *                                 questions benchmark
 *
 * Every source is distinct (it names its type), so no two types share a worker.
 * Plain writes, no fsync: this is test data, the page cache is written back later.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static const char SRC[] = "/* %s: upper-case the input (seglamfs benchmark procedure) */\n"
			  "#include <seglam.h>\n"
			  "#include <ctype.h>\n"
			  "\n"
			  "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			  "{\n"
			  "\tfor (size_t i = 0; i < len; i++) {\n"
			  "\t\tchar c = (char)toupper((unsigned char)in[i]);\n"
			  "\t\tseglam_write(out, &c, 1);\n"
			  "\t}\n"
			  "\treturn seglam_write(out, \"\\n\", 1);\n"
			  "}\n";

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void mk(int dfd, const char *p)
{
	if (mkdirat(dfd, p, 0755) != 0 && errno != EEXIST)
		die(p);
}

int main(int argc, char **argv)
{
	static unsigned char made[65536];
	char type[160], path[512], src[1024];
	unsigned long n;
	int root, fd;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: gen-store STORE N PREFIX [q]\n");
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	mkdir(argv[1], 0755);
	root = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (root < 0)
		die(argv[1]);
	fd = openat(root, "seglamfs-store", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "seglamfs-store 1\n", 17) != 17)
		die("marker");
	close(fd);
	mk(root, "procs");
	for (unsigned long i = 0; i < n; i++) {
		XXH64_hash_t h;
		unsigned hi, lo;
		int len;

		snprintf(type, sizeof(type), "%s%07lu", argv[3], i);
		h = XXH3_64bits(type, strlen(type));
		hi = (unsigned)(h >> 56);
		lo = (unsigned)(h >> 48) & 0xff;
		if (!made[hi << 8 | lo]) {
			snprintf(path, sizeof(path), "procs/%02x", hi);
			mk(root, path);
			snprintf(path, sizeof(path), "procs/%02x/%02x", hi, lo);
			mk(root, path);
			made[hi << 8 | lo] = 1;
		}
		snprintf(path, sizeof(path), "procs/%02x/%02x/%s", hi, lo, type);
		mk(root, path);
		snprintf(path, sizeof(path), "procs/%02x/%02x/%s/source.c", hi, lo, type);
		len = snprintf(src, sizeof(src), SRC, type);
		fd = openat(root, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, src, (size_t)len) != len)
			die(path);
		close(fd);
		if (argc > 4 && !strcmp(argv[4], "q")) {
			static const char *files[][2] = {
			    {"patterns", "what is the %s of {x}\n%s of {x}\n"},
			    {"questions/ex.q", "What is the %s of abc?\n"},
			    {"questions/ex.in", "abc\n"}};

			snprintf(path, sizeof(path), "procs/%02x/%02x/%s/questions", hi, lo, type);
			mk(root, path);
			for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
				snprintf(path, sizeof(path), "procs/%02x/%02x/%s/%s", hi, lo, type,
					 files[k][0]);
				len = snprintf(src, sizeof(src), files[k][1], type, type);
				fd = openat(root, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
				if (fd < 0 || write(fd, src, (size_t)len) != len)
					die(path);
				close(fd);
			}
		}
	}
	close(root);
	return 0;
}
