/* vkg_file_size: see files.h. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"
#include "runtime/error.h"

vkg_status vkg_file_size(const char *op, const char *const *paths, int k, uint64_t *size) {
    struct stat sb;
    if (!paths[k]) return vkg_fail(VKG_ERR_INVALID, "%s: path %d is NULL", op, k);
    if (stat(paths[k], &sb) != 0) return vkg_fail(VKG_ERR_IO, "%s: cannot open (%s)", paths[k], strerror(errno));
    if (!S_ISREG(sb.st_mode)) return vkg_fail(VKG_ERR_IO, "%s: not a regular file", paths[k]);
    *size = (uint64_t)sb.st_size;
    return VKG_OK;
}
