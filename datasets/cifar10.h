/* CIFAR-10, binary version: 60,000 32x32 colour images in 10 classes.
 *
 *   vkg_cifar10 train, test;
 *   if (vkg_cifar10_load(NULL, &train, &test) != VKG_OK) {     // NULL: $VKG_CIFAR10
 *       fprintf(stderr, "%s\n", vkg_last_error());
 *       return 1;
 *   }
 *   ... train.images is (50000, 3, 32, 32) u8, train.labels (50000,) 0..9 ...
 *   vkg_cifar10_free(&train);
 *   vkg_cifar10_free(&test);
 *
 * Each file (data_batch_1.bin .. data_batch_5.bin, test_batch.bin) is a run of 3073-byte
 * records: one label byte, then 1024 red, 1024 green and 1024 blue bytes (rows top to bottom).
 * A file whose size is not a multiple of 3073, or any label above 9, is refused. Files are
 * read plain (the official archive is a .tar.gz to unpack first). */
#ifndef VKG_DATASETS_CIFAR10_H
#define VKG_DATASETS_CIFAR10_H

#include <stddef.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VKG_CIFAR10_CHANNELS 3
#define VKG_CIFAR10_SIZE 32
#define VKG_CIFAR10_PIXELS (VKG_CIFAR10_CHANNELS * VKG_CIFAR10_SIZE * VKG_CIFAR10_SIZE) /* 3072 */
#define VKG_CIFAR10_RECORD (1 + VKG_CIFAR10_PIXELS)                                      /* 3073 */
#define VKG_CIFAR10_CLASSES 10
/* Largest total accepted from one call: 1 GiB (the real training set is 153,650,000 bytes). */
#define VKG_CIFAR10_MAX_BYTES ((uint64_t)1 << 30)

typedef struct vkg_cifar10 {
    size_t count;
    uint8_t *images;   /* (count, 3, 32, 32): channel planes R, G, B */
    uint8_t *labels;   /* (count,), each 0..9                         */
} vkg_cifar10;

/* Reads one or several batch files, concatenated in the order given. */
vkg_status vkg_cifar10_read(const char *path, vkg_cifar10 *out);
vkg_status vkg_cifar10_read_files(const char *const *paths, int count, vkg_cifar10 *out);
/* Parses records held in memory (n must be a multiple of 3073). */
vkg_status vkg_cifar10_parse(const void *bytes, size_t n, vkg_cifar10 *out);
/* dir/data_batch_{1..5}.bin -> train, dir/test_batch.bin -> test. dir NULL: $VKG_CIFAR10,
 * else "cifar-10-batches-bin" in the working directory. Either of train, test may be NULL. */
vkg_status vkg_cifar10_load(const char *dir, vkg_cifar10 *train, vkg_cifar10 *test);
void vkg_cifar10_free(vkg_cifar10 *c);

#ifdef __cplusplus
}
#endif
#endif
