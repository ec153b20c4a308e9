/* Tutorial 02: tensors. Creation, shape and strides, views against copies, elementwise ops with
 * broadcasting, reductions, matmul, reading back — and the same computation in vkgrad's plain C
 * reference, compared. README.md walks through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"

/* Prints a 1-D or 2-D tensor with its shape and strides. */
static void show(const char *name, vkg_tensor *t) {
    char shape[64];
    float v[64];
    vkg_tensor_read(t, v, sizeof v);
    printf("%-16s %-8s strides (", name, vkg_shape_str(vkg_tensor_shape(t), shape, sizeof shape));
    for (int i = 0; i < vkg_ndim(t); i++) printf("%s%lld", i ? ", " : "", (long long)vkg_stride(t, i));
    printf(")  ");
    int rows = vkg_ndim(t) == 2 ? (int)vkg_dim(t, 0) : 1, cols = (int)vkg_dim(t, -1);
    for (int r = 0; r < rows; r++) {
        printf("[");
        for (int c = 0; c < cols; c++) printf("%s%g", c ? " " : "", v[r * cols + c]);
        printf("]");
    }
    printf("\n");
}

int main(int argc, char **argv) {
    int n = (argc > 1 && strcmp(argv[1], "--test") == 0) ? 64 : 512; /* size of the last comparison */
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_scope_begin(); /* every tensor made from here on is freed by vkg_scope_end */

    /* 1. A tensor from host data: 6 floats seen as 2 rows of 3. */
    float data[6] = { 1, 2, 3, 4, 5, 6 };
    vkg_tensor *a = vkg_from_data(VKG_SHAPE(2, 3), data);
    show("a", a);

    /* 2. A view: the transpose shares a's memory; only shape and strides change. */
    vkg_tensor *at = vkg_transpose(a, 0, 1);
    show("a transposed", at);
    printf("shares memory with a: %s\n", vkg_shares_storage(at, a) ? "yes" : "no");
    vkg_tensor *copy = vkg_contiguous(at);
    show("contiguous", copy);
    printf("shares memory with a: %s\n", vkg_shares_storage(copy, a) ? "yes" : "no");

    /* 3. Elementwise ops broadcast: a (2, 3) plus b (3,) adds b to every row. */
    vkg_tensor *b = vkg_from_data(VKG_SHAPE(3), (float[]){ 10, 20, 30 });
    show("a + b", vkg_add(a, b));
    show("relu(a - 3)", vkg_relu(vkg_sub_scalar(a, 3.0f)));

    /* 4. Reductions over one axis, or over everything. */
    show("sum over rows", vkg_sum(a, 0, false));
    show("max of each row", vkg_max(a, 1, false));
    printf("mean of all: %g\n", vkg_item(vkg_mean_all(a)));

    /* 5. Matrix multiply: (2, 3) @ (3, 2) -> (2, 2); the transposed view is read in place. */
    show("a @ a^T", vkg_matmul(a, at));

    /* 6. The same on larger random data, on the device and in the C reference. */
    float *x = malloc(sizeof(float) * n * n), *w = malloc(sizeof(float) * n * n);
    float *gpu = malloc(sizeof(float) * n * n), *ref = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) {
        x[i] = sinf((float)i);
        w[i] = cosf((float)i * 0.5f);
    }
    vkg_tensor *y = vkg_tanh(vkg_matmul(vkg_from_data(VKG_SHAPE(n, n), x), vkg_from_data(VKG_SHAPE(n, n), w)));
    vkg_tensor_read(y, gpu, sizeof(float) * n * n);
    vkg_ref_matmul(ref, x, VKG_SHAPE(n, n), w, VKG_SHAPE(n, n));
    vkg_ref_unary(VKG_OP_TANH, ref, ref, (size_t)n * n, 0.0f);
    float worst = 0.0f;
    for (int i = 0; i < n * n; i++) worst = fmaxf(worst, fabsf(gpu[i] - ref[i]));
    printf("tanh(x @ w), %dx%d: device and C reference agree to 1e-4: %s\n", n, n, worst < 1e-4f ? "yes" : "no");

    free(x);
    free(w);
    free(gpu);
    free(ref);
    vkg_scope_end();
    vkg_shutdown();
    return 0;
}
