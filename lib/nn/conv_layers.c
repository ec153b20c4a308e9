/* Conv2d, MaxPool2d, AvgPool2d and BatchNorm2d over the conv ops (vkgrad/conv_ops.h), with
 * PyTorch's initialisation, names and train/eval behaviour. */
#include <math.h>

#include "nn/nn_internal.h"

vkg_conv2d_layer *vkg_conv2d_new(vkg_module *m, const char *name, const vkg_conv2d_layer_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_conv2d_new")) return NULL;
    int groups = desc->conv.groups ? desc->conv.groups : 1;
    if (desc->in <= 0 || desc->out <= 0 || desc->kernel[0] <= 0 || desc->kernel[1] <= 0 || groups <= 0 ||
        desc->in % groups || desc->out % groups)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_conv2d_new: \"%s\" has in %lld, out %lld, kernel (%d, %d), groups %d; "
                                              "all must be > 0 and groups must divide in and out",
                             name, (long long)desc->in, (long long)desc->out, desc->kernel[0], desc->kernel[1], groups);
    vkg_conv2d_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_conv2d_layer){ .module = m, .in = desc->in, .out = desc->out, .conv = desc->conv };
    int64_t fan_in = desc->in / groups * desc->kernel[0] * desc->kernel[1];
    float bound = (float)(1.0 / sqrt((double)fan_in));
    char b[256];
    l->weight = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, "weight"),
                                     VKG_SHAPE(desc->out, desc->in / groups, desc->kernel[0], desc->kernel[1]), bound);
    if (!l->weight) return NULL;
    if (!desc->no_bias) {
        l->bias = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, "bias"), VKG_SHAPE(desc->out), bound);
        if (!l->bias) return NULL;
    }
    return l;
}

vkg_tensor *vkg_conv2d_forward(const vkg_conv2d_layer *l, vkg_tensor *x) {
    if (!x) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_conv2d_forward: the layer is NULL");
    return vkg_conv2d(x, vkg_nn_matmul_weight(l->module, l->weight), l->bias, &l->conv);
}

static vkg_pool2d_layer *pool_new(vkg_module *m, const char *name, const vkg_pool2d_desc *desc, bool max,
                                  const char *op) {
    if (!vkg_nn_check_new(m, name, desc, op)) return NULL;
    if (desc->kernel[0] <= 0 || desc->kernel[1] <= 0)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: \"%s\" has kernel (%d, %d); it must be > 0", op, name, desc->kernel[0],
                             desc->kernel[1]);
    vkg_pool2d_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (l) *l = (vkg_pool2d_layer){ .module = m, .pool = *desc, .max = max };
    return l;
}

vkg_pool2d_layer *vkg_max_pool2d_new(vkg_module *m, const char *name, const vkg_pool2d_desc *desc) {
    return pool_new(m, name, desc, true, "vkg_max_pool2d_new");
}

vkg_pool2d_layer *vkg_avg_pool2d_new(vkg_module *m, const char *name, const vkg_pool2d_desc *desc) {
    return pool_new(m, name, desc, false, "vkg_avg_pool2d_new");
}

vkg_tensor *vkg_pool2d_forward(const vkg_pool2d_layer *l, vkg_tensor *x) {
    if (!x) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_pool2d_forward: the layer is NULL");
    return l->max ? vkg_max_pool2d(x, &l->pool) : vkg_avg_pool2d(x, &l->pool);
}

vkg_batch_norm2d_layer *vkg_batch_norm2d_new(vkg_module *m, const char *name, const vkg_batch_norm2d_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_batch_norm2d_new")) return NULL;
    if (desc->channels <= 0 || !(desc->eps >= 0.0f) || !(desc->momentum >= 0.0f && desc->momentum <= 1.0f))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_batch_norm2d_new: \"%s\" has channels %lld, eps %g, momentum %g", name,
                             (long long)desc->channels, (double)desc->eps, (double)desc->momentum);
    vkg_batch_norm2d_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_batch_norm2d_layer){ .module = m, .channels = desc->channels,
                                   .eps = desc->eps > 0.0f ? desc->eps : 1e-5f,
                                   .momentum = desc->momentum > 0.0f ? desc->momentum : 0.1f };
    vkg_shape c = VKG_SHAPE(desc->channels);
    char b[256];
    if (!desc->no_affine) {
        l->weight = vkg_nn_param_const(m, vkg_nn_name(b, sizeof b, name, "weight"), c, 1.0f);
        if (!l->weight) return NULL;
        l->bias = vkg_nn_param_const(m, vkg_nn_name(b, sizeof b, name, "bias"), c, 0.0f);
        if (!l->bias) return NULL;
    }
    l->running_mean = vkg_nn_buffer_const(m, vkg_nn_name(b, sizeof b, name, "running_mean"), c, 0.0f);
    if (!l->running_mean) return NULL;
    l->running_var = vkg_nn_buffer_const(m, vkg_nn_name(b, sizeof b, name, "running_var"), c, 1.0f);
    if (!l->running_var) return NULL;
    int32_t zero = 0;
    vkg_tensor *nbt = vkg_from_data_dtype(VKG_SCALAR, VKG_I32, &zero);
    l->num_batches_tracked = vkg_module_add_buffer(m, vkg_nn_name(b, sizeof b, name, "num_batches_tracked"), nbt);
    if (!l->num_batches_tracked) {
        vkg_free(nbt);
        return NULL;
    }
    return l;
}

vkg_tensor *vkg_batch_norm2d_forward(vkg_batch_norm2d_layer *l, vkg_tensor *x) {
    if (!x) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_batch_norm2d_forward: the layer is NULL");
    bool train = vkg_module_training(l->module);
    vkg_tensor *y = vkg_batch_norm(x, l->weight, l->bias, l->running_mean, l->running_var,
                                   &(vkg_batch_norm_desc){ .train = train, .momentum = l->momentum, .eps = l->eps });
    if (y && train) {
        /* counted on the host; read once at the first training forward, so a count loaded from a
         * checkpoint before training continues (one read back, once) */
        if (!l->batches_read) {
            if (vkg_tensor_read(l->num_batches_tracked, &l->batches, sizeof l->batches) != VKG_OK) return NULL;
            l->batches_read = true;
        }
        int32_t n = ++l->batches;
        if (vkg_tensor_write(l->num_batches_tracked, &n, sizeof n) != VKG_OK) return NULL;
    }
    return y;
}
