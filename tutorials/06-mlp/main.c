/* Tutorial 06: an MLP on Fashion-MNIST. A dataset, batches gathered on the device, a network of
 * two Linear layers, cross-entropy, Adam, and accuracy on images the network never saw in
 * training. README.md walks through it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fashion_mnist.h"
#include "loader.h"
#include "vkgrad.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

/* The network: 784 pixels -> 128 hidden units -> 10 class scores ("logits"). */
typedef struct mlp {
    vkg_linear *fc1, *fc2;
} mlp;

static vkg_tensor *forward(const mlp *net, vkg_tensor *images) {
    vkg_tensor *x = vkg_reshape(images, VKG_SHAPE(-1, 784)); /* (B, 28, 28) -> (B, 784) */
    vkg_tensor *h = vkg_relu(vkg_linear_forward(net->fc1, x));
    return vkg_linear_forward(net->fc2, h);                   /* (B, 10) */
}

/* The share of images whose highest logit is their label. */
static double accuracy(const mlp *net, vkg_loader *test) {
    int64_t right = 0, seen = 0;
    vkg_no_grad_begin(); /* evaluation: no graph, no gradients */
    for (;;) {
        vkg_scope_begin();
        vkg_batch b;
        bool more = vkg_loader_next(test, &b);
        if (more) {
            int32_t pred[256], label[256];
            vkg_tensor_read(vkg_argmax(forward(net, b.x), 1, false), pred, sizeof(int32_t) * b.size);
            vkg_tensor_read(b.y, label, sizeof(int32_t) * b.size);
            for (int64_t i = 0; i < b.size; i++) right += pred[i] == label[i];
            seen += b.size;
        }
        vkg_scope_end();
        if (!more) break;
    }
    vkg_no_grad_end();
    return (double)right / (double)seen;
}

int main(int argc, char **argv) {
    bool test_mode = argc > 1 && strcmp(argv[1], "--test") == 0;
    int64_t steps = test_mode ? 150 : 469 * 2; /* test mode: a short run; else 2 epochs */
    if (vkg_init(NULL) != VKG_OK) return 1;

    /* 1. The data: 60,000 training and 10,000 test images of 28x28 bytes, labels 0..9. */
    vkg_mnist data;
    if (vkg_mnist_load(NULL, &data) != VKG_OK) {
        fprintf(stderr, "%s\n", vkg_last_error());
        return 1;
    }
    printf("train %zu images, test %zu images\n", data.train.count, data.test.count);
    int64_t test_count = test_mode ? 2000 : (int64_t)data.test.count;

    /* 2. Loaders: the images go to the device once; each batch is gathered there. */
    vkg_loader *train = vkg_loader_create(&(vkg_loader_desc){
        .images = data.train.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
        .labels = data.train.labels, .labels_dtype = VKG_U8, .count = (int64_t)data.train.count,
        .batch_size = 128, .drop_last = true, .seed = 1 });
    vkg_loader *test = vkg_loader_create(&(vkg_loader_desc){
        .images = data.test.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
        .labels = data.test.labels, .labels_dtype = VKG_U8, .count = test_count,
        .batch_size = 256, .no_shuffle = true });
    if (!train || !test) {
        fprintf(stderr, "%s\n", vkg_last_error());
        return 1;
    }

    /* 3. The network and the optimizer. */
    vkg_module *params = vkg_module_new(&(vkg_module_desc){ .seed = 42 });
    mlp net = { vkg_linear_new(params, "fc1", &(vkg_linear_desc){ .in = 784, .out = 128 }),
                vkg_linear_new(params, "fc2", &(vkg_linear_desc){ .in = 128, .out = 10 }) };
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-3 });
    vkg_optim_add_module(opt, params);
    printf("parameters: %lld\n", (long long)vkg_module_numel(params));
    printf("accuracy before training: %.3f\n", accuracy(&net, test));

    /* 4. The training loop: one scope per step. */
    for (int64_t step = 1; step <= steps; step++) {
        vkg_scope_begin();
        vkg_batch b;
        if (!vkg_loader_next(train, &b)) vkg_loader_next(train, &b); /* an epoch ended: start the next */
        vkg_optim_zero_grad(opt);
        vkg_tensor *loss = vkg_cross_entropy(forward(&net, b.x), b.y, NULL);
        vkg_backward(loss);
        vkg_optim_step(opt);
        if (step % 50 == 0) printf("step %4lld  loss %.3f\n", (long long)step, vkg_item(loss));
        vkg_scope_end();
    }
    printf("accuracy after %lld steps: %.3f\n", (long long)steps, accuracy(&net, test));

    vkg_optim_free(opt);
    vkg_module_free(params);
    vkg_loader_free(train);
    vkg_loader_free(test);
    vkg_mnist_free(&data);
    vkg_shutdown();
    return 0;
}
