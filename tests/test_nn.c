/* Layer tests: the module system (names, counts, ownership, seeds), each layer's initialisation
 * (ranges and statistics) and shapes, and a small network whose every parameter gradient is
 * checked against central finite differences of a double-precision host forward.
 *
 * The gradient tolerance: the finite differences run in double on the host (h = 1e-6, error
 * ~h^2 |f'''| + 1e-16 |f| / h, about 1e-10 here), so the error that matters is the device's: an
 * f32 forward and backward of a few dozen operations per element, a few 1e-7 relative to the
 * largest gradient. We allow |dev - fd| <= 1e-4 |fd| + 1e-5 max|fd|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* ---- module system ------------------------------------------------------------------------------ */
VKG_TEST(nn, linear_names_shapes_and_init) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 5 });
    vkg_scope_begin(); /* layers made inside a scope outlive it */
    vkg_linear *fc1 = vkg_linear_new(m, "fc1", &(vkg_linear_desc){ .in = 300, .out = 40 });
    vkg_linear *fc2 = vkg_linear_new(m, "head.fc2", &(vkg_linear_desc){ .in = 40, .out = 3, .no_bias = true });
    vkg_scope_end();
    cr_assert_not_null(fc1, "%s", vkg_last_error());
    cr_assert_not_null(fc2, "%s", vkg_last_error());
    const char *const *names;
    vkg_tensor *const *params;
    int n = vkg_module_params(m, &names, &params);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(names[0], "fc1.weight");
    cr_expect_str_eq(names[1], "fc1.bias");
    cr_expect_str_eq(names[2], "head.fc2.weight");
    cr_expect_eq(params[0], fc1->weight);
    cr_expect_eq(vkg_module_get(m, "fc1.bias"), fc1->bias);
    cr_expect_null(fc2->bias);
    cr_expect_eq(vkg_module_numel(m), 300 * 40 + 40 + 40 * 3);
    cr_expect_eq(vkg_dim(fc1->weight, 0), 40);
    cr_expect_eq(vkg_dim(fc1->weight, 1), 300);
    for (int i = 0; i < n; i++) {
        cr_expect(vkg_tensor_requires_grad(params[i]));
        cr_expect(vkg_is_leaf(params[i]));
    }
    /* U(-1/sqrt(in), 1/sqrt(in)): inside the bound, mean ~0, variance bound^2 / 3 */
    float *w = vkgt_read(fc1->weight);
    double bound = 1.0 / sqrt(300.0), mean = 0, var = 0;
    size_t nw = 300 * 40;
    for (size_t i = 0; i < nw; i++) {
        cr_assert(fabs(w[i]) <= bound, "weight %zu = %g outside +-%g", i, (double)w[i], bound);
        mean += w[i];
    }
    mean /= (double)nw;
    for (size_t i = 0; i < nw; i++) var += (w[i] - mean) * (w[i] - mean);
    var /= (double)nw;
    /* standard errors: mean bound/sqrt(3n) ~ 3e-4, variance ~ bound^2 * 0.0026 */
    cr_expect(fabs(mean) < 5 * bound / sqrt(3.0 * (double)nw), "mean %g", mean);
    cr_expect(fabs(var / (bound * bound / 3) - 1) < 0.05, "variance %g, want %g", var, bound * bound / 3);
    /* the values are the seed's: parameter "fc1.weight" draws Philox(seed = param_seed) from 0 */
    float *u = malloc(nw * sizeof *u);
    vkg_ref_rand(u, nw, &(vkg_rand_desc){ .seed = vkg_module_param_seed(m, "fc1.weight") });
    for (size_t i = 0; i < nw; i++) {
        float want = u[i] * (2.0f * (float)bound) + -(float)bound;
        cr_assert(fabsf(w[i] - want) <= 1e-7f, "weight %zu = %.9g, want %.9g", i, (double)w[i], (double)want);
    }
    free(u);
    float *b = vkgt_read(fc1->bias);
    for (int i = 0; i < 40; i++) cr_assert(fabs(b[i]) <= bound);
    free(b);
    /* the same seed gives the same parameters, in any creation order; another seed others */
    vkg_module *m2 = vkg_module_new(&(vkg_module_desc){ .seed = 5 });
    vkg_linear_new(m2, "head.fc2", &(vkg_linear_desc){ .in = 40, .out = 3, .no_bias = true });
    vkg_linear *fc1b = vkg_linear_new(m2, "fc1", &(vkg_linear_desc){ .in = 300, .out = 40 });
    float *w2 = vkgt_read(fc1b->weight);
    cr_expect_eq(memcmp(w, w2, nw * sizeof *w), 0);
    free(w2);
    vkg_module *m3 = vkg_module_new(&(vkg_module_desc){ .seed = 6 });
    vkg_linear *fc1c = vkg_linear_new(m3, "fc1", &(vkg_linear_desc){ .in = 300, .out = 40 });
    float *w3 = vkgt_read(fc1c->weight);
    cr_expect_neq(memcmp(w, w3, nw * sizeof *w), 0);
    free(w3);
    free(w);
    /* forward: (..., in) -> (..., out) */
    vkg_scope_begin();
    vkg_tensor *y = vkg_linear_forward(fc1, vkg_zeros(VKG_SHAPE(2, 5, 300)));
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_expect_eq(vkg_ndim(y), 3);
    cr_expect_eq(vkg_dim(y, 2), 40);
    cr_expect_null(vkg_linear_forward(fc1, vkg_zeros(VKG_SHAPE(2, 299))));
    cr_expect(strstr(vkg_last_error(), "(2, 299)"), "%s", vkg_last_error());
    vkg_scope_end();
    /* refusals */
    cr_expect_null(vkg_linear_new(m, "fc1", &(vkg_linear_desc){ .in = 3, .out = 4 }));
    cr_expect(strstr(vkg_last_error(), "already has \"fc1.weight\""), "%s", vkg_last_error());
    cr_expect_null(vkg_linear_new(m, "z", &(vkg_linear_desc){ .in = 0, .out = 4 }));
    cr_expect_null(vkg_linear_new(m, "z", NULL));
    vkg_module_free(m);
    vkg_module_free(m2);
    vkg_module_free(m3);
    cr_expect_eq(vkg_memory_stats_get().in_use, 0, "the modules left tensors behind");
}

VKG_TEST(nn, module_params_buffers_and_mode) {
    vkg_module *m = vkg_module_new(NULL);
    vkg_scope_begin();
    vkg_tensor *p = vkg_module_add_param(m, "scale", vkg_ones(VKG_SHAPE(4)));
    vkg_tensor *r = vkg_module_add_buffer(m, "running", vkg_zeros(VKG_SHAPE(4)));
    vkg_scope_end();
    cr_assert_not_null(p, "%s", vkg_last_error());
    cr_assert_not_null(r, "%s", vkg_last_error());
    float *v = vkgt_read(p); /* alive after the scope */
    cr_expect_eq(v[3], 1.0f);
    free(v);
    cr_expect(vkg_tensor_requires_grad(p));
    cr_expect(!vkg_tensor_requires_grad(r));
    const char *const *names;
    vkg_tensor *const *t;
    cr_expect_eq(vkg_module_params(m, &names, &t), 1);
    cr_expect_eq(vkg_module_buffers(m, &names, &t), 1);
    cr_expect_str_eq(names[0], "running");
    cr_expect(vkg_module_training(m));
    vkg_module_train(m, false);
    cr_expect(!vkg_module_training(m));
    cr_expect_null(vkg_module_add_param(m, "running", vkg_ones(VKG_SHAPE(1))));
    vkg_module_free(m);
}

/* ---- a small network, every parameter gradient against finite differences --------------------- */
enum { B = 5, IN = 7, HID = 9, OUT = 3 };

typedef struct net_values {
    double w1[HID * IN], b1[HID], w2[OUT * HID], b2[OUT];
    double x[B * IN], target[B * OUT];
} net_values;

/* loss = mean((tanh(x W1^T + b1) W2^T + b2 - target)^2), in double */
static double net_loss(const net_values *v) {
    double loss = 0;
    for (int b = 0; b < B; b++) {
        double h[HID];
        for (int j = 0; j < HID; j++) {
            double s = v->b1[j];
            for (int i = 0; i < IN; i++) s += v->x[b * IN + i] * v->w1[j * IN + i];
            h[j] = tanh(s);
        }
        for (int k = 0; k < OUT; k++) {
            double s = v->b2[k];
            for (int j = 0; j < HID; j++) s += h[j] * v->w2[k * HID + j];
            double d = s - v->target[b * OUT + k];
            loss += d * d;
        }
    }
    return loss / (B * OUT);
}

static void to_double(double *d, const vkg_tensor *t) {
    float *f = vkgt_read(t);
    for (int64_t i = 0; i < vkg_numel(t); i++) d[i] = f[i];
    free(f);
}

/* Checks the device gradient of a parameter (its values at p, which loss(ctx) reads) against
 * central differences of loss in double. */
typedef double (*loss_fn)(void *ctx);

static void check_fd_fn(loss_fn loss, void *ctx, double *p, const vkg_tensor *param, const char *name) {
    const vkg_tensor *g = vkg_grad(param);
    cr_assert_not_null(g, "%s has no gradient", name);
    int64_t n = vkg_numel(param);
    float *dev = vkgt_read(g);
    double *fd = malloc((size_t)n * sizeof *fd), maxabs = 0;
    const double h = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double keep = p[i];
        p[i] = keep + h;
        double up = loss(ctx);
        p[i] = keep - h;
        double down = loss(ctx);
        p[i] = keep;
        fd[i] = (up - down) / (2 * h);
        maxabs = fmax(maxabs, fabs(fd[i]));
    }
    cr_assert(maxabs > 1e-4, "%s: gradient too small to check (%g)", name, maxabs);
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs(dev[i] - fd[i]) <= 1e-4 * fabs(fd[i]) + 1e-5 * maxabs, "%s[%lld]: device %.9g, differences %.9g",
                  name, (long long)i, (double)dev[i], fd[i]);
    free(dev);
    free(fd);
}

static double mlp_loss(void *ctx) { return net_loss(ctx); }
static void check_fd(net_values *v, double *p, const vkg_tensor *param, const char *name) {
    check_fd_fn(mlp_loss, v, p, param, name);
}

VKG_TEST(nn, mlp_gradients_match_finite_differences) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 2024 });
    vkg_linear *fc1 = vkg_linear_new(m, "fc1", &(vkg_linear_desc){ .in = IN, .out = HID });
    vkg_linear *fc2 = vkg_linear_new(m, "fc2", &(vkg_linear_desc){ .in = HID, .out = OUT });
    cr_assert(fc1 && fc2, "%s", vkg_last_error());
    float x[B * IN], target[B * OUT];
    vkgt_fill(x, B * IN, -2.0f, 2.0f, 91);
    vkgt_fill(target, B * OUT, -1.0f, 1.0f, 92);
    net_values *v = malloc(sizeof *v);
    for (int i = 0; i < B * IN; i++) v->x[i] = x[i];
    for (int i = 0; i < B * OUT; i++) v->target[i] = target[i];
    to_double(v->w1, fc1->weight);
    to_double(v->b1, fc1->bias);
    to_double(v->w2, fc2->weight);
    to_double(v->b2, fc2->bias);

    vkg_scope_begin();
    vkg_tensor *y = vkg_linear_forward(fc2, vkg_tanh(vkg_linear_forward(fc1, vkg_from_data(VKG_SHAPE(B, IN), x))));
    vkg_tensor *loss = vkg_mean_all(vkg_pow(vkg_sub(y, vkg_from_data(VKG_SHAPE(B, OUT), target)), 2.0f));
    cr_assert_not_null(loss, "%s", vkg_last_error());
    double want = net_loss(v);
    cr_expect(fabs(vkg_item(loss) - want) <= 1e-5 * want, "loss %.9g, want %.9g", (double)vkg_item(loss), want);
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();

    check_fd(v, v->w1, fc1->weight, "fc1.weight");
    check_fd(v, v->b1, fc1->bias, "fc1.bias");
    check_fd(v, v->w2, fc2->weight, "fc2.weight");
    check_fd(v, v->b2, fc2->bias, "fc2.bias");
    free(v);
    vkg_module_free(m);
}

/* vkg_linear_forward (bias in the matmul's epilogue), vkg_linear_forward_relu and _gelu (bias
 * and activation) and vkg_linear_forward_residual (r added by the kernel) give bitwise the values
 * and the gradients of the unfused ops, with a bias and without, on 2-D and 3-D inputs of sizes
 * off the kernels' tiles. mode: 0-3 fused none, relu, gelu, residual; 4-7 the same unfused. */
static void linear_grads(vkg_linear *l, const float *xv, vkg_shape xs, const float *wv, int mode, float **out, int nout) {
    vkg_scope_begin();
    vkg_zero_grad(l->weight);
    if (l->bias) vkg_zero_grad(l->bias);
    vkg_tensor *x = vkg_requires_grad(vkg_from_data(xs, xv), true), *y;
    vkg_tensor *wt = vkg_transpose(l->weight, 0, 1);
    vkg_tensor *z = mode >= 4 ? (l->bias ? vkg_add(vkg_matmul(x, wt), l->bias) : vkg_matmul(x, wt)) : NULL;
    vkg_shape ys = xs;
    ys.d[ys.ndim - 1] = l->out;
    vkg_tensor *r = vkg_from_data(ys, wv); /* a residual (any values: dL/dy's serve) */
    switch (mode) {
    case 0: y = vkg_linear_forward(l, x); break;
    case 1: y = vkg_linear_forward_relu(l, x); break;
    case 2: y = vkg_linear_forward_gelu(l, x); break;
    case 3: y = vkg_linear_forward_residual(l, x, r); break;
    case 4: y = z; break;
    case 5: y = vkg_relu(z); break;
    case 6: y = vkg_gelu(z); break;
    default: y = vkg_add(r, z); break;
    }
    cr_assert_not_null(y, "%s", vkg_last_error());
    vkg_tensor *loss = vkg_sum_all(vkg_mul(y, vkg_from_data(vkg_tensor_shape(y), wv)));
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    out[0] = vkgt_read(y);
    out[1] = vkgt_read(vkg_grad(x));
    out[2] = vkgt_read(vkg_grad(l->weight));
    if (nout > 3) out[3] = vkgt_read(vkg_grad(l->bias));
    vkg_scope_end();
}

VKG_TEST(nn, linear_fused_epilogue_matches_unfused_ops) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 31 });
    vkg_linear *lb = vkg_linear_new(m, "fc", &(vkg_linear_desc){ .in = 37, .out = 29 });
    vkg_linear *ln = vkg_linear_new(m, "nb", &(vkg_linear_desc){ .in = 37, .out = 29, .no_bias = true });
    cr_assert(lb && ln, "%s", vkg_last_error());
    const vkg_shape shapes[] = { VKG_SHAPE(13, 37), VKG_SHAPE(2, 5, 37) };
    float xv[13 * 37], wv[13 * 29]; /* the larger of the two shapes' rows: 13 */
    vkgt_fill(xv, 13 * 37, -2.0f, 2.0f, 32);
    vkgt_fill(wv, 13 * 29, -1.0f, 1.0f, 33);
    for (int k = 0; k < 2; k++)
        for (int hb = 0; hb < 2; hb++)
            for (int act = 0; act < 4; act++) {
                bool relu = act == 1;
                vkg_linear *l = hb ? lb : ln;
                int nout = hb ? 4 : 3;
                float *fused[4] = { 0 }, *ref[4] = { 0 };
                linear_grads(l, xv, shapes[k], wv, act, fused, nout);
                linear_grads(l, xv, shapes[k], wv, 4 + act, ref, nout);
                int64_t rows = vkg_shape_numel(shapes[k]) / 37;
                const int64_t n[4] = { rows * 29, rows * 37, 29 * 37, 29 };
                const char *what[4] = { "y", "dx", "dweight", "dbias" };
                int zeros = 0;
                for (int64_t i = 0; i < n[0]; i++) zeros += fused[0][i] == 0.0f;
                if (relu) cr_assert(zeros > 0 && zeros < n[0], "relu should cut some outputs: %d of %lld", zeros, (long long)n[0]);
                for (int t = 0; t < nout; t++) {
                    for (int64_t i = 0; i < n[t]; i++)
                        cr_assert(fused[t][i] == ref[t][i], "shape %d bias %d act %d: %s[%lld] %.9g fused, %.9g unfused",
                                  k, hb, act, what[t], (long long)i, (double)fused[t][i], (double)ref[t][i]);
                    free(fused[t]);
                    free(ref[t]);
                }
            }
    cr_assert_null(vkg_linear_forward_relu(lb, vkg_zeros(VKG_SHAPE(2, 36))));
    cr_assert(strstr(vkg_last_error(), "vkg_linear_forward_relu: x is (2, 36)"), "%s", vkg_last_error());
    cr_assert_null(vkg_linear_forward_gelu(lb, vkg_zeros(VKG_SHAPE(2, 36))));
    cr_assert(strstr(vkg_last_error(), "vkg_linear_forward_gelu: x is (2, 36)"), "%s", vkg_last_error());
    vkg_module_free(m);
}

/* ---- host double helpers ---------------------------------------------------------------------- */
/* y (M, out) = x (M, in) W^T + b (b may be NULL) */
static void linear_d(double *y, const double *x, const double *w, const double *b, int M, int in, int out) {
    for (int r = 0; r < M; r++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < in; i++) s += x[r * in + i] * w[o * in + i];
            y[r * out + o] = s;
        }
}

static double mse_d(const double *y, const double *t, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (y[i] - t[i]) * (y[i] - t[i]);
    return s / n;
}

static double *dup_d(const vkg_tensor *t) {
    double *d = malloc((size_t)vkg_numel(t) * sizeof *d);
    to_double(d, t);
    return d;
}

/* ---- determinism: two runs of 20 training steps from one seed are bitwise equal ----------------- */
static void train_run(float *out_w, float *losses) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 77 });
    vkg_linear *fc1 = vkg_linear_new(m, "fc1", &(vkg_linear_desc){ .in = 8, .out = 16 });
    vkg_dropout_layer *drop = vkg_dropout_new(m, "drop", &(vkg_dropout_desc){ .p = 0.1f });
    vkg_linear *fc2 = vkg_linear_new(m, "fc2", &(vkg_linear_desc){ .in = 16, .out = 4 });
    cr_assert(fc1 && drop && fc2, "%s", vkg_last_error());
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 3e-2 });
    cr_assert_eq(vkg_optim_add_module(opt, m), VKG_OK, "%s", vkg_last_error());
    const char *const *names;
    vkg_tensor *const *params;
    int np = vkg_module_params(m, &names, &params);
    float x[32 * 8], t[32 * 4];
    vkgt_fill(x, 32 * 8, -1.0f, 1.0f, 78);
    for (int i = 0; i < 32 * 4; i++) t[i] = (float)sin(x[i] * 3.0); /* a function of the inputs */
    for (int step = 0; step < 20; step++) {
        vkg_scope_begin();
        vkg_optim_zero_grad(opt);
        vkg_tensor *h = vkg_dropout_forward(drop, vkg_gelu(vkg_linear_forward(fc1, vkg_from_data(VKG_SHAPE(32, 8), x))));
        vkg_tensor *y = vkg_linear_forward(fc2, h);
        vkg_tensor *loss = vkg_mean_all(vkg_pow(vkg_sub(y, vkg_from_data(VKG_SHAPE(32, 4), t)), 2.0f));
        cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(vkg_clip_grad_norm_tensor(params, np, 1.0f) != NULL, true, "%s", vkg_last_error());
        vkg_optim_set_lr(opt, vkg_lr_cosine(3e-2, step, 5, 20, 3e-3));
        cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s", vkg_last_error());
        losses[step] = vkg_item(loss);
        vkg_scope_end();
    }
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        cr_assert_eq(vkg_tensor_read(params[i], out_w + off, (size_t)vkg_numel(params[i]) * sizeof(float)), VKG_OK);
        off += (size_t)vkg_numel(params[i]);
    }
    vkg_optim_free(opt);
    vkg_module_free(m);
}

VKG_TEST(nn, training_is_bitwise_reproducible) {
    enum { NW = 8 * 16 + 16 + 16 * 4 + 4 };
    float w1[NW], w2[NW], l1[20], l2[20];
    train_run(w1, l1);
    train_run(w2, l2);
    cr_expect_eq(memcmp(w1, w2, sizeof w1), 0, "the parameters differ after 20 steps");
    cr_expect_eq(memcmp(l1, l2, sizeof l1), 0, "the losses differ");
    cr_expect(l1[19] < 0.8f * l1[0], "training did not reduce the loss: %g -> %g", (double)l1[0], (double)l1[19]);
}

/* ---- LayerNorm, Embedding, Dropout ------------------------------------------------------------ */
VKG_TEST(nn, layer_norm_and_dropout_layers) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 9 });
    vkg_layer_norm_layer *ln = vkg_layer_norm_new(m, "ln", &(vkg_layer_norm_desc){ .dim = 6 });
    vkg_dropout_layer *drop = vkg_dropout_new(m, "drop", &(vkg_dropout_desc){ .p = 0.25f });
    cr_assert(ln && drop, "%s", vkg_last_error());
    const char *const *names;
    cr_assert_eq(vkg_module_params(m, &names, NULL), 2);
    cr_expect_str_eq(names[0], "ln.weight");
    cr_expect_str_eq(names[1], "ln.bias");
    float *w = vkgt_read(ln->weight), *b = vkgt_read(ln->bias);
    for (int i = 0; i < 6; i++) cr_expect(w[i] == 1.0f && b[i] == 0.0f);
    free(w), free(b);
    vkg_scope_begin();
    /* LayerNorm with ones and zeros: each row to mean 0, biased variance 1 (less eps) */
    float xr[12];
    vkgt_fill(xr, 12, -3.0f, 3.0f, 10);
    float *yr = vkgt_read(vkg_layer_norm_forward(ln, vkg_from_data(VKG_SHAPE(2, 6), xr)));
    for (int r = 0; r < 2; r++) {
        double mean = 0, var = 0;
        for (int j = 0; j < 6; j++) mean += yr[r * 6 + j];
        mean /= 6;
        for (int j = 0; j < 6; j++) var += (yr[r * 6 + j] - mean) * (yr[r * 6 + j] - mean);
        cr_expect(fabs(mean) < 1e-6 && fabs(var / 6 - 1) < 1e-3, "row %d: mean %g var %g", r, mean, var / 6);
    }
    free(yr);
    /* dropout: kept values scaled by 1 / (1 - p), the rest 0; a new mask per call; eval: x */
    vkg_tensor *x = vkg_full(VKG_SHAPE(1000), 2.0f);
    float *d1 = vkgt_read(vkg_dropout_forward(drop, x)), *d2 = vkgt_read(vkg_dropout_forward(drop, x));
    int zeros = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert(d1[i] == 0.0f || fabsf(d1[i] - 2.0f / 0.75f) < 1e-6f, "dropout value %g", (double)d1[i]);
        zeros += d1[i] == 0.0f;
    }
    cr_expect(zeros > 200 && zeros < 300, "%d of 1000 dropped at p 0.25", zeros);
    cr_expect_neq(memcmp(d1, d2, 1000 * sizeof *d1), 0, "two calls gave the same mask");
    cr_expect_eq(drop->offset, 2000);
    vkg_dropout_layer_reset(drop, 0);
    float *d3 = vkgt_read(vkg_dropout_forward(drop, x));
    cr_expect_eq(memcmp(d1, d3, 1000 * sizeof *d1), 0, "the mask does not repeat from offset 0");
    vkg_module_train(m, false);
    float *d4 = vkgt_read(vkg_dropout_forward(drop, x));
    for (int i = 0; i < 1000; i++) cr_assert_eq(d4[i], 2.0f);
    free(d1), free(d2), free(d3), free(d4);
    vkg_scope_end();
    cr_expect_null(vkg_dropout_new(m, "d2", &(vkg_dropout_desc){ .p = 1.0f }));
    cr_expect_null(vkg_layer_norm_new(m, "ln2", &(vkg_layer_norm_desc){ .dim = 0 }));
    vkg_module_free(m);
}

/* ---- Embedding ---------------------------------------------------------------------------------- */
VKG_TEST(nn, embedding_layer) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 9 });
    vkg_embedding_layer *emb = vkg_embedding_new(m, "embed", &(vkg_embedding_desc){ .num = 100, .dim = 40 });
    cr_assert_not_null(emb, "%s", vkg_last_error());
    const char *const *names;
    cr_assert_eq(vkg_module_params(m, &names, NULL), 1);
    cr_expect_str_eq(names[0], "embed.weight");
    /* N(0, 1), from the parameter's seed */
    float *e = vkgt_read(emb->weight), *ref = malloc(4000 * sizeof *ref);
    vkg_ref_randn(ref, 4000, &(vkg_rand_desc){ .seed = vkg_module_param_seed(m, "embed.weight") });
    double mean = 0, var = 0;
    for (int i = 0; i < 4000; i++) {
        cr_assert(fabsf(e[i] - ref[i]) <= 1e-6f * (1 + fabsf(ref[i])), "embed %d", i);
        mean += e[i];
    }
    mean /= 4000;
    for (int i = 0; i < 4000; i++) var += (e[i] - mean) * (e[i] - mean);
    var /= 4000;
    cr_expect(fabs(mean) < 0.08 && fabs(var - 1) < 0.1, "mean %g var %g", mean, var);
    vkg_scope_begin();
    int32_t idx[6] = { 3, 99, 0, 3, 50, 7 };
    vkg_tensor *y = vkg_embedding_forward(emb, vkg_from_data_dtype(VKG_SHAPE(2, 3), VKG_I32, idx));
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_expect(vkg_ndim(y) == 3 && vkg_dim(y, 0) == 2 && vkg_dim(y, 1) == 3 && vkg_dim(y, 2) == 40);
    float *yv = vkgt_read(y);
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 40; j++) cr_assert_eq(yv[r * 40 + j], e[idx[r] * 40 + j]);
    free(yv);
    vkg_scope_end();
    free(e), free(ref);
    cr_expect_null(vkg_embedding_new(m, "e2", &(vkg_embedding_desc){ .num = 0, .dim = 3 }));
    vkg_module_free(m);
}

/* tokens -> Embedding -> LayerNorm -> Linear -> tanh -> Linear -> mse */
enum { EB = 3, ET = 4, EV = 11, ED = 6, EH = 5, EO = 2 };
typedef struct emb_net {
    int32_t tok[EB * ET];
    double *emb, *lnw, *lnb, *w1, *b1, *w2, *b2;
    double target[EB * ET * EO];
} emb_net;

static double emb_loss(void *ctx) {
    emb_net *n = ctx;
    enum { M = EB * ET };
    double x[M * ED], h[M * EH], y[M * EO];
    for (int r = 0; r < M; r++) {
        const double *e = n->emb + n->tok[r] * ED;
        double mean = 0, var = 0;
        for (int j = 0; j < ED; j++) mean += e[j];
        mean /= ED;
        for (int j = 0; j < ED; j++) var += (e[j] - mean) * (e[j] - mean);
        var /= ED; /* biased, as layer_norm */
        for (int j = 0; j < ED; j++) x[r * ED + j] = (e[j] - mean) / sqrt(var + 1e-5) * n->lnw[j] + n->lnb[j];
    }
    linear_d(h, x, n->w1, n->b1, M, ED, EH);
    for (int i = 0; i < M * EH; i++) h[i] = tanh(h[i]);
    linear_d(y, h, n->w2, n->b2, M, EH, EO);
    return mse_d(y, n->target, M * EO);
}

VKG_TEST(nn, embedding_layer_norm_network_gradients) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 31 });
    vkg_embedding_layer *emb = vkg_embedding_new(m, "embed", &(vkg_embedding_desc){ .num = EV, .dim = ED });
    vkg_layer_norm_layer *ln = vkg_layer_norm_new(m, "ln", &(vkg_layer_norm_desc){ .dim = ED });
    vkg_linear *fc1 = vkg_linear_new(m, "fc1", &(vkg_linear_desc){ .in = ED, .out = EH });
    vkg_linear *fc2 = vkg_linear_new(m, "fc2", &(vkg_linear_desc){ .in = EH, .out = EO });
    cr_assert(emb && ln && fc1 && fc2, "%s", vkg_last_error());
    emb_net n;
    float tf[EB * ET * EO], lw[ED], lb[ED];
    for (int i = 0; i < EB * ET; i++) n.tok[i] = (i * 7 + 3) % EV; /* token 3 repeats: accumulation */
    vkgt_fill(tf, EB * ET * EO, -1.0f, 1.0f, 33);
    for (int i = 0; i < EB * ET * EO; i++) n.target[i] = tf[i];
    /* LayerNorm's weight and bias away from 1 and 0, so that their gradients are not special */
    vkgt_fill(lw, ED, 0.5f, 1.5f, 34);
    vkgt_fill(lb, ED, -0.5f, 0.5f, 35);
    cr_assert_eq(vkg_tensor_write(ln->weight, lw, sizeof lw), VKG_OK);
    cr_assert_eq(vkg_tensor_write(ln->bias, lb, sizeof lb), VKG_OK);
    n.emb = dup_d(emb->weight), n.lnw = dup_d(ln->weight), n.lnb = dup_d(ln->bias);
    n.w1 = dup_d(fc1->weight), n.b1 = dup_d(fc1->bias), n.w2 = dup_d(fc2->weight), n.b2 = dup_d(fc2->bias);
    vkg_scope_begin();
    vkg_tensor *tok = vkg_from_data_dtype(VKG_SHAPE(EB, ET), VKG_I32, n.tok);
    vkg_tensor *h = vkg_tanh(vkg_linear_forward(fc1, vkg_layer_norm_forward(ln, vkg_embedding_forward(emb, tok))));
    vkg_tensor *y = vkg_linear_forward(fc2, h);
    vkg_tensor *loss = vkg_mean_all(vkg_pow(vkg_sub(y, vkg_from_data(VKG_SHAPE(EB, ET, EO), tf)), 2.0f));
    cr_assert_not_null(loss, "%s", vkg_last_error());
    double want = emb_loss(&n);
    cr_expect(fabs(vkg_item(loss) - want) <= 1e-5 * want, "loss %.9g, want %.9g", (double)vkg_item(loss), want);
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    check_fd_fn(emb_loss, &n, n.emb, emb->weight, "embed.weight");
    check_fd_fn(emb_loss, &n, n.lnw, ln->weight, "ln.weight");
    check_fd_fn(emb_loss, &n, n.lnb, ln->bias, "ln.bias");
    check_fd_fn(emb_loss, &n, n.w1, fc1->weight, "fc1.weight");
    check_fd_fn(emb_loss, &n, n.b1, fc1->bias, "fc1.bias");
    check_fd_fn(emb_loss, &n, n.w2, fc2->weight, "fc2.weight");
    check_fd_fn(emb_loss, &n, n.b2, fc2->bias, "fc2.bias");
    free(n.emb), free(n.lnw), free(n.lnb), free(n.w1), free(n.b1), free(n.w2), free(n.b2);
    vkg_module_free(m);
}

/* ---- Conv2d -> tanh -> BatchNorm2d (train) -> MaxPool2d -> AvgPool2d -> Linear ------------------ */
enum { CN = 2, CI = 2, CH = 6, CW = 5, CO = 3, CK = 3, PH = 3, PW = 2, FO = 2 };
/* conv: stride 1, padding 1 -> (CN, CO, 6, 5); maxpool 2x2 stride 2 -> (CN, CO, 3, 2);
 * avgpool kernel (1, 2) stride 1 -> (CN, CO, 3, 1); flatten (CN, 9) -> Linear(9, FO) */
typedef struct conv_net {
    double x[CN * CI * CH * CW], target[CN * FO];
    double *cw, *cb, *bw, *bb, *fw, *fb;
    double run_mean[CO], run_var[CO];  /* what one training forward leaves in the buffers */
} conv_net;

static double conv_loss(void *ctx) {
    conv_net *n = ctx;
    static double c[CN][CO][CH][CW];
    for (int b = 0; b < CN; b++)
        for (int o = 0; o < CO; o++)
            for (int i = 0; i < CH; i++)
                for (int j = 0; j < CW; j++) {
                    double s = n->cb[o];
                    for (int ci = 0; ci < CI; ci++)
                        for (int ki = 0; ki < CK; ki++)
                            for (int kj = 0; kj < CK; kj++) {
                                int y = i + ki - 1, x = j + kj - 1;
                                if (y < 0 || y >= CH || x < 0 || x >= CW) continue;
                                s += n->x[((b * CI + ci) * CH + y) * CW + x] * n->cw[((o * CI + ci) * CK + ki) * CK + kj];
                            }
                    c[b][o][i][j] = tanh(s);
                }
    const double cnt = CN * CH * CW;
    for (int o = 0; o < CO; o++) { /* batch statistics, biased variance for normalising */
        double mean = 0, var = 0;
        for (int b = 0; b < CN; b++)
            for (int i = 0; i < CH; i++)
                for (int j = 0; j < CW; j++) mean += c[b][o][i][j];
        mean /= cnt;
        for (int b = 0; b < CN; b++)
            for (int i = 0; i < CH; i++)
                for (int j = 0; j < CW; j++) var += (c[b][o][i][j] - mean) * (c[b][o][i][j] - mean);
        n->run_mean[o] = 0.9 * 0 + 0.1 * mean;
        n->run_var[o] = 0.9 * 1 + 0.1 * var / (cnt - 1); /* the running variance is unbiased */
        var /= cnt;
        for (int b = 0; b < CN; b++)
            for (int i = 0; i < CH; i++)
                for (int j = 0; j < CW; j++)
                    c[b][o][i][j] = (c[b][o][i][j] - mean) / sqrt(var + 1e-5) * n->bw[o] + n->bb[o];
    }
    double flat[CN * CO * PH], y[CN * FO];
    for (int b = 0; b < CN; b++)
        for (int o = 0; o < CO; o++)
            for (int i = 0; i < PH; i++) {
                double mp[PW];
                for (int j = 0; j < PW; j++) {
                    double mx = -INFINITY;
                    for (int a = 0; a < 2; a++)
                        for (int d = 0; d < 2; d++) mx = fmax(mx, c[b][o][2 * i + a][2 * j + d]);
                    mp[j] = mx;
                }
                flat[(b * CO + o) * PH + i] = 0.5 * (mp[0] + mp[1]);
            }
    linear_d(y, flat, n->fw, n->fb, CN, CO * PH, FO);
    return mse_d(y, n->target, CN * FO);
}

VKG_TEST(nn, conv_network_gradients_and_batch_norm_buffers) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 41 });
    vkg_conv2d_layer *conv = vkg_conv2d_new(m, "conv1", &(vkg_conv2d_layer_desc){ .in = CI, .out = CO, .kernel = { CK, CK },
                                                                                 .conv = { .padding = { 1, 1 } } });
    vkg_batch_norm2d_layer *bn = vkg_batch_norm2d_new(m, "bn1", &(vkg_batch_norm2d_desc){ .channels = CO });
    vkg_pool2d_layer *mp = vkg_max_pool2d_new(m, "pool", &(vkg_pool2d_desc){ .kernel = { 2, 2 } });
    vkg_pool2d_layer *ap = vkg_avg_pool2d_new(m, "avg", &(vkg_pool2d_desc){ .kernel = { 1, 2 }, .stride = { 1, 1 } });
    vkg_linear *fc = vkg_linear_new(m, "fc", &(vkg_linear_desc){ .in = CO * PH, .out = FO });
    cr_assert(conv && bn && mp && ap && fc, "%s", vkg_last_error());
    const char *const *names;
    cr_assert_eq(vkg_module_params(m, &names, NULL), 6);
    const char *want_names[] = { "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias" };
    for (int i = 0; i < 6; i++) cr_expect_str_eq(names[i], want_names[i]);
    cr_assert_eq(vkg_module_buffers(m, &names, NULL), 3);
    cr_expect_str_eq(names[0], "bn1.running_mean");
    cr_expect_str_eq(names[1], "bn1.running_var");
    cr_expect_str_eq(names[2], "bn1.num_batches_tracked");
    cr_expect_eq(vkg_dim(conv->weight, 1), CI);
    cr_expect_eq(vkg_dim(conv->weight, 3), CK);
    float *cwv = vkgt_read(conv->weight);
    double bound = 1.0 / sqrt(CI * CK * CK); /* fan_in = in * kh * kw */
    for (int i = 0; i < CO * CI * CK * CK; i++) cr_assert(fabs(cwv[i]) <= bound);
    free(cwv);
    conv_net n;
    float xf[CN * CI * CH * CW], tf[CN * FO], bw[CO], bb[CO];
    vkgt_fill(xf, CN * CI * CH * CW, -1.5f, 1.5f, 42);
    vkgt_fill(tf, CN * FO, -1.0f, 1.0f, 43);
    vkgt_fill(bw, CO, 0.5f, 1.5f, 44);
    vkgt_fill(bb, CO, -0.5f, 0.5f, 45);
    cr_assert_eq(vkg_tensor_write(bn->weight, bw, sizeof bw), VKG_OK);
    cr_assert_eq(vkg_tensor_write(bn->bias, bb, sizeof bb), VKG_OK);
    for (int i = 0; i < CN * CI * CH * CW; i++) n.x[i] = xf[i];
    for (int i = 0; i < CN * FO; i++) n.target[i] = tf[i];
    n.cw = dup_d(conv->weight), n.cb = dup_d(conv->bias), n.bw = dup_d(bn->weight), n.bb = dup_d(bn->bias);
    n.fw = dup_d(fc->weight), n.fb = dup_d(fc->bias);
    vkg_scope_begin();
    vkg_tensor *h = vkg_batch_norm2d_forward(bn, vkg_tanh(vkg_conv2d_forward(conv, vkg_from_data(VKG_SHAPE(CN, CI, CH, CW), xf))));
    h = vkg_pool2d_forward(ap, vkg_pool2d_forward(mp, h));
    cr_assert_not_null(h, "%s", vkg_last_error());
    cr_expect(vkg_dim(h, 2) == PH && vkg_dim(h, 3) == 1, "pooled to (%lld, %lld)", (long long)vkg_dim(h, 2),
              (long long)vkg_dim(h, 3));
    vkg_tensor *y = vkg_linear_forward(fc, vkg_reshape(h, VKG_SHAPE(CN, CO * PH)));
    vkg_tensor *loss = vkg_mean_all(vkg_pow(vkg_sub(y, vkg_from_data(VKG_SHAPE(CN, FO), tf)), 2.0f));
    cr_assert_not_null(loss, "%s", vkg_last_error());
    double want = conv_loss(&n);
    cr_expect(fabs(vkg_item(loss) - want) <= 1e-5 * want, "loss %.9g, want %.9g", (double)vkg_item(loss), want);
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    /* the buffers after one training batch */
    float *rm = vkgt_read(bn->running_mean), *rv = vkgt_read(bn->running_var);
    for (int o = 0; o < CO; o++) {
        cr_expect(fabs(rm[o] - n.run_mean[o]) <= 1e-5, "running_mean[%d] %g want %g", o, (double)rm[o], n.run_mean[o]);
        cr_expect(fabs(rv[o] - n.run_var[o]) <= 1e-5, "running_var[%d] %g want %g", o, (double)rv[o], n.run_var[o]);
    }
    free(rm), free(rv);
    int32_t nbt = -1;
    cr_expect_eq(vkg_tensor_read(bn->num_batches_tracked, &nbt, sizeof nbt), VKG_OK);
    cr_expect_eq(nbt, 1);
    check_fd_fn(conv_loss, &n, n.cw, conv->weight, "conv1.weight");
    check_fd_fn(conv_loss, &n, n.cb, conv->bias, "conv1.bias");
    check_fd_fn(conv_loss, &n, n.bw, bn->weight, "bn1.weight");
    check_fd_fn(conv_loss, &n, n.bb, bn->bias, "bn1.bias");
    check_fd_fn(conv_loss, &n, n.fw, fc->weight, "fc.weight");
    check_fd_fn(conv_loss, &n, n.fb, fc->bias, "fc.bias");
    /* evaluation: normalised with the running statistics, buffers unchanged */
    vkg_module_train(m, false);
    vkg_scope_begin();
    float ones[CN * CO * 2 * 2];
    for (int i = 0; i < CN * CO * 4; i++) ones[i] = 1.0f;
    float *e = vkgt_read(vkg_batch_norm2d_forward(bn, vkg_from_data(VKG_SHAPE(CN, CO, 2, 2), ones)));
    for (int o = 0; o < CO; o++) {
        double w = bw[o] * (1.0 - n.run_mean[o]) / sqrt(n.run_var[o] + 1e-5) + bb[o];
        cr_expect(fabs(e[o * 4] - w) <= 1e-5 * (1 + fabs(w)), "eval channel %d: %g want %g", o, (double)e[o * 4], w);
    }
    free(e);
    vkg_scope_end();
    cr_expect_eq(vkg_tensor_read(bn->num_batches_tracked, &nbt, sizeof nbt), VKG_OK);
    cr_expect_eq(nbt, 1);
    /* a count loaded into a fresh layer (a checkpoint) continues */
    vkg_batch_norm2d_layer *bn2 = vkg_batch_norm2d_new(m, "bn2", &(vkg_batch_norm2d_desc){ .channels = CO });
    cr_assert_not_null(bn2, "%s", vkg_last_error());
    int32_t loaded = 41;
    cr_assert_eq(vkg_tensor_write(bn2->num_batches_tracked, &loaded, sizeof loaded), VKG_OK);
    vkg_module_train(m, true);
    vkg_scope_begin();
    cr_assert_not_null(vkg_batch_norm2d_forward(bn2, vkg_from_data(VKG_SHAPE(CN, CO, 2, 2), ones)), "%s", vkg_last_error());
    vkg_scope_end();
    cr_expect_eq(vkg_tensor_read(bn2->num_batches_tracked, &nbt, sizeof nbt), VKG_OK);
    cr_expect_eq(nbt, 42);
    free(n.cw), free(n.cb), free(n.bw), free(n.bb), free(n.fw), free(n.fb);
    vkg_module_free(m);
}

/* ---- LSTM: two layers over three steps, initial state given ---------------------------------- */
enum { LB = 2, LT = 3, LI = 3, LH = 4, LL = 2 };
typedef struct lstm_net {
    double x[LB * LT * LI], target[LB * LT * LH], ctarget[LL * LB * LH];
    double *h0, *c0, *w_ih[LL], *w_hh[LL], *b_ih[LL], *b_hh[LL];
} lstm_net;

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* out (B, T, H) of the last layer and c_n (L, B, H); loss = mse(out, target) + mse(c_n, ctarget) */
static double lstm_loss(void *ctx) {
    lstm_net *n = ctx;
    double in[LB * LT * LH], out[LB * LT * LH], cn[LL * LB * LH];
    int in_size = LI;
    memcpy(in, n->x, sizeof n->x);
    for (int k = 0; k < LL; k++) {
        double h[LB * LH], c[LB * LH];
        memcpy(h, n->h0 + k * LB * LH, sizeof h);
        memcpy(c, n->c0 + k * LB * LH, sizeof c);
        for (int t = 0; t < LT; t++) {
            double hn[LB * LH], cnew[LB * LH];
            for (int b = 0; b < LB; b++) {
                double gate[4 * LH];
                for (int r = 0; r < 4 * LH; r++) {
                    double s = n->b_ih[k][r] + n->b_hh[k][r];
                    for (int i = 0; i < in_size; i++) s += in[(b * LT + t) * in_size + i] * n->w_ih[k][r * in_size + i];
                    for (int j = 0; j < LH; j++) s += h[b * LH + j] * n->w_hh[k][r * LH + j];
                    gate[r] = s;
                }
                for (int j = 0; j < LH; j++) { /* PyTorch's order: i, f, g, o */
                    double ig = sigm(gate[j]), fg = sigm(gate[LH + j]), gg = tanh(gate[2 * LH + j]),
                           og = sigm(gate[3 * LH + j]);
                    cnew[b * LH + j] = fg * c[b * LH + j] + ig * gg;
                    hn[b * LH + j] = og * tanh(cnew[b * LH + j]);
                    out[(b * LT + t) * LH + j] = hn[b * LH + j];
                }
            }
            memcpy(h, hn, sizeof h);
            memcpy(c, cnew, sizeof c);
        }
        memcpy(cn + k * LB * LH, c, sizeof c);
        memcpy(in, out, sizeof out);
        in_size = LH;
    }
    return mse_d(out, n->target, LB * LT * LH) + mse_d(cn, n->ctarget, LL * LB * LH);
}

VKG_TEST(nn, lstm_shapes_and_gradients) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 51 });
    vkg_lstm_layer *lstm = vkg_lstm_new(m, "lstm", &(vkg_lstm_desc){ .input = LI, .hidden = LH, .layers = LL });
    cr_assert_not_null(lstm, "%s", vkg_last_error());
    const char *const *names;
    vkg_tensor *const *params;
    cr_assert_eq(vkg_module_params(m, &names, &params), 8);
    const char *want_names[] = { "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0",
                                 "lstm.weight_ih_l1", "lstm.weight_hh_l1", "lstm.bias_ih_l1", "lstm.bias_hh_l1" };
    for (int i = 0; i < 8; i++) {
        cr_expect_str_eq(names[i], want_names[i]);
        float *v = vkgt_read(params[i]); /* U(-1/sqrt(H), 1/sqrt(H)) */
        for (int64_t j = 0; j < vkg_numel(params[i]); j++) cr_assert(fabs(v[j]) <= 1.0 / sqrt(LH));
        free(v);
    }
    cr_expect_eq(vkg_dim(lstm->w_ih[0], 0), 4 * LH);
    cr_expect_eq(vkg_dim(lstm->w_ih[0], 1), LI);
    cr_expect_eq(vkg_dim(lstm->w_ih[1], 1), LH);
    lstm_net n;
    float xf[LB * LT * LI], tf[LB * LT * LH], ctf[LL * LB * LH], h0f[LL * LB * LH], c0f[LL * LB * LH];
    vkgt_fill(xf, LB * LT * LI, -1.0f, 1.0f, 52);
    vkgt_fill(tf, LB * LT * LH, -0.5f, 0.5f, 53);
    vkgt_fill(ctf, LL * LB * LH, -0.5f, 0.5f, 54);
    vkgt_fill(h0f, LL * LB * LH, -0.5f, 0.5f, 55);
    vkgt_fill(c0f, LL * LB * LH, -0.5f, 0.5f, 56);
    for (int i = 0; i < LB * LT * LI; i++) n.x[i] = xf[i];
    for (int i = 0; i < LB * LT * LH; i++) n.target[i] = tf[i];
    for (int i = 0; i < LL * LB * LH; i++) n.ctarget[i] = ctf[i];
    vkg_tensor *h0 = vkg_requires_grad(vkg_from_data(VKG_SHAPE(LL, LB, LH), h0f), true);
    vkg_tensor *c0 = vkg_requires_grad(vkg_from_data(VKG_SHAPE(LL, LB, LH), c0f), true);
    n.h0 = dup_d(h0), n.c0 = dup_d(c0);
    for (int k = 0; k < LL; k++) {
        n.w_ih[k] = dup_d(lstm->w_ih[k]), n.w_hh[k] = dup_d(lstm->w_hh[k]);
        n.b_ih[k] = dup_d(lstm->b_ih[k]), n.b_hh[k] = dup_d(lstm->b_hh[k]);
    }
    vkg_scope_begin();
    vkg_tensor *out, *hn, *cn;
    cr_assert_eq(vkg_lstm_forward(lstm, vkg_from_data(VKG_SHAPE(LB, LT, LI), xf), h0, c0, &out, &hn, &cn), VKG_OK, "%s",
                 vkg_last_error());
    cr_expect(vkg_ndim(out) == 3 && vkg_dim(out, 0) == LB && vkg_dim(out, 1) == LT && vkg_dim(out, 2) == LH);
    cr_expect(vkg_ndim(hn) == 3 && vkg_dim(hn, 0) == LL && vkg_dim(hn, 1) == LB && vkg_dim(hn, 2) == LH);
    /* the last step of out is the last layer's h_n */
    float *o = vkgt_read(out), *hv = vkgt_read(hn);
    for (int b = 0; b < LB; b++)
        for (int j = 0; j < LH; j++)
            cr_expect_eq(o[(b * LT + LT - 1) * LH + j], hv[((LL - 1) * LB + b) * LH + j]);
    free(o), free(hv);
    vkg_tensor *loss = vkg_add(vkg_mean_all(vkg_pow(vkg_sub(out, vkg_from_data(VKG_SHAPE(LB, LT, LH), tf)), 2.0f)),
                               vkg_mean_all(vkg_pow(vkg_sub(cn, vkg_from_data(VKG_SHAPE(LL, LB, LH), ctf)), 2.0f)));
    cr_assert_not_null(loss, "%s", vkg_last_error());
    double want = lstm_loss(&n);
    cr_expect(fabs(vkg_item(loss) - want) <= 1e-5 * want, "loss %.9g, want %.9g", (double)vkg_item(loss), want);
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    /* without an initial state and with only out wanted */
    vkg_tensor *out2;
    cr_assert_eq(vkg_lstm_forward(lstm, vkg_zeros(VKG_SHAPE(1, 2, LI)), NULL, NULL, &out2, NULL, NULL), VKG_OK);
    cr_expect(vkg_dim(out2, 0) == 1 && vkg_dim(out2, 1) == 2 && vkg_dim(out2, 2) == LH);
    cr_expect_neq(vkg_lstm_forward(lstm, vkg_zeros(VKG_SHAPE(1, 2, LI + 1)), NULL, NULL, &out2, NULL, NULL), VKG_OK);
    cr_expect_null(out2);
    cr_expect(strstr(vkg_last_error(), "(1, 2, 4)"), "%s", vkg_last_error());
    cr_expect_neq(vkg_lstm_forward(lstm, vkg_zeros(VKG_SHAPE(1, 2, LI)), vkg_zeros(VKG_SHAPE(1, 1, LH)), NULL, &out2,
                                   NULL, NULL), VKG_OK);
    vkg_scope_end();
    for (int k = 0; k < LL; k++) {
        char b[64];
        snprintf(b, sizeof b, "weight_ih_l%d", k);
        check_fd_fn(lstm_loss, &n, n.w_ih[k], lstm->w_ih[k], b);
        snprintf(b, sizeof b, "weight_hh_l%d", k);
        check_fd_fn(lstm_loss, &n, n.w_hh[k], lstm->w_hh[k], b);
        snprintf(b, sizeof b, "bias_ih_l%d", k);
        check_fd_fn(lstm_loss, &n, n.b_ih[k], lstm->b_ih[k], b);
        snprintf(b, sizeof b, "bias_hh_l%d", k);
        check_fd_fn(lstm_loss, &n, n.b_hh[k], lstm->b_hh[k], b);
    }
    check_fd_fn(lstm_loss, &n, n.h0, h0, "h0");
    check_fd_fn(lstm_loss, &n, n.c0, c0, "c0");
    free(n.h0), free(n.c0);
    for (int k = 0; k < LL; k++) free(n.w_ih[k]), free(n.w_hh[k]), free(n.b_ih[k]), free(n.b_hh[k]);
    vkg_free(h0);
    vkg_free(c0);
    vkg_module_free(m);
}

/* ---- MultiHeadAttention: causal self-attention ------------------------------------------------ */
enum { AB = 2, AT = 4, AE = 6, AHD = 2 };
typedef struct mha_net {
    double x[AB * AT * AE], target[AB * AT * AE];
    double *win, *bin, *wout, *bout;
} mha_net;

static void mha_forward_d(const mha_net *n, double *y) {
    enum { M = AB * AT, DH = AE / AHD };
    double q[M * AE], k[M * AE], v[M * AE], o[M * AE];
    linear_d(q, n->x, n->win, n->bin, M, AE, AE);
    linear_d(k, n->x, n->win + AE * AE, n->bin + AE, M, AE, AE);
    linear_d(v, n->x, n->win + 2 * AE * AE, n->bin + 2 * AE, M, AE, AE);
    for (int b = 0; b < AB; b++)
        for (int h = 0; h < AHD; h++)
            for (int t = 0; t < AT; t++) {
                double s[AT], mx = -INFINITY, z = 0;
                for (int u = 0; u <= t; u++) { /* causal: keys u <= t */
                    s[u] = 0;
                    for (int d = 0; d < DH; d++) s[u] += q[(b * AT + t) * AE + h * DH + d] * k[(b * AT + u) * AE + h * DH + d];
                    s[u] /= sqrt((double)DH);
                    mx = fmax(mx, s[u]);
                }
                for (int u = 0; u <= t; u++) z += exp(s[u] - mx);
                for (int d = 0; d < DH; d++) {
                    double acc = 0;
                    for (int u = 0; u <= t; u++) acc += exp(s[u] - mx) / z * v[(b * AT + u) * AE + h * DH + d];
                    o[(b * AT + t) * AE + h * DH + d] = acc;
                }
            }
    linear_d(y, o, n->wout, n->bout, M, AE, AE);
}

static double mha_loss(void *ctx) {
    mha_net *n = ctx;
    double y[AB * AT * AE];
    mha_forward_d(n, y);
    return mse_d(y, n->target, AB * AT * AE);
}

VKG_TEST(nn, multi_head_attention_shapes_and_gradients) {
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 61 });
    vkg_mha_layer *attn = vkg_mha_new(m, "attn", &(vkg_mha_desc){ .embed = AE, .heads = AHD, .causal = true });
    cr_assert_not_null(attn, "%s", vkg_last_error());
    const char *const *names;
    vkg_tensor *const *params;
    cr_assert_eq(vkg_module_params(m, &names, &params), 4);
    const char *want_names[] = { "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias" };
    for (int i = 0; i < 4; i++) cr_expect_str_eq(names[i], want_names[i]);
    float *w = vkgt_read(attn->in_proj_weight);
    for (int i = 0; i < 3 * AE * AE; i++) cr_assert(fabs(w[i]) <= sqrt(6.0 / (4 * AE)));
    free(w);
    float *bz = vkgt_read(attn->in_proj_bias);
    for (int i = 0; i < 3 * AE; i++) cr_assert_eq(bz[i], 0.0f);
    free(bz);
    /* biases away from their zero init, so their gradients are checked at a general point */
    float bin[3 * AE], bout[AE], xf[AB * AT * AE], tf[AB * AT * AE];
    vkgt_fill(bin, 3 * AE, -0.3f, 0.3f, 62);
    vkgt_fill(bout, AE, -0.3f, 0.3f, 63);
    vkgt_fill(xf, AB * AT * AE, -1.0f, 1.0f, 64);
    vkgt_fill(tf, AB * AT * AE, -0.5f, 0.5f, 65);
    cr_assert_eq(vkg_tensor_write(attn->in_proj_bias, bin, sizeof bin), VKG_OK);
    cr_assert_eq(vkg_tensor_write(attn->out_proj.bias, bout, sizeof bout), VKG_OK);
    mha_net n;
    for (int i = 0; i < AB * AT * AE; i++) n.x[i] = xf[i], n.target[i] = tf[i];
    n.win = dup_d(attn->in_proj_weight), n.bin = dup_d(attn->in_proj_bias);
    n.wout = dup_d(attn->out_proj.weight), n.bout = dup_d(attn->out_proj.bias);
    vkg_scope_begin();
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(AB, AT, AE), xf);
    vkg_tensor *y = vkg_mha_forward(attn, x, NULL, NULL, NULL);
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_expect(vkg_ndim(y) == 3 && vkg_dim(y, 1) == AT && vkg_dim(y, 2) == AE);
    vkg_tensor *loss = vkg_mean_all(vkg_pow(vkg_sub(y, vkg_from_data(VKG_SHAPE(AB, AT, AE), tf)), 2.0f));
    double want = mha_loss(&n);
    cr_expect(fabs(vkg_item(loss) - want) <= 1e-5 * want, "loss %.9g, want %.9g", (double)vkg_item(loss), want);
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    /* causal: changing the last token leaves the outputs before it as they were */
    float *y1 = vkgt_read(y), x2[AB * AT * AE];
    memcpy(x2, xf, sizeof x2);
    for (int b = 0; b < AB; b++)
        for (int e = 0; e < AE; e++) x2[(b * AT + AT - 1) * AE + e] += 1.0f;
    vkg_no_grad_begin();
    float *y2 = vkgt_read(vkg_mha_forward(attn, vkg_from_data(VKG_SHAPE(AB, AT, AE), x2), NULL, NULL, NULL));
    vkg_no_grad_end();
    for (int b = 0; b < AB; b++)
        for (int t = 0; t < AT; t++)
            for (int e = 0; e < AE; e++) {
                int i = (b * AT + t) * AE + e;
                if (t < AT - 1) cr_expect(fabsf(y1[i] - y2[i]) <= 1e-6f, "output %d moved with a later token", i);
            }
    free(y1), free(y2);
    /* the general path (key and value other tensors) gives what the self-attention path gives */
    float *ys = vkgt_read(y), *yg = vkgt_read(vkg_mha_forward(attn, x, vkg_copy(x), vkg_copy(x), NULL));
    vkgt_assert_close(yg, ys, AB * AT * AE, 1e-5f, 1e-6f, "separate key and value");
    free(yg);
    /* the fused attention kernel's heads, copied side by side, give what the matmul path's
     * product writes side by side in place */
    setenv("VKG_ATTENTION_VARIANT", "fused", 1);
    float *yf = vkgt_read(vkg_mha_forward(attn, x, NULL, NULL, NULL));
    unsetenv("VKG_ATTENTION_VARIANT");
    vkgt_assert_close(yf, ys, AB * AT * AE, 1e-5f, 1e-6f, "fused attention kernel");
    /* the residual form (the output projection's kernel adds r) gives bitwise r + the output */
    vkg_tensor *ya = vkg_add(x, y), *yr = vkg_mha_forward_residual(attn, x, NULL, NULL, NULL, x);
    cr_assert_not_null(yr, "%s", vkg_last_error());
    float *va = vkgt_read(ya), *vr = vkgt_read(yr);
    for (int i = 0; i < AB * AT * AE; i++)
        cr_assert(va[i] == vr[i], "residual attention [%d]: %.9g, %.9g", i, va[i], vr[i]);
    free(va), free(vr);
    cr_expect_null(vkg_mha_forward_residual(attn, x, NULL, NULL, NULL, NULL));
    free(ys), free(yf);
    /* cross-attention over a key/value sequence of another length */
    vkg_tensor *kv = vkg_zeros(VKG_SHAPE(AB, 5, AE));
    vkg_mha_layer *cross = vkg_mha_new(m, "cross", &(vkg_mha_desc){ .embed = AE, .heads = 3 });
    cr_assert_not_null(cross, "%s", vkg_last_error());
    vkg_tensor *yc = vkg_mha_forward(cross, x, kv, kv, NULL);
    cr_assert_not_null(yc, "%s", vkg_last_error());
    cr_expect(vkg_dim(yc, 1) == AT && vkg_dim(yc, 2) == AE);
    cr_expect_null(vkg_mha_forward(cross, x, vkg_zeros(VKG_SHAPE(AB, 5, AE + 1)), NULL, NULL));
    vkg_scope_end();
    cr_expect_null(vkg_mha_new(m, "bad", &(vkg_mha_desc){ .embed = 7, .heads = 2 }));
    check_fd_fn(mha_loss, &n, n.win, attn->in_proj_weight, "attn.in_proj_weight");
    check_fd_fn(mha_loss, &n, n.bin, attn->in_proj_bias, "attn.in_proj_bias");
    check_fd_fn(mha_loss, &n, n.wout, attn->out_proj.weight, "attn.out_proj.weight");
    check_fd_fn(mha_loss, &n, n.bout, attn->out_proj.bias, "attn.out_proj.bias");
    free(n.win), free(n.bin), free(n.wout), free(n.bout);
    vkg_module_free(m);
}

/* vkg_module_amp: every layer that multiplies by weights uses them rounded to f16. Each layer's
 * forward with amp must give the same bits as its forward without amp after its weights were
 * rounded in place (the same kernels on the same values); and differ from the unrounded one. */
static float *forward_values(vkg_module *m, int which, void *layer, vkg_tensor *x, size_t *n) {
    vkg_tensor *y = NULL;
    switch (which) {
    case 0: y = vkg_linear_forward(layer, x); break;
    case 1: y = vkg_conv2d_forward(layer, x); break;
    case 2: cr_assert_eq(vkg_lstm_forward(layer, x, NULL, NULL, &y, NULL, NULL), VKG_OK, "%s", vkg_last_error()); break;
    case 3: y = vkg_mha_forward(layer, x, NULL, NULL, NULL); break;                 /* self-attention: one qkv product */
    default: y = vkg_mha_forward(layer, x, vkg_mul(x, vkg_full(VKG_SHAPE(1), 0.5f)), NULL, NULL); /* q, k, v apart */
    }
    (void)m;
    cr_assert_not_null(y, "%s", vkg_last_error());
    *n = (size_t)vkg_numel(y);
    return vkgt_read(y);
}

VKG_TEST(nn, amp_layers_use_f16_rounded_weights) {
    for (int which = 0; which < 5; which++) {
        vkg_scope_begin();
        vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 7 + (uint64_t)which });
        void *layer = NULL;
        vkg_tensor *x = NULL;
        float xs[2 * 3 * 6 * 5];
        vkgt_fill(xs, sizeof xs / sizeof *xs, -1.0f, 1.0f, 40 + (uint64_t)which);
        switch (which) {
        case 0: layer = vkg_linear_new(m, "fc", &(vkg_linear_desc){ .in = 5, .out = 7 }), x = vkg_from_data(VKG_SHAPE(4, 5), xs); break;
        case 1:
            layer = vkg_conv2d_new(m, "conv", &(vkg_conv2d_layer_desc){ .in = 3, .out = 4, .kernel = { 3, 3 }, .conv = { .padding = { 1, 1 } } });
            x = vkg_from_data(VKG_SHAPE(2, 3, 6, 5), xs);
            break;
        case 2: layer = vkg_lstm_new(m, "lstm", &(vkg_lstm_desc){ .input = 5, .hidden = 6 }), x = vkg_from_data(VKG_SHAPE(2, 3, 5), xs); break;
        default: layer = vkg_mha_new(m, "attn", &(vkg_mha_desc){ .embed = 8, .heads = 2 }), x = vkg_from_data(VKG_SHAPE(2, 3, 8), xs); break;
        }
        cr_assert_not_null(layer, "%s", vkg_last_error());
        size_t n;
        float *plain = forward_values(m, which, layer, x, &n);
        vkg_module_amp(m, true);
        cr_assert(vkg_module_amp_enabled(m));
        float *amp = forward_values(m, which, layer, x, &n);
        vkg_module_amp(m, false);
        const char *const *names;
        vkg_tensor *const *params;
        int np = vkg_module_params(m, &names, &params);
        for (int p = 0; p < np; p++) { /* every weight (not the biases) rounded in place */
            if (!strstr(names[p], "weight")) continue;
            size_t k = (size_t)vkg_numel(params[p]);
            float *w = vkgt_read(params[p]);
            for (size_t i = 0; i < k; i++) w[i] = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(w[i]));
            cr_assert_eq(vkg_tensor_write(params[p], w, k * sizeof *w), VKG_OK);
            free(w);
        }
        float *rounded = forward_values(m, which, layer, x, &n);
        cr_assert_eq(memcmp(amp, rounded, n * sizeof *amp), 0, "layer %d: amp forward is not the rounded weights' forward", which);
        cr_assert_neq(memcmp(amp, plain, n * sizeof *amp), 0, "layer %d: amp changed nothing", which);
        free(plain), free(amp), free(rounded);
        vkg_module_free(m);
        vkg_scope_end();
    }
}
