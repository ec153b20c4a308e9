/* Fashion-MNIST: 70,000 28x28 grey images of clothes in 10 classes, from IDX files.
 *
 *   vkg_mnist m;
 *   if (vkg_mnist_load(NULL, &m) != VKG_OK) {          // NULL: $VKG_DATA, else the default
 *       fprintf(stderr, "%s\n", vkg_last_error());
 *       return 1;
 *   }
 *   float *x = malloc(m.train.count * VKG_MNIST_PIXELS * sizeof *x);
 *   vkg_mnist_images_to_f32(m.train.images, m.train.count, x, true);   // (N, 28, 28) normalised
 *   ... m.train.labels[i] is 0..9 ...
 *   vkg_mnist_free(&m);
 *
 * The directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
 * and t10k-labels-idx1-ubyte, each plain or with a .gz suffix (the plain file wins when both
 * exist). VKG_DATA, when set and non-empty, names this directory itself. Checks: images are
 * u8 (N, 28, 28), labels u8 (N,), the two counts agree, every label is below 10. MNIST itself
 * has the same layout, so pointing dir at an MNIST folder works too. */
#ifndef VKG_DATASETS_FASHION_MNIST_H
#define VKG_DATASETS_FASHION_MNIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VKG_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define VKG_MNIST_ROWS 28
#define VKG_MNIST_COLS 28
#define VKG_MNIST_PIXELS (VKG_MNIST_ROWS * VKG_MNIST_COLS)
#define VKG_MNIST_CLASSES 10
/* Mean and standard deviation of Fashion-MNIST's training pixels scaled to [0, 1]. */
#define VKG_FASHION_MNIST_MEAN 0.2860f
#define VKG_FASHION_MNIST_STD 0.3530f

typedef struct vkg_mnist_split {
    size_t count;
    uint8_t *images;   /* (count, 28, 28), row-major, 0 = background */
    uint8_t *labels;   /* (count,), each 0..9                        */
} vkg_mnist_split;

typedef struct vkg_mnist {
    vkg_mnist_split train;   /* 60,000 for Fashion-MNIST */
    vkg_mnist_split test;    /* 10,000                   */
} vkg_mnist;

/* The directory vkg_mnist_load(NULL, ...) uses: $VKG_DATA if set and non-empty, else
 * VKG_MNIST_DEFAULT_DIR. */
const char *vkg_mnist_default_dir(void);

/* Loads both splits from dir (NULL: vkg_mnist_default_dir()). On failure *out is zeroed. */
vkg_status vkg_mnist_load(const char *dir, vkg_mnist *out);

/* Loads one split from an images file and a labels file (plain or .gz, exact paths). */
vkg_status vkg_mnist_load_split(const char *images_path, const char *labels_path,
                                vkg_mnist_split *out);

void vkg_mnist_free(vkg_mnist *m);
void vkg_mnist_split_free(vkg_mnist_split *s);

/* out (count * 784 floats) = images / 255, then, if normalize, (x - 0.2860) / 0.3530. */
vkg_status vkg_mnist_images_to_f32(const uint8_t *images, size_t count, float *out, bool normalize);

#ifdef __cplusplus
}
#endif
#endif
