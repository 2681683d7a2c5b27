/*
 * name: file names of ask/TYPE/ to inputs.
 *
 * An input is its file name, percent-decoded: "%2F" is '/', "%25" is '%', and a
 * '%' not followed by two hex digits stands for itself.
 */
#ifndef SEGLAM_NAME_H
#define SEGLAM_NAME_H

#include <stddef.h>

#include "buf.h"

void name_decode(const char *name, size_t len, struct buf *out);

#endif
