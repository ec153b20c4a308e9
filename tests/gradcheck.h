/* The gradient check every differentiable op goes through (ggml's test-backend-ops idea):
 * on the same inputs, (1) the C reference backward in double against central finite
 * differences of the C reference forward in double, and (2) the device backward against the
 * C reference backward, for L = sum(y * w) with fixed random weights w. Inputs may be seen by
 * the op as transposed views of their leaves, and may be i32 (class indices: never
 * differentiated). */
#ifndef VKG_TEST_GRADCHECK_H
#define VKG_TEST_GRADCHECK_H

#include "support.h"

#define VKGT_GC_MAXIN 6

typedef struct vkgt_gc {
    const char *name;
    int nin;
    vkg_shape shape[VKGT_GC_MAXIN];
    vkg_dtype dtype[VKGT_GC_MAXIN];       /* f32 (default) or i32                            */
    bool constant[VKGT_GC_MAXIN];         /* not differentiated (i32 inputs never are)       */
    bool transposed[VKGT_GC_MAXIN];       /* the op sees a transposed view of the leaf       */
    /* Values of input i (n of them): default uniform in +-[0.2, 2] (away from 0 and kinks). */
    void (*init)(int i, double *x, size_t n, void *ctx);
    /* The op on the device; in[i] has shape[i]. */
    vkg_tensor *(*device)(vkg_tensor **in, void *ctx);
    /* The C reference in double: y of shape ys from x; dx[i] += dL/dx_i given dy (dx[i] is
     * NULL for constant inputs). */
    void (*forward)(double *y, vkg_shape ys, double *const *x, void *ctx);
    void (*backward)(double *const *dx, vkg_shape ys, double *const *x, const double *dy, void *ctx);
    void *ctx;
    uint64_t seed;
    double fd_rtol, fd_atol;              /* reference vs finite differences (1e-5, 1e-6)    */
    double dev_rtol, dev_atol;            /* device vs reference (1e-4, 1e-5 x max |grad|)   */
} vkgt_gc;

/* Runs the check inside its own scope; asserts (with the name, input and element) on failure. */
void vkgt_gradcheck(const vkgt_gc *c);

#endif
