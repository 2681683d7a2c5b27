/* stddef.h for seglamfs procedures (x86_64, LP64). */
#ifndef _STDDEF_H
#define _STDDEF_H
typedef unsigned long size_t;
typedef long ssize_t;
typedef long ptrdiff_t;
typedef int wchar_t;
typedef long double max_align_t;
#ifndef NULL
#define NULL ((void *)0)
#endif
#define offsetof(type, field) ((size_t) & ((type *)0)->field)
#endif
