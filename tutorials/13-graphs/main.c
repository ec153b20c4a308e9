/* Tutorial 13: capture and replay. The same small training step run eagerly (every op recorded
 * again each step) and through a vkg_graph (recorded once, replayed as one submit), fed through
 * host inputs: the batch's indices into a dataset kept on the device, and its labels. The host
 * time per step of each, and the two runs' parameters compared bit for bit. README.md walks
 * through it. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkgrad.h"
#include "vkgrad/graph.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"
#include "vkgrad/seq_ops.h"

#define ITEMS 4096 /* the dataset: ITEMS rows of IN features, labels 0..9 */
#define IN 64
#define BATCH 128
#define LAYERS 6   /* hidden layers of 128: a step of about 60 dispatches */

/* CPU time of this thread in microseconds: waiting for the device is not counted. */
static double cpu_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

typedef struct net {
    vkg_module *params;
    vkg_linear *hidden[LAYERS], *out;
    vkg_optim *opt;
} net;

static net net_new(void) { /* the same seed: both runs start from the same weights */
    net n = { .params = vkg_module_new(&(vkg_module_desc){ .seed = 7 }) };
    for (int i = 0; i < LAYERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", i);
        n.hidden[i] = vkg_linear_new(n.params, name, &(vkg_linear_desc){ .in = i ? 128 : IN, .out = 128 });
    }
    n.out = vkg_linear_new(n.params, "out", &(vkg_linear_desc){ .in = 128, .out = 10 });
    n.opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-3 });
    vkg_optim_add_module(n.opt, n.params);
    return n;
}

/* One training step on the rows `index` of the dataset, with labels y. */
static vkg_tensor *train_step(net *n, vkg_tensor *data, vkg_tensor *index, vkg_tensor *y) {
    vkg_optim_zero_grad(n->opt);
    vkg_tensor *h = vkg_index_select(data, 0, index);  /* the batch, gathered on the device */
    for (int i = 0; i < LAYERS; i++) h = vkg_linear_forward_relu(n->hidden[i], h);
    vkg_tensor *loss = vkg_cross_entropy(vkg_linear_forward(n->out, h), y, NULL);
    vkg_backward(loss);
    vkg_optim_step(n->opt);
    return loss;
}

/* The indices and labels of step k: a shuffled walk through the dataset. */
static void batch_of(int k, const int32_t *labels, int32_t *index, int32_t *y) {
    for (int i = 0; i < BATCH; i++) {
        index[i] = (int32_t)(((int64_t)(k * BATCH + i) * 2654435761u) % ITEMS);
        y[i] = labels[index[i]];
    }
}

int main(int argc, char **argv) {
    int steps = argc > 1 && strcmp(argv[1], "--test") == 0 ? 20 : 200;
    if (vkg_init(NULL) != VKG_OK) return 1;
    /* the dataset lives on the device; only each step's indices and labels come from the host */
    vkg_tensor *data = vkg_keep(vkg_rand(VKG_SHAPE(ITEMS, IN), &(vkg_rand_desc){ .seed = 1 }));
    int32_t labels[ITEMS], index[BATCH], y[BATCH];
    for (int i = 0; i < ITEMS; i++) labels[i] = (i * 7) % 10;

    /* 1. Eager: every op of every step is recorded again. */
    net eager = net_new();
    double host = 0;
    float eager_loss = 0;
    for (int k = 0; k < steps; k++) {
        batch_of(k, labels, index, y);
        vkg_scope_begin();
        vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, index);
        vkg_tensor *ty = vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, y);
        double t0 = cpu_us();
        vkg_tensor *loss = train_step(&eager, data, ti, ty);
        if (k >= 2) host += cpu_us() - t0; /* steps 0 and 1 make the pipelines */
        if (k == steps - 1) eager_loss = vkg_item(loss);
        vkg_scope_end();
    }
    printf("eager:  %6.1f us of host CPU per step\n", host / (steps - 2));

    /* 2. Captured once, replayed: step 0 runs eagerly (pipelines are made, the matmul tuned),
     * step 1 is captured, the later ones are replays. */
    net replayed = net_new();
    vkg_graph *g = vkg_graph_new();
    vkg_tensor *gi = vkg_keep(vkg_empty_dtype(VKG_SHAPE(BATCH), VKG_I32));
    vkg_tensor *gy = vkg_keep(vkg_empty_dtype(VKG_SHAPE(BATCH), VKG_I32));
    vkg_tensor *gloss = NULL;
    host = 0;
    for (int k = 0; k < steps; k++) {
        batch_of(k, labels, index, y);
        if (k == 0) {
            vkg_scope_begin();
            train_step(&replayed, data, vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, index),
                       vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, y));
            vkg_scope_end();
        } else if (k == 1) {
            vkg_tensor_write(gi, index, sizeof index);
            vkg_tensor_write(gy, y, sizeof y);
            vkg_graph_capture_begin(g);              /* ops record into the graph, nothing runs */
            vkg_graph_host_input(g, gi);             /* fed from the host before each replay    */
            vkg_graph_host_input(g, gy);
            vkg_scope_begin();
            gloss = vkg_keep(train_step(&replayed, data, gi, gy));
            vkg_scope_end();
            if (vkg_graph_capture_end(g) != VKG_OK) { /* runs the captured step once */
                fprintf(stderr, "%s\n", vkg_last_error());
                return 1;
            }
        } else {
            double t0 = cpu_us();
            vkg_graph_input_write(g, gi, index, sizeof index); /* no command recorded, no wait */
            vkg_graph_input_write(g, gy, y, sizeof y);
            vkg_graph_replay(g);                               /* one submit */
            host += cpu_us() - t0;
        }
    }
    printf("replay: %6.1f us of host CPU per step (%lld dispatches, 1 submit)\n", host / (steps - 2),
           (long long)vkg_graph_dispatches(g));

    /* 3. The same steps: the same bits. */
    float replay_loss = vkg_item(gloss);
    const char *const *names;
    vkg_tensor *const *pe, *const *pr;
    int np = vkg_module_params(eager.params, &names, &pe);
    vkg_module_params(replayed.params, &names, &pr);
    bool same = memcmp(&eager_loss, &replay_loss, sizeof eager_loss) == 0;
    for (int i = 0; i < np && same; i++) {
        size_t bytes = (size_t)vkg_numel(pe[i]) * sizeof(float);
        float *a = malloc(bytes), *b = malloc(bytes);
        same = vkg_tensor_read(pe[i], a, bytes) == VKG_OK && vkg_tensor_read(pr[i], b, bytes) == VKG_OK &&
               memcmp(a, b, bytes) == 0;
        free(a);
        free(b);
    }
    printf("after %d steps: loss %.4f, parameters of the two runs equal bit for bit: %s\n", steps, replay_loss,
           same ? "yes" : "no");

    vkg_graph_free(g);
    vkg_free(gloss);
    vkg_free(gi);
    vkg_free(gy);
    vkg_free(data);
    vkg_optim_free(eager.opt);
    vkg_optim_free(replayed.opt);
    vkg_module_free(eager.params);
    vkg_module_free(replayed.params);
    vkg_shutdown();
    return same ? 0 : 1;
}
