/* Tutorial 07: a CNN. The same task as tutorial 06, with convolution and pooling layers that
 * look at small patches and share their weights across the picture; the parameter count and
 * the accuracy, measured side by side with the MLP. README.md walks through it. */
#include <stdio.h>
#include <string.h>

#include "fashion_mnist.h"
#include "loader.h"
#include "vkgrad.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

typedef struct cnn {
    vkg_conv2d_layer *conv1, *conv2;
    vkg_pool2d_layer *pool;
    vkg_linear *fc;
} cnn;

static cnn build(vkg_module *m) {
    cnn net;
    /* 1 -> 16 channels, 3x3 windows, padded so the picture keeps its 28x28 size */
    net.conv1 = vkg_conv2d_new(m, "conv1", &(vkg_conv2d_layer_desc){ .in = 1, .out = 16, .kernel = { 3, 3 },
                                                                      .conv = { .padding = { 1, 1 } } });
    net.conv2 = vkg_conv2d_new(m, "conv2", &(vkg_conv2d_layer_desc){ .in = 16, .out = 32, .kernel = { 3, 3 },
                                                                      .conv = { .padding = { 1, 1 } } });
    net.pool = vkg_max_pool2d_new(m, "pool", &(vkg_pool2d_desc){ .kernel = { 2, 2 } }); /* halves H and W */
    net.fc = vkg_linear_new(m, "fc", &(vkg_linear_desc){ .in = 32 * 7 * 7, .out = 10 });
    return net;
}

static vkg_tensor *forward(const cnn *net, vkg_tensor *images) {
    vkg_tensor *x = vkg_unsqueeze(images, 1);                                 /* (B, 1, 28, 28)  */
    x = vkg_pool2d_forward(net->pool, vkg_relu(vkg_conv2d_forward(net->conv1, x))); /* (B, 16, 14, 14) */
    x = vkg_pool2d_forward(net->pool, vkg_relu(vkg_conv2d_forward(net->conv2, x))); /* (B, 32, 7, 7)   */
    return vkg_linear_forward(net->fc, vkg_reshape(x, VKG_SHAPE(-1, 32 * 7 * 7)));  /* (B, 10)         */
}

static double accuracy(const cnn *net, vkg_loader *test) {
    int64_t right = 0, seen = 0;
    vkg_no_grad_begin();
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
    /* test mode: a short run with small batches (convolutions are the slow part on a CPU) */
    int64_t steps = test_mode ? 60 : 469 * 2, batch = test_mode ? 32 : 128, every = test_mode ? 20 : 50;
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_mnist data;
    if (vkg_mnist_load(NULL, &data) != VKG_OK) {
        fprintf(stderr, "%s\n", vkg_last_error());
        return 1;
    }
    vkg_loader *train = vkg_loader_create(&(vkg_loader_desc){
        .images = data.train.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
        .labels = data.train.labels, .labels_dtype = VKG_U8, .count = (int64_t)data.train.count,
        .batch_size = batch, .drop_last = true, .seed = 1 });
    vkg_loader *test = vkg_loader_create(&(vkg_loader_desc){
        .images = data.test.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
        .labels = data.test.labels, .labels_dtype = VKG_U8, .count = test_mode ? 1000 : (int64_t)data.test.count,
        .batch_size = 256, .no_shuffle = true });
    if (!train || !test) {
        fprintf(stderr, "%s\n", vkg_last_error());
        return 1;
    }

    vkg_module *params = vkg_module_new(&(vkg_module_desc){ .seed = 42 });
    cnn net = build(params);
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-3 });
    vkg_optim_add_module(opt, params);
    printf("parameters: %lld (the MLP of tutorial 06 has 101770)\n", (long long)vkg_module_numel(params));

    for (int64_t step = 1; step <= steps; step++) {
        vkg_scope_begin();
        vkg_batch b;
        if (!vkg_loader_next(train, &b)) vkg_loader_next(train, &b);
        vkg_optim_zero_grad(opt);
        vkg_tensor *loss = vkg_cross_entropy(forward(&net, b.x), b.y, NULL);
        vkg_backward(loss);
        vkg_optim_step(opt);
        if (step % every == 0) printf("step %4lld  loss %.3f\n", (long long)step, vkg_item(loss));
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
