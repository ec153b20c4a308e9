/* Helpers the op files share: argument checks with messages that name the op and the shapes. */
#ifndef VKG_OPS_INTERNAL_H
#define VKG_OPS_INTERNAL_H

#include "runtime/runtime.h"

/* "x is (2, 3) f32" style fragments for messages. */
const char *vkg_desc(const vkg_tensor *t, char *buf, size_t size);
/* Fails unless t is f32; returns false (message names op and the tensor). */
bool vkg_require_f32(const vkg_tensor *t, const char *op, const char *arg);
/* y (fresh, contiguous, f32 or f16) = x (any view, f32 or f16) converted: shaders/cast.comp. */
vkg_status vkg_cast_into(vkg_tensor *y, const vkg_tensor *x, vkg_op op, const char *name);
bool vkg_norm_axis(int *axis, int ndim, const char *op, vkg_shape s);
/* dx = g f'(x) for a unary op but pow, in one pass (lib/ops/elementwise.c); no node recorded. */
vkg_tensor *vkg_unary_grad(vkg_op op, vkg_tensor *x, vkg_tensor *g);
/* dst = a @ b (vkg_matmul's semantics, no node recorded), written through dst's strides: dst is a
 * view of the product's shape, not overlapping a or b. The kernels write any dst whose last dim
 * has stride 1 and whose batch dims fold like the operands'; any other is written by a copy
 * after the product. Returns dst, or NULL on failure (lib/ops/matmul.c). */
vkg_tensor *vkg_matmul_into(vkg_tensor *dst, vkg_tensor *a, vkg_tensor *b);

/* c = (a @ b) gelu'(z), elementwise, z (f32) of the product's shape: GELU's backward applied
 * in the matmul kernels' epilogue as the product that makes its upstream gradient is stored
 * (lib/autograd), the same bits as vkg_unary_grad(VKG_OP_GELU, z, a @ b) without writing the
 * product and reading it back. No node is recorded. */
vkg_tensor *vkg_matmul_gelu_grad(vkg_tensor *a, vkg_tensor *b, vkg_tensor *z);

/* c = a @ b + bias[m] over the product's rows (bias (M), f32, the same for every batch), the
 * bias added in the matmul kernels' epilogue as C is stored (lib/ops/matmul.c); no node is
 * recorded: for ops that record their own (conv2d's matmul path, whose y (K, OH OW) = w @ cols
 * has one bias per output channel, a row of the product). */
vkg_tensor *vkg_matmul_row_bias(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias);

/* Convolution as an implicit GEMM on the register-blocked matmul kernels (lib/ops/matmul.c,
 * shaders/matmul_reg.comp with MM_CONV): the product's B operand is the unfolding of each image
 * of x (nb, C, H, W) (its last dim stride 1), read in place, never written out. The geometry:
 * kernel kh x kw, output positions OH x OW, and for tap (c, r, s) at position (oh, ow) the
 * input pixel ih = oh sh + r dh + ph, iw = ow sw + s dw + pw (0 outside the image), each of
 * sh, sw, dh, dw in [-128, 127] and ph, pw in [-32768, 32767]. */
typedef struct vkg_conv_gemm {
    int64_t kh, kw, OH, OW;
    int sh, sw, dh, dw, ph, pw;
} vkg_conv_gemm;
/* Whether vkg_conv_gemm can run these (geometry and sizes in range, the device reads texel or
 * storage buffers as the kernels need); false without a message. */
bool vkg_conv_gemm_ok(const vkg_tensor *x, const vkg_conv_gemm *g);
/* Forward form: c (nb, M, OH OW) = a (M, C kh kw) @ unfold(x[n]) for each image, plus
 * row_bias[m] (NULL: none) as the epilogue; no node. */
vkg_tensor *vkg_conv_gemm_forward(vkg_tensor *a, vkg_tensor *x, const vkg_conv_gemm *g, vkg_tensor *row_bias);
/* Weight-gradient form: c (nb, M, C kh kw) = a[n] (M, OH OW) @ unfold(x[n])^T per image; no node. */
vkg_tensor *vkg_conv_gemm_wgrad(vkg_tensor *a, vkg_tensor *x, const vkg_conv_gemm *g);

/* Whether rows of len floats, row_stride apart with col_stride between neighbours, from offset
 * (elements, from the binding's start) can be read and written as whole vec4s: the vec4 row
 * paths of layer_norm, the softmax family, cross-entropy and the embedding. On lavapipe a
 * lane's vec4 costs about what a float does (shaders/layer_norm.comp). */
static inline bool vkg_vec4_rows(int64_t len, int64_t row_stride, int64_t col_stride, int64_t offset) {
    return len > 0 && len % 4 == 0 && col_stride == 1 && row_stride >= 0 && row_stride % 4 == 0 && offset % 4 == 0;
}

/* The ROW4 constant of the vec4 row kernels (layer norm, the softmax family, forward and
 * backward): on a CPU device, a vec4 row of up to 256 floats is read once into registers, where
 * the loops read it two or three times (and parameters shared by every row once an invocation).
 * lavapipe loads lane by lane, even a word every lane shares, so the loads were most of those
 * kernels' time: on lavapipe, bench micro nn/layer_norm 2048x128 0.59 -> 0.29 ms, the backward's
 * dx pass over the same rows 0.71 -> 0.41 ms. On a GPU such rows would be 128-256 registers an
 * invocation, spilled: GPUs keep the loops, which their caches serve. 0: no such row. */
static inline uint32_t vkg_row_regs(int64_t len, bool vec4) {
    return vec4 && len <= 256 && vkg_ctx.info.type == VKG_DEVICE_CPU ? (uint32_t)(len / 4) : 0;
}

#endif
