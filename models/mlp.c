/* MLP on Fashion-MNIST: 784 -> 512 -> ReLU -> 256 -> ReLU -> 10, PyTorch's
 * nn.Sequential(Flatten, Linear, ReLU, Linear, ReLU, Linear) with the layers named fc1..fc3. */
#include <stdlib.h>

#include "models.h"

struct vkg_mlp_model {
    vkg_mlp_config cfg;
    vkg_linear *fc1, *fc2, *fc3;
};

vkg_mlp_config vkg_mlp_config_default(bool test) {
    if (test) return (vkg_mlp_config){ .in = 784, .hidden1 = 24, .hidden2 = 16, .classes = 10 };
    return (vkg_mlp_config){ .in = 784, .hidden1 = 512, .hidden2 = 256, .classes = 10 };
}

vkg_mlp_model *vkg_mlp_model_new(vkg_module *module, const vkg_mlp_config *cfg) {
    vkg_mlp_config d = vkg_mlp_config_default(false), c = cfg ? *cfg : d;
    if (!c.in) c.in = d.in;
    if (!c.hidden1) c.hidden1 = d.hidden1;
    if (!c.hidden2) c.hidden2 = d.hidden2;
    if (!c.classes) c.classes = d.classes;
    vkg_mlp_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (c.amp) vkg_module_amp(module, true); /* the config's own switch, as --amp sets for every model */
    m->cfg = c;
    m->fc1 = vkg_linear_new(module, "fc1", &(vkg_linear_desc){ .in = c.in, .out = c.hidden1 });
    m->fc2 = vkg_linear_new(module, "fc2", &(vkg_linear_desc){ .in = c.hidden1, .out = c.hidden2 });
    m->fc3 = vkg_linear_new(module, "fc3", &(vkg_linear_desc){ .in = c.hidden2, .out = c.classes });
    if (!m->fc1 || !m->fc2 || !m->fc3) {
        free(m);
        return NULL;
    }
    return m;
}

/* x (B, 28, 28) or (B, 784) -> logits (B, classes); each linear layer's bias and ReLU fused
 * into its matmul's epilogue (with amp, the module's layers use f16-rounded weights) */
vkg_tensor *vkg_mlp_model_forward(const vkg_mlp_model *m, vkg_tensor *x) {
    if (!x) return NULL;
    vkg_tensor *h = vkg_reshape(x, VKG_SHAPE(vkg_dim(x, 0), m->cfg.in));   // (B, 784)
    h = vkg_linear_forward_relu(m->fc1, h);                                 // (B, hidden1)
    h = vkg_linear_forward_relu(m->fc2, h);                                 // (B, hidden2)
    return vkg_linear_forward(m->fc3, h);                                   // (B, classes)
}
