/* vkgrad conv group: 2-D convolution, max and average pooling, batch norm (NCHW, PyTorch's
 * semantics), each with its backward and its C reference.
 *
 *   vkg_tensor *h = vkg_conv2d(x, w, b, &(vkg_conv2d_desc){ .padding = { 1, 1 } });  // 3x3 "same"
 *   h = vkg_relu(vkg_batch_norm(h, gamma, beta, rmean, rvar, &(vkg_batch_norm_desc){ .train = true }));
 *   h = vkg_max_pool2d(h, &(vkg_pool2d_desc){ .kernel = { 2, 2 } });                   // stride = kernel
 *
 * Description structs: zero means the default (stride 1, padding 0, dilation 1, groups 1;
 * pooling stride = kernel; momentum 0.1, eps 1e-5). A NULL desc is all defaults where that
 * makes sense (conv2d, batch_norm). */
#ifndef VKGRAD_CONV_OPS_H
#define VKGRAD_CONV_OPS_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

typedef struct vkg_conv2d_desc {
    int stride[2];     /* (h, w); 0: 1 */
    int padding[2];    /* zeros on each side; 0: none */
    int dilation[2];   /* 0: 1 */
    int groups;        /* 0: 1; C_in and C_out must divide by it */
} vkg_conv2d_desc;

typedef struct vkg_pool2d_desc {
    int kernel[2];     /* (h, w), required */
    int stride[2];     /* 0: the kernel size */
    int padding[2];    /* at most half the kernel, like PyTorch */
    bool relu;         /* max only: y = max(0, window max), relu(max_pool2d(x)) in one pass */
} vkg_pool2d_desc;

typedef struct vkg_batch_norm_desc {
    bool train;        /* batch statistics (and running stats updated) or the running stats */
    float momentum;    /* 0: 0.1; running = (1 - momentum) running + momentum batch */
    float eps;         /* 0: 1e-5 */
} vkg_batch_norm_desc;

/* x (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW), bias (C_out) or NULL
 * -> (N, C_out, OH, OW), OH = (H + 2 pad - dil (kH - 1) - 1) / stride + 1. */
vkg_tensor *vkg_conv2d(vkg_tensor *x, vkg_tensor *weight, vkg_tensor *bias, const vkg_conv2d_desc *desc);
/* The kernel the last vkg_conv2d recorded ("direct4x4": 4 output channels x 4 pixels per
 * invocation); for bench reports and the profiler. */
const char *vkg_conv2d_variant_last(void);

/* x (N, C, H, W) -> (N, C, OH, OW). Max ignores padding (it is -inf); ties go to the first
 * index in the window, like PyTorch. indices (optional): an i32 tensor of the output's shape
 * holding the argmax as h * W + w within its plane (PyTorch's return_indices). With .relu the
 * output is relu of that (max_pool2d(relu(x)) too: ReLU is monotone), values and gradients:
 * where the window's max is not above 0 the output is 0, its index -1, and no gradient flows;
 * a CNN's ReLU-then-pool at a quarter of the elements and no pass of its own. */
vkg_tensor *vkg_max_pool2d(vkg_tensor *x, const vkg_pool2d_desc *desc);
vkg_tensor *vkg_max_pool2d_with_indices(vkg_tensor *x, const vkg_pool2d_desc *desc, vkg_tensor **indices);
/* Average over the window, padding counted (count_include_pad = true, PyTorch's default). */
vkg_tensor *vkg_avg_pool2d(vkg_tensor *x, const vkg_pool2d_desc *desc);

/* x (N, C, H, W) or (N, C); weight, bias (C) or NULL (1 and 0); running_mean, running_var (C),
 * contiguous, updated in place in train mode (no gradient flows into them: they are buffers),
 * with the unbiased batch variance; they may be NULL in train mode (not tracked). Train mode
 * normalises with the batch mean and biased variance, eval mode with the running stats. */
vkg_tensor *vkg_batch_norm(vkg_tensor *x, vkg_tensor *weight, vkg_tensor *bias, vkg_tensor *running_mean,
                           vkg_tensor *running_var, const vkg_batch_norm_desc *desc);

/* ---- C reference (contiguous host arrays; shapes as above) ---------------------------------- *
 * Each exists in float (vkg_ref_x) and double (vkg_ref_x_f64); sums are accumulated in double.
 * Backward references add into their outputs (NULL: not wanted). batch_norm in train mode
 * updates running_mean/running_var (NULL: not tracked); its backward recomputes the batch
 * statistics from x (train) or uses the running stats (eval). */
#define VKG_REF_CONV_DECLARE_(REAL, NAME)                                                                   \
    void NAME(conv2d)(REAL * y, const REAL *x, vkg_shape xs, const REAL *w, vkg_shape ws, const REAL *b,    \
                      const vkg_conv2d_desc *d);                                                            \
    void NAME(conv2d_backward)(REAL * dx, REAL * dw, REAL * db, const REAL *x, vkg_shape xs, const REAL *w,  \
                               vkg_shape ws, const REAL *dy, const vkg_conv2d_desc *d);                     \
    void NAME(max_pool2d)(REAL * y, int32_t * idx, const REAL *x, vkg_shape xs, const vkg_pool2d_desc *d);   \
    void NAME(max_pool2d_backward)(REAL * dx, const REAL *x, vkg_shape xs, const REAL *dy,                  \
                                   const vkg_pool2d_desc *d);                                               \
    void NAME(avg_pool2d)(REAL * y, const REAL *x, vkg_shape xs, const vkg_pool2d_desc *d);                  \
    void NAME(avg_pool2d_backward)(REAL * dx, vkg_shape xs, const REAL *dy, const vkg_pool2d_desc *d);      \
    void NAME(batch_norm)(REAL * y, const REAL *x, vkg_shape xs, const REAL *w, const REAL *b,              \
                          REAL *running_mean, REAL *running_var, const vkg_batch_norm_desc *d);             \
    void NAME(batch_norm_backward)(REAL * dx, REAL * dw, REAL * db, const REAL *x, vkg_shape xs,            \
                                   const REAL *w, const REAL *running_mean, const REAL *running_var,        \
                                   const REAL *dy, const vkg_batch_norm_desc *d);
#define VKG_REF_CONV_F32_(x) vkg_ref_##x
#define VKG_REF_CONV_F64_(x) vkg_ref_##x##_f64
VKG_REF_CONV_DECLARE_(float, VKG_REF_CONV_F32_)
VKG_REF_CONV_DECLARE_(double, VKG_REF_CONV_F64_)

/* Output size of one spatial dim (PyTorch's formula), or -1 when the kernel extent is larger
 * than the padded input. */
int64_t vkg_conv_out_size(int64_t in, int kernel, int stride, int padding, int dilation);

#endif
