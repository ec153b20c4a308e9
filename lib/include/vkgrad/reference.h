/* vkgrad's C reference: every op of the table as plain C on host arrays, for tests, tutorials
 * and benchmark checks. Arrays are contiguous, row-major; shapes broadcast like the device ops.
 *
 *   float y[6];
 *   vkg_ref_binary(VKG_OP_ADD, y, VKG_SHAPE(2, 3), a, VKG_SHAPE(2, 3), b, VKG_SHAPE(3));
 */
#ifndef VKGRAD_REFERENCE_H
#define VKGRAD_REFERENCE_H

#include "../vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each function exists in float (vkg_ref_x) and in double (vkg_ref_x_f64). */
#define VKG_REF_ALL (-100) /* the axis that means "over all elements" */
#define VKG_REF_DECLARE_(REAL, NAME)                                                                   \
    REAL NAME(unary1)(vkg_op op, REAL x, REAL s); /* s: pow's exponent */                             \
    void NAME(unary)(vkg_op op, REAL * y, const REAL *x, size_t n, REAL s);                            \
    REAL NAME(binary1)(vkg_op op, REAL a, REAL b);                                                     \
    /* y has shape ys, the broadcast of as and bs */                                                   \
    void NAME(binary)(vkg_op op, REAL * y, vkg_shape ys, const REAL *a, vkg_shape as, const REAL *b,   \
                      vkg_shape bs);                                                                    \
    void NAME(where)(REAL * y, vkg_shape ys, const REAL *cond, vkg_shape cs, const REAL *a,            \
                     vkg_shape as, const REAL *b, vkg_shape bs);                                       \
    /* over axis (keepdim does not change the data) or VKG_REF_ALL; argmax writes yi; sums in double */ \
    void NAME(reduce)(vkg_op op, REAL * y, int32_t * yi, const REAL *x, vkg_shape xs, int axis);        \
    /* PyTorch matmul semantics (1-D promotion, broadcast batch dims); accumulates in double */        \
    void NAME(matmul)(REAL * c, const REAL *a, vkg_shape as, const REAL *b, vkg_shape bs);             \
    /* backward: each adds dL/dinput into its outputs (NULL: not wanted), undoing broadcasting */      \
    REAL NAME(unary_grad1)(vkg_op op, REAL x, REAL s);                                                 \
    void NAME(unary_backward)(vkg_op op, REAL * dx, const REAL *x, const REAL *dy, size_t n, REAL s);   \
    void NAME(binary_backward)(vkg_op op, REAL * da, vkg_shape as, REAL * db, vkg_shape bs,            \
                               const REAL *a, const REAL *b, const REAL *dy, vkg_shape ys);            \
    void NAME(where_backward)(REAL * da, vkg_shape as, REAL * db, vkg_shape bs, const REAL *cond,      \
                              vkg_shape cs, const REAL *dy, vkg_shape ys);                             \
    /* max/min share the gradient evenly among ties, like torch.amax */                               \
    void NAME(reduce_backward)(vkg_op op, REAL * dx, const REAL *x, vkg_shape xs, int axis,            \
                               const REAL *dy);                                                        \
    void NAME(matmul_backward)(REAL * da, REAL * db, const REAL *a, vkg_shape as, const REAL *b,       \
                               vkg_shape bs, const REAL *dc);                                          \
    /* c = act(a @ b + bias), bias (N) over c's last dim or NULL; backward from the output c, whose \
     * sign is relu's mask (gelu's from a @ b + bias, made again); dbias (N) may be NULL */          \
    void NAME(matmul_bias_act)(REAL * c, const REAL *a, vkg_shape as, const REAL *b, vkg_shape bs,    \
                               const REAL *bias, vkg_activation act);                                  \
    void NAME(matmul_bias_act_backward)(REAL * da, REAL * db, REAL * dbias, const REAL *a,            \
                                        vkg_shape as, const REAL *b, vkg_shape bs, const REAL *bias,   \
                                        vkg_activation act, const REAL *c, const REAL *dc);
#define VKG_REF_F32_(x) vkg_ref_##x
#define VKG_REF_F64_(x) vkg_ref_##x##_f64
VKG_REF_DECLARE_(float, VKG_REF_F32_)
VKG_REF_DECLARE_(double, VKG_REF_F64_)

/* IEEE binary16 <-> binary32, bit for bit what IEEE 754 conversion gives (and x86 F16C):
 * round to nearest, ties to even; magnitudes from 65520 up become inf; results below 2^-14 are
 * subnormal halves, below or at 2^-25 zero (signed); f32 subnormals become (signed) zero; a NaN
 * stays a NaN, quieted (quiet bit set), with the payload's high bits kept. The shaders
 * (shaders/cast.comp) run the same integer code. */
uint16_t vkg_ref_f32_to_f16(float x);
float vkg_ref_f16_to_f32(uint16_t h);
/* y[i] = x[i] converted, n contiguous elements; dtypes VKG_F32 or VKG_F16 (uint16_t bits). */
void vkg_ref_to_dtype(void *y, vkg_dtype yt, const void *x, vkg_dtype xt, size_t n);

/* Row-major element index of `index` of shape `to` in a tensor of shape `from` broadcast to it. */
int64_t vkg_ref_broadcast_index(int64_t index, vkg_shape to, vkg_shape from);

#ifdef __cplusplus
}
#endif
#endif
