/* LayerNorm and Dropout: thin layers over the nn ops (vkgrad/nn_ops.h) with PyTorch's defaults
 * (ones/zeros affine, eps 1e-5) and, for dropout, a mask stream that advances per call. */
#include "nn/nn_internal.h"

vkg_layer_norm_layer *vkg_layer_norm_new(vkg_module *m, const char *name, const vkg_layer_norm_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_layer_norm_new")) return NULL;
    if (desc->dim <= 0 || !(desc->eps >= 0.0f))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_layer_norm_new: \"%s\" has dim %lld, eps %g; dim must be > 0, eps >= 0",
                             name, (long long)desc->dim, (double)desc->eps);
    vkg_layer_norm_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_layer_norm_layer){ .module = m, .dim = desc->dim, .eps = desc->eps > 0.0f ? desc->eps : 1e-5f };
    if (!desc->no_affine) {
        char b[256];
        l->weight = vkg_nn_param_const(m, vkg_nn_name(b, sizeof b, name, "weight"), VKG_SHAPE(desc->dim), 1.0f);
        if (!l->weight) return NULL;
        l->bias = vkg_nn_param_const(m, vkg_nn_name(b, sizeof b, name, "bias"), VKG_SHAPE(desc->dim), 0.0f);
        if (!l->bias) return NULL;
    }
    return l;
}

vkg_tensor *vkg_layer_norm_forward(const vkg_layer_norm_layer *l, vkg_tensor *x) {
    if (!x) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_layer_norm_forward: the layer is NULL");
    return vkg_layer_norm(x, l->weight, l->bias, l->eps);
}

vkg_dropout_layer *vkg_dropout_new(vkg_module *m, const char *name, const vkg_dropout_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_dropout_new")) return NULL;
    if (!(desc->p >= 0.0f && desc->p < 1.0f))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_dropout_new: \"%s\" has p %g; it must be in [0, 1)", name,
                             (double)desc->p);
    vkg_dropout_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_dropout_layer){ .module = m, .p = desc->p, .seed = vkg_module_param_seed(m, name) };
    return l;
}

vkg_tensor *vkg_dropout_forward(vkg_dropout_layer *l, vkg_tensor *x) {
    if (!x) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_dropout_forward: the layer is NULL");
    bool train = vkg_module_training(l->module) && l->p > 0.0f;
    vkg_tensor *y = vkg_dropout(x, l->p, train, &(vkg_rand_desc){ .seed = l->seed, .offset = l->offset });
    if (y && train) l->offset += (uint64_t)vkg_numel(x);
    return y;
}

void vkg_dropout_layer_reset(vkg_dropout_layer *l, uint64_t offset) {
    if (l) l->offset = offset;
}
