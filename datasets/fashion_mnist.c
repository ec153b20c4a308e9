/* Fashion-MNIST loader: four IDX files read through idx.c, then the checks that make them one
 * dataset (shapes, matching counts, label range). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fashion_mnist.h"
#include "idx.h"
#include "runtime/error.h"

const char *vkg_mnist_default_dir(void) {
    const char *env = getenv("VKG_DATA");
    return env && env[0] ? env : VKG_MNIST_DEFAULT_DIR;
}

void vkg_mnist_split_free(vkg_mnist_split *s) {
    if (!s) return;
    free(s->images);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

void vkg_mnist_free(vkg_mnist *m) {
    if (!m) return;
    vkg_mnist_split_free(&m->train);
    vkg_mnist_split_free(&m->test);
}

vkg_status vkg_mnist_load_split(const char *images_path, const char *labels_path,
                                vkg_mnist_split *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_mnist_load_split: out is NULL");
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path)
        return vkg_fail(VKG_ERR_INVALID, "vkg_mnist_load_split: a path is NULL");
    vkg_idx im = { 0 }, lb = { 0 };
    vkg_status st = vkg_idx_read(images_path, &im);
    if (st != VKG_OK) goto done;
    if ((st = vkg_idx_read(labels_path, &lb)) != VKG_OK) goto done;
    if (im.dtype_code != VKG_IDX_U8 || im.ndim != 3 || im.dims[1] != VKG_MNIST_ROWS ||
        im.dims[2] != VKG_MNIST_COLS) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: expected u8 images of shape (N, 28, 28) but found %s "
                      "with %d dimensions (%u, %u, %u)", images_path,
                      vkg_idx_dtype_name(im.dtype_code), im.ndim, im.dims[0], im.dims[1], im.dims[2]);
        goto done;
    }
    if (lb.dtype_code != VKG_IDX_U8 || lb.ndim != 1) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: expected u8 labels of shape (N,) but found %s with %d "
                      "dimensions", labels_path, vkg_idx_dtype_name(lb.dtype_code), lb.ndim);
        goto done;
    }
    if (im.dims[0] != lb.dims[0]) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s holds %u images but %s holds %u labels", images_path,
                      im.dims[0], labels_path, lb.dims[0]);
        goto done;
    }
    const uint8_t *labels = lb.data;
    for (size_t i = 0; i < lb.count; i++)
        if (labels[i] >= VKG_MNIST_CLASSES) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: label %zu is %u (classes are 0 to 9)", labels_path, i,
                          labels[i]);
            goto done;
        }
    out->count = lb.count;
    out->images = im.data;
    out->labels = lb.data;
    im.data = lb.data = NULL;
done:
    vkg_idx_free(&im);
    vkg_idx_free(&lb);
    return st;
}

/* dir/name if it exists, else dir/name.gz (whose absence the IDX reader then reports). */
static vkg_status pick_path(const char *dir, const char *name, char *buf, size_t size) {
    int n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n + 4 > size)
        return vkg_fail(VKG_ERR_INVALID, "%s: directory path too long", dir);
    struct stat sb;
    if (stat(buf, &sb) != 0) strcat(buf, ".gz");
    return VKG_OK;
}

vkg_status vkg_mnist_load(const char *dir, vkg_mnist *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_mnist_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dir) dir = vkg_mnist_default_dir();
    static const char *const names[4] = { "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" };
    char paths[4][4096];
    vkg_status st = VKG_OK;
    for (int i = 0; i < 4; i++)
        if ((st = pick_path(dir, names[i], paths[i], sizeof paths[i])) != VKG_OK) return st;
    if ((st = vkg_mnist_load_split(paths[0], paths[1], &out->train)) != VKG_OK) goto done;
    st = vkg_mnist_load_split(paths[2], paths[3], &out->test);
done:
    if (st != VKG_OK) vkg_mnist_free(out);
    return st;
}

vkg_status vkg_mnist_images_to_f32(const uint8_t *images, size_t count, float *out, bool normalize) {
    if ((!images || !out) && count)
        return vkg_fail(VKG_ERR_INVALID, "vkg_mnist_images_to_f32: NULL images or out");
    if (count > SIZE_MAX / sizeof(float) / VKG_MNIST_PIXELS)
        return vkg_fail(VKG_ERR_INVALID, "vkg_mnist_images_to_f32: %zu images overflow", count);
    size_t n = count * VKG_MNIST_PIXELS;
    float scale = 1.0f / 255.0f, mean = 0.0f, inv_std = 1.0f;
    if (normalize) {
        mean = VKG_FASHION_MNIST_MEAN;
        inv_std = 1.0f / VKG_FASHION_MNIST_STD;
    }
    for (size_t i = 0; i < n; i++) out[i] = ((float)images[i] * scale - mean) * inv_std;
    return VKG_OK;
}
