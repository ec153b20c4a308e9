/* Byte-level text corpus: files are sized before anything is read (one allocation), the split
 * is by position, and the windows come from a counter-based generator (see text.h). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"
#include "runtime/error.h"
#include "text.h"

void vkg_text_free(vkg_text *t) {
    if (!t) return;
    free(t->data);
    memset(t, 0, sizeof *t);
}

vkg_status vkg_text_load_files(const char *const *paths, int count, vkg_text *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_text_load_files: out is NULL");
    memset(out, 0, sizeof *out);
    if (count < 1 || !paths) return vkg_fail(VKG_ERR_INVALID, "vkg_text_load_files: no files given");
    vkg_status st = VKG_OK;
    FILE *f = NULL;
    uint64_t *sizes = calloc((size_t)count, sizeof *sizes), total = 0;
    if (!sizes) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_text_load_files: cannot allocate");
    for (int k = 0; k < count; k++) {
        if ((st = vkg_file_size("vkg_text_load_files", paths, k, &sizes[k])) != VKG_OK) goto done;
        total += sizes[k];
        if (total > VKG_TEXT_MAX_BYTES) {
            st = vkg_fail(VKG_ERR_TOO_LARGE, "%s: the files add up to more than the %llu-byte limit",
                          paths[k], (unsigned long long)VKG_TEXT_MAX_BYTES);
            goto done;
        }
    }
    out->data = malloc(total ? (size_t)total : 1);
    if (!out->data) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes", paths[0],
                      (unsigned long long)total);
        goto done;
    }
    size_t pos = 0;
    for (int k = 0; k < count; k++) {
        f = fopen(paths[k], "rb");
        if (!f) {
            st = vkg_fail(VKG_ERR_IO, "%s: cannot open (%s)", paths[k], strerror(errno));
            goto done;
        }
        size_t got = fread(out->data + pos, 1, (size_t)sizes[k], f);
        if (got != sizes[k] || fgetc(f) != EOF) {
            st = vkg_fail(VKG_ERR_IO, "%s: expected %llu bytes but read %zu%s (the file changed?)",
                          paths[k], (unsigned long long)sizes[k], got, got == sizes[k] ? " and more" : "");
            goto done;
        }
        fclose(f);
        f = NULL;
        pos += got;
    }
    out->size = pos;
    out->train_size = pos / 10 * 9 + pos % 10 * 9 / 10;   /* floor(pos * 9 / 10), no overflow */
    out->val_size = pos - out->train_size;
    out->file_count = count;
done:
    if (f) fclose(f);
    free(sizes);
    if (st != VKG_OK) vkg_text_free(out);
    return st;
}

vkg_status vkg_text_load_file(const char *path, vkg_text *out) {
    return vkg_text_load_files(&path, 1, out);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

vkg_status vkg_text_load_dir(const char *dir, vkg_text *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_text_load_dir: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dir) dir = VKG_TEXT_DEFAULT_DIR;
    vkg_status st = VKG_OK;
    char **paths = NULL;
    int n = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d) return vkg_fail(VKG_ERR_IO, "%s: cannot open directory (%s)", dir, strerror(errno));
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (name[0] == '.' || ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
        size_t len = strlen(dir) + 1 + strlen(name) + 1;
        char *p = malloc(len);
        if (!p) {
            st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate", dir);
            goto done;
        }
        snprintf(p, len, "%s/%s", dir, name);
        struct stat sb;
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {  /* links, directories, devices */
            free(p);
            continue;
        }
        if (n == cap) {
            int ncap = cap ? cap * 2 : 32;
            char **np = realloc(paths, (size_t)ncap * sizeof *np);
            if (!np) {
                free(p);
                st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate", dir);
                goto done;
            }
            paths = np;
            cap = ncap;
        }
        paths[n++] = p;
    }
    if (errno != 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot list (%s)", dir, strerror(errno));
        goto done;
    }
    if (n == 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: no text files (after skipping links, *.dat and *.u8)", dir);
        goto done;
    }
    qsort(paths, (size_t)n, sizeof *paths, cmp_str);
    st = vkg_text_load_files((const char *const *)paths, n, out);
done:
    closedir(d);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    return st;
}

const uint8_t *vkg_text_part(const vkg_text *t, vkg_text_split split, size_t *size) {
    if (!t || !t->data) {
        if (size) *size = 0;
        return NULL;
    }
    if (size) *size = split == VKG_TEXT_VAL ? t->val_size : t->train_size;
    return split == VKG_TEXT_VAL ? t->data + t->train_size : t->data;
}

uint64_t vkg_text_random(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

vkg_status vkg_text_batch(const vkg_text *t, vkg_text_split split, uint64_t seed,
                          uint64_t batch_index, int B, int T, uint8_t *x, uint8_t *y) {
    if (!t || !x || !y || B < 1 || T < 1)
        return vkg_fail(VKG_ERR_INVALID, "vkg_text_batch: bad arguments (B %d, T %d)", B, T);
    if (split != VKG_TEXT_TRAIN && split != VKG_TEXT_VAL)
        return vkg_fail(VKG_ERR_INVALID, "vkg_text_batch: unknown split %d", (int)split);
    size_t n;
    const uint8_t *part = vkg_text_part(t, split, &n);
    if (!part || n < (size_t)T + 1)
        return vkg_fail(VKG_ERR_INVALID, "vkg_text_batch: the %s split holds %zu bytes, fewer than "
                        "T + 1 = %d", split == VKG_TEXT_VAL ? "validation" : "training", n, T + 1);
    uint64_t span = (uint64_t)(n - (size_t)T);   /* start positions 0 .. n-T-1 */
    for (int b = 0; b < B; b++) {
        uint64_t p = vkg_text_random(seed, batch_index * (uint64_t)B + (uint64_t)b) % span;
        memcpy(x + (size_t)b * (size_t)T, part + p, (size_t)T);
        memcpy(y + (size_t)b * (size_t)T, part + p + 1, (size_t)T);
    }
    return VKG_OK;
}
