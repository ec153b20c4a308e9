/* Inside the layers: module bookkeeping and the initialisers every layer shares. */
#ifndef VKG_NN_INTERNAL_H
#define VKG_NN_INTERNAL_H

#include "ops/ops.h"
#include "vkgrad/nn.h"

/* Allocates a layer struct of `size` bytes owned by m (zeroed; freed by vkg_module_free). */
void *vkg_module_alloc_layer(vkg_module *m, size_t size);
/* "<prefix>.<leaf>" into buf (just leaf when prefix is empty or NULL). */
const char *vkg_nn_name(char *buf, size_t size, const char *prefix, const char *leaf);
/* Makes a parameter of m: U(-bound, bound) from its seed, or a constant (uniform false). */
vkg_tensor *vkg_nn_param_uniform(vkg_module *m, const char *name, vkg_shape shape, float bound);
vkg_tensor *vkg_nn_param_normal(vkg_module *m, const char *name, vkg_shape shape, float mean, float std);
vkg_tensor *vkg_nn_param_const(vkg_module *m, const char *name, vkg_shape shape, float value);
vkg_tensor *vkg_nn_buffer_const(vkg_module *m, const char *name, vkg_shape shape, float value);
/* The weight a layer multiplies by: w itself, or under vkg_module_amp its f16 rounding (an f16
 * copy widened back, recorded with its gradient: the f32 master copy gets the gradient of the
 * rounded weight, cast back, vkg_to_dtype's rule). */
vkg_tensor *vkg_nn_matmul_weight(const vkg_module *m, vkg_tensor *w);
/* Fails with "<op>: <what> is NULL" style messages for layer constructors. */
bool vkg_nn_check_new(vkg_module *m, const char *name, const void *desc, const char *op);

#endif
