/* Checks the readers share before they trust a path: it names a regular file, and its size. */
#ifndef VKG_DATASETS_FILES_H
#define VKG_DATASETS_FILES_H

#include <stdint.h>

#include "vkgrad.h"

/* The size of paths[k], which must be a regular file; op names the caller in messages. */
vkg_status vkg_file_size(const char *op, const char *const *paths, int k, uint64_t *size);

#endif
