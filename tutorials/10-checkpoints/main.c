/* Tutorial 10: saving and resuming. Train a small network, save a safetensors checkpoint (the
 * parameters, the optimizer's state and the position), go on training; then, as a new program
 * would, start from scratch, load the checkpoint and train the same steps: the result is the
 * same to the last bit. README.md walks through it. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vkgrad.h"
#include "vkgrad/checkpoint.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

typedef struct net {
    vkg_module *params;
    vkg_linear *fc1, *fc2;
    vkg_optim *opt;
} net;

/* A fresh network and optimizer; the seed decides the starting weights. */
static net make(uint64_t seed) {
    net n = { .params = vkg_module_new(&(vkg_module_desc){ .seed = seed }) };
    n.fc1 = vkg_linear_new(n.params, "fc1", &(vkg_linear_desc){ .in = 8, .out = 32 });
    n.fc2 = vkg_linear_new(n.params, "fc2", &(vkg_linear_desc){ .in = 32, .out = 1 });
    n.opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-2 });
    vkg_optim_add_module(n.opt, n.params);
    return n;
}

static void drop(net *n) {
    vkg_optim_free(n->opt);
    vkg_module_free(n->params);
}

/* Training steps first .. last on data that depend only on the step number. */
static float train(net *n, int64_t first, int64_t last) {
    float loss = 0.0f;
    for (int64_t step = first; step <= last; step++) {
        vkg_scope_begin();
        vkg_tensor *x = vkg_randn(VKG_SHAPE(16, 8), &(vkg_rand_desc){ .seed = 100, .offset = (uint64_t)step * 128 });
        vkg_tensor *target = vkg_sum(vkg_tanh(vkg_mul_scalar(x, 2.0f)), 1, true); /* (16, 1) */
        vkg_optim_zero_grad(n->opt);
        vkg_tensor *pred = vkg_linear_forward(n->fc2, vkg_tanh(vkg_linear_forward(n->fc1, x)));
        vkg_tensor *err = vkg_sub(pred, target);
        vkg_tensor *mse = vkg_mean_all(vkg_mul(err, err));
        vkg_backward(mse);
        vkg_optim_step(n->opt);
        loss = vkg_item(mse);
        vkg_scope_end();
    }
    return loss;
}

int main(void) {
    const char *path = "tutorial-10.safetensors";
    if (vkg_init(NULL) != VKG_OK) return 1;

    /* 1. Train 20 steps, save, train 20 more. */
    net a = make(1);
    printf("loss after 20 steps: %.4f\n", train(&a, 1, 20));
    vkg_status st = vkg_checkpoint_save_module(path, a.params, a.opt,
                                               &(vkg_checkpoint_desc){ .position = { .step = 20, .seed = 1 } });
    if (st != VKG_OK) {
        printf("save failed: %s\n", vkg_last_error());
        return 1;
    }
    printf("loss after 40 steps: %.4f\n", train(&a, 21, 40));

    /* 2. What the file holds: every tensor by name, and the position. */
    vkg_checkpoint ck;
    if (vkg_checkpoint_open(path, &ck) != VKG_OK) return 1;
    for (int i = 0; i < ck.file.count; i++) {
        const vkg_st_tensor *t = &ck.file.tensors[i];
        printf("  %-28s %s (", t->name, vkg_st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf(")\n");
    }
    printf("saved at step %lld\n", (long long)ck.position.step);
    vkg_checkpoint_close(&ck);

    /* 3. A new start: other weights, a fresh optimizer; then the checkpoint, then steps 21..40. */
    net b = make(999);
    vkg_checkpoint_position pos;
    if (vkg_checkpoint_load_module(path, b.params, b.opt, NULL, &pos) != VKG_OK) {
        printf("load failed: %s\n", vkg_last_error());
        return 1;
    }
    printf("resumed at step %lld: loss after 40 steps: %.4f\n", (long long)pos.step, train(&b, pos.step + 1, 40));

    /* 4. Bit for bit? */
    float wa[32 * 8], wb[32 * 8];
    vkg_tensor_read(a.fc1->weight, wa, sizeof wa);
    vkg_tensor_read(b.fc1->weight, wb, sizeof wb);
    printf("the resumed weights equal the uninterrupted run's bit for bit: %s\n", memcmp(wa, wb, sizeof wa) ? "no" : "yes");

    drop(&a);
    drop(&b);
    vkg_shutdown();
    unlink(path);
    return 0;
}
