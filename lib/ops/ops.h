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

#endif
