/* Byte-level text corpus for language models: files concatenated, split by position, and
 * random (x, y) windows that depend only on (seed, batch index).
 *
 *   vkg_text t;
 *   if (vkg_text_load_dir(NULL, &t) != VKG_OK) {        // NULL: the fortunes corpus
 *       fprintf(stderr, "%s\n", vkg_last_error());
 *       return 1;
 *   }
 *   uint8_t x[8 * 64], y[8 * 64];                        // (B, T) each
 *   vkg_text_batch(&t, VKG_TEXT_TRAIN, 42, step, 8, 64, x, y);   // y[b][t] == x[b][t+1]'s source
 *   vkg_text_free(&t);
 *
 * Split: the first train_size = floor(size * 9 / 10) bytes are the training part, the last
 * val_size = size - train_size bytes the validation part.
 *
 * Windows: sample b of batch i on a split of n bytes starts at p = r % (n - T), where
 * r = splitmix64_mix(seed + (i * B + b + 1) * 0x9E3779B97F4A7C15) (arithmetic mod 2^64;
 * splitmix64_mix is Steele, Lea and Flood's SplitMix64 finaliser, see vkg_text_random), and
 * x = part[p .. p+T), y = part[p+1 .. p+T+1). Counter-based, so any batch can be made
 * alone, in any order, on any machine. The modulo bias is below n / 2^64: negligible. */
#ifndef VKG_DATASETS_TEXT_H
#define VKG_DATASETS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VKG_TEXT_DEFAULT_DIR "/usr/share/games/fortunes"
#define VKG_TEXT_MAX_BYTES ((uint64_t)1 << 30)   /* total corpus size accepted */

typedef enum vkg_text_split { VKG_TEXT_TRAIN = 0, VKG_TEXT_VAL = 1 } vkg_text_split;

typedef struct vkg_text {
    uint8_t *data;        /* size bytes: the files, concatenated in order, nothing between */
    size_t size;
    size_t train_size;    /* floor(size * 9 / 10): data[0, train_size)                      */
    size_t val_size;      /* size - train_size:    data[train_size, size)                   */
    int file_count;
} vkg_text;

/* One file. */
vkg_status vkg_text_load_file(const char *path, vkg_text *out);
/* Several files, concatenated in the order given. */
vkg_status vkg_text_load_files(const char *const *paths, int count, vkg_text *out);
/* Every regular file of dir (NULL: VKG_TEXT_DEFAULT_DIR) in byte order of name (strcmp),
 * skipping symbolic links, directories, hidden files and names ending in ".dat" (fortune's
 * index files) or ".u8". */
vkg_status vkg_text_load_dir(const char *dir, vkg_text *out);
void vkg_text_free(vkg_text *t);

/* The bytes of a split and their count. */
const uint8_t *vkg_text_part(const vkg_text *t, vkg_text_split split, size_t *size);

/* The counter-based generator: splitmix64_mix(seed + (counter + 1) * 0x9E3779B97F4A7C15). */
uint64_t vkg_text_random(uint64_t seed, uint64_t counter);

/* B windows of T bytes from a split, as described above: x and y are (B, T) each.
 * VKG_ERR_INVALID if B or T < 1 or the split has fewer than T + 1 bytes. */
vkg_status vkg_text_batch(const vkg_text *t, vkg_text_split split, uint64_t seed,
                          uint64_t batch_index, int B, int T, uint8_t *x, uint8_t *y);

#ifdef __cplusplus
}
#endif
#endif
