/* vkgrad nn group: clamp, masked_fill, dropout, softmax / log_softmax / logsumexp, var / std,
 * the losses (cross_entropy, nll_loss, mse_loss, binary_cross_entropy_with_logits) and
 * layer_norm, with PyTorch's semantics and defaults, each with its backward and C reference.
 *
 *   vkg_tensor *h = vkg_layer_norm(x, gamma, beta, VKG_LAYER_NORM_EPS);        // over the last dim
 *   h = vkg_dropout(vkg_gelu(h), 0.1f, true, &(vkg_rand_desc){ .seed = 7, .offset = step * n });
 *   vkg_tensor *loss = vkg_cross_entropy(vkg_matmul(h, w), labels, NULL);     // mean, ignore -100
 *
 * Softmax-like ops and var/std work over one axis (negative counts from the end) and read
 * strided views in place where the dims around the axis merge; every reduction has a fixed
 * order, so results are bitwise reproducible on a device. */
#ifndef VKGRAD_NN_OPS_H
#define VKGRAD_NN_OPS_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

/* ---- elementwise ------------------------------------------------------------------------- */
/* min(max(x, lo), hi); pass -INFINITY / INFINITY for a missing bound. lo > hi gives hi
 * everywhere (PyTorch); NaN stays NaN. The gradient passes where lo <= x <= hi. NaN bounds fail. */
vkg_tensor *vkg_clamp(vkg_tensor *x, float lo, float hi);
/* x with value where mask != 0. mask: f32 0/1, broadcastable to x (the output has x's shape).
 * The filled places get no gradient; the mask gets none. */
vkg_tensor *vkg_masked_fill(vkg_tensor *x, vkg_tensor *mask, float value);
/* train: x * keep / (1 - p), keep = vkg_bernoulli(x's shape, 1 - p, rng) (vkgrad/random.h: the
 * same (seed, offset) gives the same mask everywhere; advance offset by numel(x) per call);
 * !train: x itself. p must be in [0, 1). The backward multiplies by the same mask. */
vkg_tensor *vkg_dropout(vkg_tensor *x, float p, bool train, const vkg_rand_desc *rng);

/* ---- over one axis ------------------------------------------------------------------------ */
vkg_tensor *vkg_softmax(vkg_tensor *x, int axis);          /* exp(x - max) / sum, x's shape  */
vkg_tensor *vkg_log_softmax(vkg_tensor *x, int axis);      /* x - logsumexp, x's shape       */
vkg_tensor *vkg_logsumexp(vkg_tensor *x, int axis, bool keepdim);  /* max + log sum exp(x - max) */
/* sum((x - mean)^2) / (R - correction), R the axis' size: correction 1 is the unbiased
 * estimate (PyTorch's default), 0 the population variance. R <= correction gives inf or NaN,
 * like PyTorch. std = sqrt(var); its gradient is 0 where std is 0 (PyTorch's rule). */
vkg_tensor *vkg_var(vkg_tensor *x, int axis, bool keepdim, int correction);
vkg_tensor *vkg_std(vkg_tensor *x, int axis, bool keepdim, int correction);

/* ---- losses ------------------------------------------------------------------------------- */
typedef enum vkg_reduction {
    VKG_REDUCTION_MEAN = 0,  /* the default */
    VKG_REDUCTION_SUM,
    VKG_REDUCTION_NONE,      /* one loss per sample (or element) */
} vkg_reduction;

typedef struct vkg_loss_desc {
    vkg_reduction reduction;
    bool has_ignore_index;   /* false: ignore_index is -100, PyTorch's default              */
    int32_t ignore_index;    /* samples with this target add no loss and get no gradient    */
} vkg_loss_desc;             /* NULL: all defaults */

/* logits (N, C) f32, target (N,) i32 class indices in [0, C) -> a 0-d loss (mean over the
 * samples not ignored; NaN if all are ignored, like PyTorch), 0-d (sum) or (N,) (none).
 * Fused log-softmax + NLL forward and backward. A target outside [0, C) that is not
 * ignore_index is not checked on the host (that would wait for the device): its sample's loss
 * and its row of the gradient are NaN, so the mean and sum are NaN too. */
vkg_tensor *vkg_cross_entropy(vkg_tensor *logits, vkg_tensor *target, const vkg_loss_desc *desc);
/* log_probs (N, C), target as cross_entropy: -log_probs[n, target[n]], reduced the same way;
 * an out-of-range target gives NaN the same way. */
vkg_tensor *vkg_nll_loss(vkg_tensor *log_probs, vkg_tensor *target, const vkg_loss_desc *desc);
/* (input - target)^2, same shapes, reduced over every element (mean, sum) or none. Both get
 * gradients where they require them. */
vkg_tensor *vkg_mse_loss(vkg_tensor *input, vkg_tensor *target, vkg_reduction reduction);
/* max(x, 0) - x t + log(1 + exp(-|x|)) (stable for any x), same shapes, reduced like mse_loss. */
vkg_tensor *vkg_binary_cross_entropy_with_logits(vkg_tensor *logits, vkg_tensor *target, vkg_reduction reduction);

/* ---- normalization ------------------------------------------------------------------------ */
#define VKG_LAYER_NORM_EPS 1e-5f   /* PyTorch's default */
/* Over the last dim (size D): (x - mean) / sqrt(var + eps) * weight + bias, var the biased
 * one; weight (D) and bias (D) each optional (NULL). eps >= 0. Gradients for x, weight, bias. */
vkg_tensor *vkg_layer_norm(vkg_tensor *x, vkg_tensor *weight, vkg_tensor *bias, float eps);

/* ---- C reference (float vkg_ref_x and double vkg_ref_x_f64), contiguous row-major arrays;
 * backward functions add into their outputs (NULL: not wanted). Over-axis ops see x of shape
 * xs and reduce its axis (negative counts from the end); losses take reduction and write one
 * value (mean, sum) or one per sample/element (none). ----------------------------------------- */
#define VKG_REF_NN_DECLARE_(REAL, NAME)                                                                      \
    void NAME(clamp)(REAL * y, const REAL *x, size_t n, REAL lo, REAL hi);                                   \
    void NAME(clamp_backward)(REAL * dx, const REAL *x, const REAL *dy, size_t n, REAL lo, REAL hi);         \
    /* x of shape xs, mask of shape ms broadcast to it */                                                    \
    void NAME(masked_fill)(REAL * y, const REAL *x, vkg_shape xs, const REAL *mask, vkg_shape ms, REAL value); \
    void NAME(masked_fill_backward)(REAL * dx, vkg_shape xs, const REAL *mask, vkg_shape ms, const REAL *dy); \
    /* the mask is vkg_ref_bernoulli(n, 1 - p, rng) in f32, the scale 1 / (1 - p) in f32 */                 \
    void NAME(dropout)(REAL * y, const REAL *x, size_t n, float p, bool train, const vkg_rand_desc *rng);    \
    void NAME(dropout_backward)(REAL * dx, const REAL *dy, size_t n, float p, bool train,                    \
                                const vkg_rand_desc *rng);                                                    \
    void NAME(softmax)(REAL * y, const REAL *x, vkg_shape xs, int axis);                                     \
    void NAME(log_softmax)(REAL * y, const REAL *x, vkg_shape xs, int axis);                                 \
    void NAME(logsumexp)(REAL * y, const REAL *x, vkg_shape xs, int axis);                                   \
    void NAME(softmax_backward)(REAL * dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy);           \
    void NAME(log_softmax_backward)(REAL * dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy);       \
    void NAME(logsumexp_backward)(REAL * dx, const REAL *x, vkg_shape xs, int axis, const REAL *dy);         \
    void NAME(var)(REAL * y, const REAL *x, vkg_shape xs, int axis, int correction);                         \
    void NAME(std)(REAL * y, const REAL *x, vkg_shape xs, int axis, int correction);                         \
    void NAME(var_backward)(REAL * dx, const REAL *x, vkg_shape xs, int axis, int correction, const REAL *dy); \
    void NAME(std_backward)(REAL * dx, const REAL *x, vkg_shape xs, int axis, int correction, const REAL *dy); \
    void NAME(cross_entropy)(REAL * y, const REAL *logits, int64_t N, int64_t C, const int32_t *target,      \
                             vkg_reduction reduction, int32_t ignore_index);                                  \
    void NAME(cross_entropy_backward)(REAL * dlogits, const REAL *logits, int64_t N, int64_t C,              \
                                      const int32_t *target, vkg_reduction reduction, int32_t ignore_index,   \
                                      const REAL *dy);                                                        \
    void NAME(nll_loss)(REAL * y, const REAL *log_probs, int64_t N, int64_t C, const int32_t *target,        \
                        vkg_reduction reduction, int32_t ignore_index);                                       \
    void NAME(nll_loss_backward)(REAL * dlog_probs, int64_t N, int64_t C, const int32_t *target,             \
                                 vkg_reduction reduction, int32_t ignore_index, const REAL *dy);              \
    void NAME(mse_loss)(REAL * y, const REAL *x, const REAL *t, size_t n, vkg_reduction reduction);          \
    void NAME(mse_loss_backward)(REAL * dx, REAL * dt, const REAL *x, const REAL *t, size_t n,               \
                                 vkg_reduction reduction, const REAL *dy);                                    \
    void NAME(bce_with_logits)(REAL * y, const REAL *x, const REAL *t, size_t n, vkg_reduction reduction);   \
    void NAME(bce_with_logits_backward)(REAL * dx, REAL * dt, const REAL *x, const REAL *t, size_t n,        \
                                        vkg_reduction reduction, const REAL *dy);                             \
    /* x (rows, D); w, b (D) or NULL; mean and rstd (rows) written when not NULL */                          \
    void NAME(layer_norm)(REAL * y, REAL * mean, REAL * rstd, const REAL *x, const REAL *w, const REAL *b,   \
                          int64_t rows, int64_t D, REAL eps);                                                 \
    void NAME(layer_norm_backward)(REAL * dx, REAL * dw, REAL * db, const REAL *x, const REAL *w,            \
                                   int64_t rows, int64_t D, REAL eps, const REAL *dy);
#define VKG_REF_NN_F32_(x) vkg_ref_##x
#define VKG_REF_NN_F64_(x) vkg_ref_##x##_f64
VKG_REF_NN_DECLARE_(float, VKG_REF_NN_F32_)
VKG_REF_NN_DECLARE_(double, VKG_REF_NN_F64_)

#endif
