/* Linear: y = x W^T + b, with PyTorch's default initialisation (kaiming_uniform_(a = sqrt(5))
 * for W, which is U(-1/sqrt(in), 1/sqrt(in)), and the same bound for b). The transpose is a
 * view that matmul reads in place; the bias (and, in vkg_linear_forward_relu and _gelu, the
 * activation) is the matmul kernel's epilogue (vkg_matmul_bias_act), so y is written once. */
#include <math.h>

#include "nn/nn_internal.h"

vkg_linear *vkg_linear_new(vkg_module *m, const char *name, const vkg_linear_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_linear_new")) return NULL;
    if (desc->in <= 0 || desc->out <= 0)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_linear_new: \"%s\" has in %lld, out %lld; both must be > 0", name,
                             (long long)desc->in, (long long)desc->out);
    vkg_linear *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_linear){ .module = m, .in = desc->in, .out = desc->out };
    float bound = (float)(1.0 / sqrt((double)desc->in));
    char b[256];
    l->weight = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, "weight"), VKG_SHAPE(desc->out, desc->in), bound);
    if (!l->weight) return NULL;
    if (!desc->no_bias) {
        l->bias = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, "bias"), VKG_SHAPE(desc->out), bound);
        if (!l->bias) return NULL;
    }
    return l;
}

/* act(x W^T + b), plus r where r is given (act none then) */
static vkg_tensor *linear_forward(const vkg_linear *l, vkg_tensor *x, vkg_activation act, vkg_tensor *r,
                                  const char *fn) {
    if (!x) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "%s: the layer is NULL", fn);
    char s[160];
    if (x->shape.ndim < 1 || x->shape.d[x->shape.ndim - 1] != l->in)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s but the layer takes (..., %lld)", fn,
                             vkg_shape_str(x->shape, s, sizeof s), (long long)l->in);
    vkg_tensor *wt = vkg_transpose(vkg_nn_matmul_weight(l->module, l->weight), 0, 1);
    return r ? vkg_matmul_bias_act_residual(x, wt, l->bias, r) : vkg_matmul_bias_act(x, wt, l->bias, act);
}

vkg_tensor *vkg_linear_forward(const vkg_linear *l, vkg_tensor *x) {
    return linear_forward(l, x, VKG_ACTIVATION_NONE, NULL, "vkg_linear_forward");
}

vkg_tensor *vkg_linear_forward_relu(const vkg_linear *l, vkg_tensor *x) {
    return linear_forward(l, x, VKG_ACTIVATION_RELU, NULL, "vkg_linear_forward_relu");
}

vkg_tensor *vkg_linear_forward_gelu(const vkg_linear *l, vkg_tensor *x) {
    return linear_forward(l, x, VKG_ACTIVATION_GELU, NULL, "vkg_linear_forward_gelu");
}

vkg_tensor *vkg_linear_forward_residual(const vkg_linear *l, vkg_tensor *x, vkg_tensor *r) {
    if (!r) return NULL;
    return linear_forward(l, x, VKG_ACTIVATION_NONE, r, "vkg_linear_forward_residual");
}
