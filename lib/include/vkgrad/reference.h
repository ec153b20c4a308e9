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

float vkg_ref_unary1(vkg_op op, float x, float s);          /* s: pow's exponent */
void vkg_ref_unary(vkg_op op, float *y, const float *x, size_t n, float s);
float vkg_ref_binary1(vkg_op op, float a, float b);
/* y has shape ys, the broadcast of as and bs. */
void vkg_ref_binary(vkg_op op, float *y, vkg_shape ys, const float *a, vkg_shape as, const float *b, vkg_shape bs);
void vkg_ref_where(float *y, vkg_shape ys, const float *cond, vkg_shape cs, const float *a, vkg_shape as,
                   const float *b, vkg_shape bs);
/* Over axis (keepdim does not change the data), or over all elements when axis is VKG_REF_ALL.
 * argmax writes yi, the others y. Sums accumulate in double. */
#define VKG_REF_ALL (-100)
void vkg_ref_reduce(vkg_op op, float *y, int32_t *yi, const float *x, vkg_shape xs, int axis);
/* PyTorch matmul semantics (1-D promotion, broadcast batch dims); accumulates in double. */
void vkg_ref_matmul(float *c, const float *a, vkg_shape as, const float *b, vkg_shape bs);
/* Row-major element index of `index` of shape `to` in a tensor of shape `from` broadcast to it. */
int64_t vkg_ref_broadcast_index(int64_t index, vkg_shape to, vkg_shape from);

#ifdef __cplusplus
}
#endif
#endif
