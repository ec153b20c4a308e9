/* CNN on Fashion-MNIST: conv 1->32 3x3 pad 1, ReLU, max-pool 2; conv 32->64 3x3 pad 1, ReLU,
 * max-pool 2; flatten; Linear(3136, 128), ReLU; Linear(128, 10). Layer for layer the PyTorch
 * model with conv1, conv2, fc1, fc2 (Conv2d and Linear default initialisation). */
#include <stdlib.h>

#include "models.h"

struct vkg_cnn_model {
    vkg_cnn_config cfg;
    vkg_conv2d_layer *conv1, *conv2;
    vkg_pool2d_layer *pool;
    vkg_linear *fc1, *fc2;
};

vkg_cnn_config vkg_cnn_config_default(bool test) {
    if (test) return (vkg_cnn_config){ .c1 = 3, .c2 = 4, .hidden = 16, .classes = 10 };
    return (vkg_cnn_config){ .c1 = 32, .c2 = 64, .hidden = 128, .classes = 10 };
}

vkg_cnn_model *vkg_cnn_model_new(vkg_module *module, const vkg_cnn_config *cfg) {
    vkg_cnn_config d = vkg_cnn_config_default(false), c = cfg ? *cfg : d;
    if (!c.c1) c.c1 = d.c1;
    if (!c.c2) c.c2 = d.c2;
    if (!c.hidden) c.hidden = d.hidden;
    if (!c.classes) c.classes = d.classes;
    vkg_cnn_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = c;
    vkg_conv2d_desc same = { .padding = { 1, 1 } };
    m->conv1 = vkg_conv2d_new(module, "conv1", &(vkg_conv2d_layer_desc){ .in = 1, .out = c.c1, .kernel = { 3, 3 }, .conv = same });
    m->conv2 = vkg_conv2d_new(module, "conv2", &(vkg_conv2d_layer_desc){ .in = c.c1, .out = c.c2, .kernel = { 3, 3 }, .conv = same });
    /* relu(max_pool(.)) is max_pool(relu(.)), values and gradients (ReLU is monotone: a window's
     * maximum and its argmax are kept, and a non-positive one has no gradient either way), on
     * a quarter of the elements: the PyTorch model's ReLU-then-pool, in the pooling pass itself
     * (.relu), with no ReLU pass forward or backward (8 ms of the step on lavapipe) */
    m->pool = vkg_max_pool2d_new(module, "pool", &(vkg_pool2d_desc){ .kernel = { 2, 2 }, .relu = true });
    m->fc1 = vkg_linear_new(module, "fc1", &(vkg_linear_desc){ .in = c.c2 * 7 * 7, .out = c.hidden });
    m->fc2 = vkg_linear_new(module, "fc2", &(vkg_linear_desc){ .in = c.hidden, .out = c.classes });
    if (!m->conv1 || !m->conv2 || !m->pool || !m->fc1 || !m->fc2) {
        free(m);
        return NULL;
    }
    return m;
}

/* x (B, 28, 28) or (B, 1, 28, 28) -> logits (B, classes) */
vkg_tensor *vkg_cnn_model_forward(const vkg_cnn_model *m, vkg_tensor *x) {
    if (!x) return NULL;
    int64_t B = vkg_dim(x, 0);
    vkg_tensor *h = vkg_reshape(x, VKG_SHAPE(B, 1, 28, 28));
    h = vkg_pool2d_forward(m->pool, vkg_conv2d_forward(m->conv1, h));   // (B, c1, 14, 14), relu'd
    h = vkg_pool2d_forward(m->pool, vkg_conv2d_forward(m->conv2, h));   // (B, c2, 7, 7), relu'd
    h = vkg_reshape(h, VKG_SHAPE(B, m->cfg.c2 * 7 * 7));                // (B, c2 * 49)
    h = vkg_linear_forward_relu(m->fc1, h);                             // (B, hidden)
    return vkg_linear_forward(m->fc2, h);                               // (B, classes)
}
