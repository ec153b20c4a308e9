/* Tutorial 05: fitting a line. A model with two parameters, a loss, and the training loop
 * that lowers it: the same data fitted with SGD, with Adam, and with a learning rate too large
 * to converge. README.md walks through it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vkgrad.h"
#include "vkgrad/optim.h"

enum { N = 64 };

/* The data: 64 points on y = 3x + 2, with a little fixed "noise". */
static void make_data(float *x, float *y) {
    for (int i = 0; i < N; i++) {
        x[i] = -1.0f + 2.0f * (float)i / (N - 1);
        float noise = 0.1f * (float)((i * 37) % 11 - 5) / 5.0f;
        y[i] = 3.0f * x[i] + 2.0f + noise;
    }
}

/* Fits w and b from zero with one optimizer; prints the loss as it goes and the result. */
static void fit(const char *label, vkg_optim_desc desc, int steps, vkg_tensor *x, vkg_tensor *y) {
    vkg_tensor *w = vkg_requires_grad(vkg_zeros(VKG_SHAPE(1)), true);
    vkg_tensor *b = vkg_requires_grad(vkg_zeros(VKG_SHAPE(1)), true);
    vkg_optim *opt = vkg_optim_new(&desc);
    vkg_optim_add(opt, "w", w);
    vkg_optim_add(opt, "b", b);
    float loss = 0.0f;
    for (int step = 1; step <= steps; step++) {
        vkg_scope_begin();
        vkg_optim_zero_grad(opt);                          /* forget the last step's gradients */
        vkg_tensor *pred = vkg_add(vkg_mul(x, w), b);      /* the model: w x + b, for every point */
        vkg_tensor *err = vkg_sub(pred, y);
        vkg_tensor *mse = vkg_mean_all(vkg_mul(err, err)); /* the loss: mean squared error */
        vkg_backward(mse);                                 /* d mse / d w and d mse / d b */
        vkg_optim_step(opt);                               /* w -= lr * ..., b -= lr * ... */
        if (step == 1 || step % (steps / 4) == 0) {
            loss = vkg_item(mse);
            printf("  %-6s step %3d  loss %.4f\n", label, step, loss);
        }
        vkg_scope_end();
    }
    printf("%-6s w = %.3f  b = %.3f  loss %.4f\n", label, vkg_item(w), vkg_item(b), loss);
    vkg_optim_free(opt);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv; /* --test changes nothing: the whole run takes a second */
    if (vkg_init(NULL) != VKG_OK) return 1;
    float hx[N], hy[N];
    make_data(hx, hy);
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(N), hx), *y = vkg_from_data(VKG_SHAPE(N), hy);

    fit("SGD", (vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1 }, 200, x, y);
    fit("Adam", (vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.1 }, 200, x, y);
    fit("SGD x2", (vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 2.0 }, 20, x, y);
    vkg_shutdown();
    return 0;
}
