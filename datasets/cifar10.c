/* CIFAR-10 binary batches: sizes are checked against the file before anything is allocated,
 * then each record is split into its label and its 3072 pixel bytes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cifar10.h"
#include "files.h"
#include "runtime/error.h"

void vkg_cifar10_free(vkg_cifar10 *c) {
    if (!c) return;
    free(c->images);
    free(c->labels);
    memset(c, 0, sizeof *c);
}

static vkg_status cifar_alloc(const char *what, size_t count, vkg_cifar10 *out) {
    out->images = malloc(count ? count * VKG_CIFAR10_PIXELS : 1);
    out->labels = malloc(count ? count : 1);
    if (!out->images || !out->labels)
        return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu images", what, count);
    return VKG_OK;
}

/* One record into slot i; the label is checked here so the message can say which one. */
static vkg_status put_record(const char *what, const uint8_t *rec, size_t i, size_t rec_in_file,
                             vkg_cifar10 *out) {
    if (rec[0] >= VKG_CIFAR10_CLASSES)
        return vkg_fail(VKG_ERR_FORMAT, "%s: record %zu has label %u (classes are 0 to 9)", what,
                        rec_in_file, rec[0]);
    out->labels[i] = rec[0];
    memcpy(out->images + i * VKG_CIFAR10_PIXELS, rec + 1, VKG_CIFAR10_PIXELS);
    return VKG_OK;
}

vkg_status vkg_cifar10_parse(const void *bytes, size_t n, vkg_cifar10 *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_cifar10_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!bytes && n) return vkg_fail(VKG_ERR_INVALID, "vkg_cifar10_parse: bytes is NULL");
    const char *what = "CIFAR-10 memory image";
    vkg_status st = VKG_OK;
    if (n % VKG_CIFAR10_RECORD != 0 || n > VKG_CIFAR10_MAX_BYTES) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: %zu bytes is not a whole number of 3073-byte records "
                      "(or passes the %llu-byte limit)", what, n,
                      (unsigned long long)VKG_CIFAR10_MAX_BYTES);
        goto done;
    }
    size_t count = n / VKG_CIFAR10_RECORD;
    if ((st = cifar_alloc(what, count, out)) != VKG_OK) goto done;
    for (size_t i = 0; i < count && st == VKG_OK; i++)
        st = put_record(what, (const uint8_t *)bytes + i * VKG_CIFAR10_RECORD, i, i, out);
    out->count = count;
done:
    if (st != VKG_OK) vkg_cifar10_free(out);
    return st;
}

vkg_status vkg_cifar10_read_files(const char *const *paths, int nfiles, vkg_cifar10 *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_cifar10_read_files: out is NULL");
    memset(out, 0, sizeof *out);
    if (nfiles < 1 || !paths)
        return vkg_fail(VKG_ERR_INVALID, "vkg_cifar10_read_files: no files given");
    vkg_status st = VKG_OK;
    FILE *f = NULL;
    size_t *counts = calloc((size_t)nfiles, sizeof *counts);
    if (!counts) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_cifar10_read_files: cannot allocate");
    uint64_t total = 0;
    for (int k = 0; k < nfiles; k++) {
        uint64_t size;
        if ((st = vkg_file_size("vkg_cifar10_read_files", paths, k, &size)) != VKG_OK) goto done;
        if (size % VKG_CIFAR10_RECORD != 0) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: size %llu is not a multiple of the 3073-byte record "
                          "(1 label byte + 3072 pixel bytes)", paths[k], (unsigned long long)size);
            goto done;
        }
        total += size;
        if (total > VKG_CIFAR10_MAX_BYTES) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: the files add up to more than the %llu-byte limit",
                          paths[k], (unsigned long long)VKG_CIFAR10_MAX_BYTES);
            goto done;
        }
        counts[k] = (size_t)(size / VKG_CIFAR10_RECORD);
    }
    size_t count = (size_t)(total / VKG_CIFAR10_RECORD), i = 0;
    if ((st = cifar_alloc(paths[0], count, out)) != VKG_OK) goto done;
    uint8_t rec[VKG_CIFAR10_RECORD];
    for (int k = 0; k < nfiles; k++) {
        f = fopen(paths[k], "rb");
        if (!f) {
            st = vkg_fail(VKG_ERR_IO, "%s: cannot open (%s)", paths[k], strerror(errno));
            goto done;
        }
        for (size_t r = 0; r < counts[k]; r++, i++) {
            if (fread(rec, 1, sizeof rec, f) != sizeof rec) {
                st = vkg_fail(VKG_ERR_IO, "%s: short read at record %zu (the file changed?)", paths[k], r);
                goto done;
            }
            if ((st = put_record(paths[k], rec, i, r, out)) != VKG_OK) goto done;
        }
        if (fgetc(f) != EOF) {
            st = vkg_fail(VKG_ERR_IO, "%s: the file grew while being read", paths[k]);
            goto done;
        }
        fclose(f);
        f = NULL;
    }
    out->count = count;
done:
    if (f) fclose(f);
    free(counts);
    if (st != VKG_OK) vkg_cifar10_free(out);
    return st;
}

vkg_status vkg_cifar10_read(const char *path, vkg_cifar10 *out) {
    return vkg_cifar10_read_files(&path, 1, out);
}

vkg_status vkg_cifar10_load(const char *dir, vkg_cifar10 *train, vkg_cifar10 *test) {
    if (train) memset(train, 0, sizeof *train);
    if (test) memset(test, 0, sizeof *test);
    if (!dir) {
        const char *env = getenv("VKG_CIFAR10");
        dir = env && env[0] ? env : "cifar-10-batches-bin";
    }
    char buf[6][4096];
    const char *paths[5];
    for (int k = 0; k < 6; k++) {
        int n = k < 5 ? snprintf(buf[k], sizeof buf[k], "%s/data_batch_%d.bin", dir, k + 1)
                      : snprintf(buf[k], sizeof buf[k], "%s/test_batch.bin", dir);
        if (n < 0 || (size_t)n >= sizeof buf[k])
            return vkg_fail(VKG_ERR_INVALID, "%s: directory path too long", dir);
        if (k < 5) paths[k] = buf[k];
    }
    vkg_status st = VKG_OK;
    if (train && (st = vkg_cifar10_read_files(paths, 5, train)) != VKG_OK) return st;
    if (test && (st = vkg_cifar10_read(buf[5], test)) != VKG_OK) {
        if (train) vkg_cifar10_free(train);
        return st;
    }
    return VKG_OK;
}
