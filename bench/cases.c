/* vkgrad-bench's case table and the op and model cases' setup, one operation, and check: an
 * op's output against the C reference (vkgrad/reference.h), a model's loss against what an
 * untrained model must give and a few steps must lower. Each row is one case; an op or model
 * still to come is a row of kind VKGB_MISSING, listed as "not yet available". */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "models.h"
#include "vkgrad.h"
#include "vkgrad/graph.h"
#include "vkgrad/reference.h"

#define Q VKGB_QUICK
#define M VKGB_MICRO
#define MODELS VKGB_MODELS
#define ALL (-100) /* VKG_REF_ALL */

/* p[] per kind: MATMUL {batch (0: none), M, K, N}; UNARY {rows, cols}; BINARY {a rows, a cols,
 * b rows (0: b is 1-D), b cols}; REDUCE {rows, cols, axis or ALL}; COPY {rows, cols}: a
 * transposed view made contiguous; RANDN {n}; COPYBW {MiB}; DISPATCH {dispatches per submit};
 * CONV2D {N, C_in, H, W, C_out, k, pad} (k x k kernel, stride 1, bias); SOFTMAX, LAYER_NORM,
 * CROSS_ENTROPY {rows, cols} (over the last dim; layer norm with weight and bias; the loss's
 * mean over the rows); ATTENTION {B, heads, T, head dim, causal}; ADAM {parameters};
 * MODEL_TRAIN, MODEL_INFER {vkg_model_kind, batch, 1: the tiny test configuration}. */
const vkgb_case vkgb_cases[] = {
    /* peaks and launch costs: the roofline every other case is placed on */
    { "peak/fp32 fma", "peak", Q | M, VKGB_FMA32, 0, { 0 }, 0, NULL },
    { "peak/fp16 fma", "peak", Q | M, VKGB_FMA16, 0, { 0 }, 0, NULL },
    { "peak/copy 64MiB vec4", "peak", Q | M, VKGB_COPYBW, 0, { 64 }, 0, NULL },
    { "peak/copy 64MiB texel read", "peak", Q | M, VKGB_COPYBW, 0, { 64, 1 }, 0, NULL },
    { "launch/dispatch x500", "launch", Q | M, VKGB_DISPATCH, 0, { 500 }, 0, NULL },
    { "launch/submit round trip", "launch", Q | M, VKGB_ROUNDTRIP, 0, { 0 }, 0, NULL },
    /* host overhead (host.c): p {ops or batch, 0 chain vs raw Vulkan | 1 MLP graph replay vs eager} */
    { "host/eager chain 10000 adds vs raw Vulkan", "launch", M, VKGB_HOST, 0, { 10000, 0 }, 9, NULL },
    { "host/mlp replay vs eager step", "launch", M | MODELS, VKGB_HOST, 0, { 128, 1 }, 0, NULL },
    /* matmul: square sweep */
    { "matmul/64", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 64, 64, 64 }, 0, NULL },
    { "matmul/128", "matmul", M, VKGB_MATMUL, 0, { 0, 128, 128, 128 }, 0, NULL },
    { "matmul/256", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 256, 256, 256 }, 0, NULL },
    { "matmul/512", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 512, 512, 512 }, 0, NULL },
    { "matmul/1024", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 1024, 1024, 1024 }, 0, NULL },
    { "matmul/2048", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 2048, 2048 }, 5, NULL },
    { "matmul/4096", "matmul", M, VKGB_MATMUL, 0, { 0, 4096, 4096, 4096 }, 2, NULL },
    /* f16 operands, f32 product and sums: the tensor-core kernel where the device has one
     * (shaders/matmul_coopmat.comp), else the operands widened to f32 */
    { "matmul/f16 1024", "matmul", M, VKGB_MATMUL, 0, { 0, 1024, 1024, 1024, 1 }, 0, NULL },
    { "matmul/f16 4096", "matmul", M, VKGB_MATMUL, 0, { 0, 4096, 4096, 4096, 1 }, 2, NULL },
    /* matmul: the reference models' shapes (MLP on Fashion-MNIST; tiny transformer B=32, T=64,
     * d=128, 4 heads of 32, MLP 512, byte vocabulary 256) */
    { "matmul/mlp 128x784 @ 784x512", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 128, 784, 512 }, 0, NULL },
    { "matmul/mlp 128x512 @ 512x256", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 128, 512, 256 }, 0, NULL },
    { "matmul/mlp 128x256 @ 256x10", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 128, 256, 10 }, 0, NULL },
    { "matmul/gpt qkv 2048x128 @ 128x384", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 2048, 128, 384 }, 0, NULL },
    { "matmul/gpt scores 128x(64x32 @ 32x64)", "matmul", Q | M, VKGB_MATMUL, 0, { 128, 64, 32, 64 }, 0, NULL },
    { "matmul/gpt values 128x(64x64 @ 64x32)", "matmul", M, VKGB_MATMUL, 0, { 128, 64, 64, 32 }, 0, NULL },
    { "matmul/gpt proj 2048x128 @ 128x128", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 128, 128 }, 0, NULL },
    { "matmul/gpt mlp up 2048x128 @ 128x512", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 128, 512 }, 0, NULL },
    { "matmul/gpt mlp down 2048x512 @ 512x128", "matmul", M, VKGB_MATMUL, 0, { 0, 2048, 512, 128 }, 0, NULL },
    { "matmul/gpt logits 2048x128 @ 128x256", "matmul", Q | M, VKGB_MATMUL, 0, { 0, 2048, 128, 256 }, 0, NULL },
    /* elementwise and reductions at model sizes */
    { "elementwise/add bias 128x512 + 512", "elementwise", Q | M, VKGB_BINARY, VKG_OP_ADD, { 128, 512, 0, 512 }, 0, NULL },
    { "elementwise/add 2048x128 + 2048x128", "elementwise", M, VKGB_BINARY, VKG_OP_ADD, { 2048, 128, 2048, 128 }, 0, NULL },
    { "elementwise/mul 2048x512 * 2048x512", "elementwise", M, VKGB_BINARY, VKG_OP_MUL, { 2048, 512, 2048, 512 }, 0, NULL },
    { "elementwise/relu 128x512", "elementwise", Q | M, VKGB_UNARY, VKG_OP_RELU, { 128, 512 }, 0, NULL },
    { "elementwise/gelu 2048x512", "elementwise", Q | M, VKGB_UNARY, VKG_OP_GELU, { 2048, 512 }, 0, NULL },
    { "elementwise/exp 2048x256", "elementwise", M, VKGB_UNARY, VKG_OP_EXP, { 2048, 256 }, 0, NULL },
    { "elementwise/tanh 32x512", "elementwise", M, VKGB_UNARY, VKG_OP_TANH, { 32, 512 }, 0, NULL },
    { "elementwise/relu 4096x4096", "elementwise", M, VKGB_UNARY, VKG_OP_RELU, { 4096, 4096 }, 0, NULL },
    { "reduce/sum rows 2048x256", "reduce", Q | M, VKGB_REDUCE, VKG_OP_SUM, { 2048, 256, 1 }, 0, NULL },
    { "reduce/max rows 2048x256", "reduce", M, VKGB_REDUCE, VKG_OP_MAX, { 2048, 256, 1 }, 0, NULL },
    { "reduce/sum cols 128x512", "reduce", M, VKGB_REDUCE, VKG_OP_SUM, { 128, 512, 0 }, 0, NULL },
    { "reduce/argmax rows 128x10", "reduce", Q | M, VKGB_REDUCE, VKG_OP_ARGMAX, { 128, 10, 1 }, 0, NULL },
    { "reduce/mean all 1024x1024", "reduce", Q | M, VKGB_REDUCE, VKG_OP_MEAN, { 1024, 1024, ALL }, 0, NULL },
    { "memory/transpose copy 2048x128", "memory", Q | M, VKGB_COPY, 0, { 2048, 128 }, 0, NULL },
    { "memory/transpose copy 1024x1024", "memory", M, VKGB_COPY, 0, { 1024, 1024 }, 0, NULL },
    { "random/randn 1M", "random", Q | M, VKGB_RANDN, 0, { 1 << 20 }, 0, NULL },
    /* nn ops and the optimizer at the reference models' sizes: the CNN's two convolutions, the
     * transformer's softmax-sized rows, layer norm, attention and loss, Adam over 1M parameters */
    { "nn/conv2d cnn1 128x1x28x28 k3 c32", "nn", Q | M, VKGB_CONV2D, 0, { 128, 1, 28, 28, 32, 3, 1 }, 0, NULL },
    { "nn/conv2d cnn2 128x32x14x14 k3 c64", "nn", M, VKGB_CONV2D, 0, { 128, 32, 14, 14, 64, 3, 1 }, 0, NULL },
    { "nn/softmax 2048x256", "nn", Q | M, VKGB_SOFTMAX, 0, { 2048, 256 }, 0, NULL },
    { "nn/layer_norm 2048x128", "nn", Q | M, VKGB_LAYER_NORM, 0, { 2048, 128 }, 0, NULL },
    { "nn/attention 32x4x64x32", "nn", Q | M, VKGB_ATTENTION, 0, { 32, 4, 64, 32, 1 }, 0, NULL },
    { "nn/cross_entropy 2048x256", "nn", Q | M, VKGB_CROSS_ENTROPY, 0, { 2048, 256 }, 0, NULL },
    { "optim/adam step 1M params", "optim", Q | M, VKGB_ADAM, 0, { 1 << 20 }, 0, NULL },
    /* the reference models at their default configurations, on synthetic data of the real
     * shapes; batch as vkgrad-train's default. CNN and transformer steps take seconds on lavapipe:
     * 3 repetitions */
    { "model/mlp train step", "model", Q | MODELS, VKGB_MODEL_TRAIN, 0, { VKG_MODEL_MLP, 128 }, 0, NULL },
    { "model/mlp inference", "model", MODELS, VKGB_MODEL_INFER, 0, { VKG_MODEL_MLP, 128 }, 0, NULL },
    { "model/cnn train step", "model", MODELS, VKGB_MODEL_TRAIN, 0, { VKG_MODEL_CNN, 128 }, 3, NULL },
    { "model/cnn inference", "model", MODELS, VKGB_MODEL_INFER, 0, { VKG_MODEL_CNN, 128 }, 3, NULL },
    { "model/lstm train step", "model", MODELS, VKGB_MODEL_TRAIN, 0, { VKG_MODEL_LSTM, 32 }, 0, NULL },
    { "model/lstm inference", "model", MODELS, VKGB_MODEL_INFER, 0, { VKG_MODEL_LSTM, 32 }, 0, NULL },
    { "model/transformer train step", "model", MODELS, VKGB_MODEL_TRAIN, 0, { VKG_MODEL_GPT, 32 }, 3, NULL },
    { "model/transformer inference", "model", MODELS, VKGB_MODEL_INFER, 0, { VKG_MODEL_GPT, 32 }, 3, NULL },
};
const int vkgb_ncases = (int)(sizeof vkgb_cases / sizeof vkgb_cases[0]);

/* ---- op cases ------------------------------------------------------------------------------ */
static void fill(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) { /* splitmix64, like the tests */
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = lo + (hi - lo) * (float)((double)(z >> 11) / 9007199254740992.0);
    }
}

static vkg_tensor *upload(vkg_shape s, float lo, float hi, uint64_t seed, float **host) {
    size_t n = (size_t)vkg_shape_numel(s);
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) return NULL;
    fill(x, n, lo, hi, seed);
    vkg_tensor *t = vkg_keep(vkg_from_data(s, x));
    if (host) *host = x;
    else free(x);
    return t;
}

static bool setup_fail(char *why, size_t size, const char *what) {
    snprintf(why, size, "%s: %s", what, vkg_last_error()[0] ? vkg_last_error() : "out of host memory");
    return false;
}

/* Adam with torch.optim's defaults (lr 1e-3) on one parameter of n elements and a fixed gradient,
 * set once through autograd (d sum(p * g) / dp = g exactly) and reused by every step. The check
 * is the first step from zero state against the update rule in double (no reference.h entry:
 * tests/test_optim.c checks the optimizers the same way). */
static bool adam_setup(vkgb_inst *s, int64_t n, char *why, size_t whysize) {
    float *p0 = NULL, *g = NULL;
    bool ok = false;
    s->in[0] = upload(VKG_SHAPE(n), -1, 1, 18, &p0);
    s->in[1] = upload(VKG_SHAPE(n), -1, 1, 19, &g);
    s->ref = malloc((size_t)n * sizeof *s->ref);
    if (!s->in[0] || !s->in[1] || !s->ref) goto done;
    vkg_requires_grad(s->in[0], true);
    s->opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM });
    if (!s->opt || vkg_optim_add(s->opt, "p", s->in[0]) != VKG_OK) goto done;
    vkg_scope_begin();
    vkg_status st = vkg_backward(vkg_sum_all(vkg_mul(s->in[0], s->in[1])));
    vkg_scope_end();
    if (st != VKG_OK) goto done;
    vkg_optim_desc d = vkg_optim_get_desc(s->opt);
    for (int64_t i = 0; i < n; i++) { /* step 1: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected */
        double gi = g[i], m = (1 - d.beta1) * gi, v = (1 - d.beta2) * gi * gi;
        double mhat = m / (1 - d.beta1), vhat = v / (1 - d.beta2);
        s->ref[i] = (float)((double)p0[i] - d.lr * mhat / (sqrt(vhat) + d.eps));
    }
    s->in_place = true;
    s->nout = (size_t)n;
    s->flops = 13.0 * (double)n; /* per element in shaders/optim_step.comp: m 3, v 4, denominator 3, update 3 */
    s->bytes = 28.0 * (double)n; /* p, g, m, v read; p, m, v written */
    s->rtol = 1e-5, s->atol = 1e-6;  /* the update itself is 1e-3 */
    snprintf(s->shape, sizeof s->shape, "f32 (%lld,), Adam lr %g betas (%g, %g) eps %g, one dispatch", (long long)n, d.lr,
             d.beta1, d.beta2, d.eps);
    ok = true;
done:
    if (!ok) setup_fail(why, whysize, "Adam");
    free(p0);
    free(g);
    return ok;
}

/* ---- model cases --------------------------------------------------------------------------------
 * A reference model at its default configuration (seed 42) on one synthetic batch of the real
 * shapes: images in the normalised Fashion-MNIST pixel range with uniform labels, or random byte
 * sequences whose targets are the next bytes. Training uses vkgrad-train's optimizer for the
 * model (models/trainer.c: Adam 1e-3 for the MLP and CNN, AdamW 2e-3 without weight decay for
 * the LSTM, AdamW 1e-3 with weight decay 0.1 for the transformer). */
#define MODEL_CHECK_STEPS 3      /* training steps on the batch that must lower its loss       */
#define MODEL_INIT_TOL 0.25      /* |untrained loss - ln(classes)|, nats                      */

static bool model_setup(vkgb_inst *s, char *why, size_t whysize) {
    const vkgb_case *c = s->c;
    vkg_model_kind kind = (vkg_model_kind)c->p[0];
    int64_t B = c->p[1];
    bool test = c->p[2] != 0, train = c->kind == VKGB_MODEL_TRAIN;
    union { vkg_mlp_config mlp; vkg_cnn_config cnn; vkg_lstm_config lstm; vkg_gpt_config gpt; } cfg;
    vkg_optim_desc od = { .kind = VKG_OPTIM_ADAM, .lr = 1e-3 };
    switch (kind) {
    case VKG_MODEL_MLP: cfg.mlp = vkg_mlp_config_default(test); break;
    case VKG_MODEL_CNN: cfg.cnn = vkg_cnn_config_default(test); break;
    case VKG_MODEL_LSTM:
        cfg.lstm = vkg_lstm_config_default(test);
        od = (vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 2e-3, .weight_decay = VKG_OPTIM_ZERO };
        break;
    case VKG_MODEL_GPT:
        cfg.gpt = vkg_gpt_config_default(test);
        od = (vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.1 };
        break;
    default: snprintf(why, whysize, "no such model"); return false;
    }
    s->model = vkg_model_new(kind, &cfg, 42);
    if (!s->model) return setup_fail(why, whysize, "the model");
    bool lm = vkg_model_is_lm(s->model);
    int64_t T = vkg_model_context(s->model), n = lm ? B * T : B, classes = vkg_model_outputs(s->model);
    float *u = malloc((size_t)(B * (T + 1) + 1) * sizeof *u);
    int32_t *x = malloc((size_t)(n + 1) * sizeof *x), *y = malloc((size_t)(n + 1) * sizeof *y);
    if (u && x && y) {
        if (!lm) {
            s->in[0] = upload(VKG_SHAPE(B, 28, 28), -0.8f, 2.0f, 20, NULL);
            fill(u, (size_t)B, 0, (float)classes, 21);
            for (int64_t i = 0; i < B; i++) y[i] = (int32_t)u[i] < classes ? (int32_t)u[i] : (int32_t)(classes - 1);
        } else { /* B sequences of T + 1 bytes: x the first T, y the last T */
            fill(u, (size_t)(B * (T + 1)), 0, 256, 22);
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) {
                    x[b * T + t] = (int32_t)u[b * (T + 1) + t] & 255;
                    y[b * T + t] = (int32_t)u[b * (T + 1) + t + 1] & 255;
                }
            s->in[0] = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, x));
        }
        s->in[1] = vkg_keep(vkg_from_data_dtype(lm ? VKG_SHAPE(B, T) : VKG_SHAPE(B), VKG_I32, y));
    }
    free(u);
    free(x);
    free(y);
    if (!s->in[0] || !s->in[1]) return setup_fail(why, whysize, "the batch");
    if (train) {
        s->opt = vkg_optim_new(&od);
        if (!s->opt || vkg_optim_add_module(s->opt, vkg_model_module(s->model)) != VKG_OK)
            return setup_fail(why, whysize, "the optimizer");
    } else {
        vkg_module_train(vkg_model_module(s->model), false);
    }
    s->items = (double)n;
    s->items_unit = lm ? "tokens/s" : "samples/s";
    s->nout = (size_t)classes;
    int k = lm ? snprintf(s->shape, sizeof s->shape, "f32, batch %lld, seq %lld", (long long)B, (long long)T)
               : snprintf(s->shape, sizeof s->shape, "f32, batch %lld", (long long)B);
    if (test && k > 0 && (size_t)k < sizeof s->shape) snprintf(s->shape + k, sizeof s->shape - (size_t)k, ", test configuration");
    return true;
}

/* The loss on the case's batch, no gradients; NaN on error. */
static float model_loss(vkgb_inst *s) {
    vkg_no_grad_begin();
    vkg_scope_begin();
    float v = vkg_item(vkg_model_loss(s->model, s->in[0], s->in[1]));
    vkg_scope_end();
    vkg_no_grad_end();
    return v;
}

/* The model's logits on the batch (no gradients), read back: *spread is max - min over all of
 * them (NaN if one is not finite); returns their mean cross-entropy by the C reference, NaN on
 * error. */
static double model_reference_loss(vkgb_inst *s, double *spread) {
    double loss = NAN;
    *spread = NAN;
    vkg_no_grad_begin();
    vkg_scope_begin();
    vkg_tensor *logits = vkg_model_forward(s->model, s->in[0]);
    size_t n = logits ? (size_t)vkg_numel(logits) : 0, rows = (size_t)vkg_numel(s->in[1]);
    float *l = malloc((n ? n : 1) * sizeof *l);
    int32_t *y = malloc((rows ? rows : 1) * sizeof *y);
    if (logits && l && y && rows && n % rows == 0 && vkg_tensor_read(logits, l, n * sizeof *l) == VKG_OK &&
        vkg_tensor_read(s->in[1], y, rows * sizeof *y) == VKG_OK) {
        float lo = INFINITY, hi = -INFINITY;
        bool finite = true;
        for (size_t i = 0; i < n; i++) {
            finite &= isfinite(l[i]) != 0;
            lo = fminf(lo, l[i]);
            hi = fmaxf(hi, l[i]);
        }
        *spread = finite ? (double)hi - (double)lo : NAN;
        float ce;
        vkg_ref_cross_entropy(&ce, l, (int64_t)rows, (int64_t)(n / rows), y, VKG_REDUCTION_MEAN, -100);
        loss = ce;
    }
    free(l);
    free(y);
    vkg_scope_end();
    vkg_no_grad_end();
    return loss;
}

/* The untrained model's logits are finite and not all equal; the device's loss matches the C
 * reference's cross-entropy of those logits; it is about ln(classes) (PyTorch's default
 * initialisation gives small logits); training: MODEL_CHECK_STEPS steps on the batch lower it. */
static bool model_verify(vkgb_inst *s, bool corrupt, double *max_err, char *why, size_t whysize) {
    vkg_clear_error();
    double spread, ref = model_reference_loss(s, &spread);
    float loss0 = isnan(ref) ? NAN : model_loss(s), loss1 = loss0;
    bool train = s->c->kind == VKGB_MODEL_TRAIN;
    for (int i = 0; train && i < MODEL_CHECK_STEPS && !isnan(loss0); i++)
        if (!vkgb_inst_run(s)) loss1 = NAN;
    if (train && !isnan(loss1)) loss1 = model_loss(s);
    if ((isnan(loss0) || isnan(loss1)) && vkg_last_error()[0]) {
        snprintf(why, whysize, "running the model: %s", vkg_last_error());
        return false;
    }
    if (corrupt) { /* test switch: training that does not learn, or a broken forward */
        if (train) loss1 = loss0 + 1.0f;
        else loss0 = NAN;
    }
    if (train) snprintf(s->check_note, sizeof s->check_note, "check: loss %.3f, %.3f after %d steps", (double)loss0, (double)loss1, MODEL_CHECK_STEPS);
    else snprintf(s->check_note, sizeof s->check_note, "check: loss %.3f", (double)loss0);
    *max_err = INFINITY;
    if (!(spread > 0)) {
        snprintf(why, whysize, "wrong result: the untrained model's logits are %s", isnan(spread) ? "not all finite" : "all equal");
        return false;
    }
    if (!(fabs(loss0 - ref) <= 1e-4 * fabs(ref) + 1e-5)) {
        snprintf(why, whysize, "wrong result: the loss on the device is %.7g, the C reference's of its logits %.7g", (double)loss0,
                 ref);
        return false;
    }
    double want = log((double)s->nout);
    *max_err = fabs(loss0 - want) / MODEL_INIT_TOL;
    if (*max_err > 1.0) {
        snprintf(why, whysize, "wrong result: the untrained model's loss is %.6g, not ln(%zu) = %.4g within %.2g", (double)loss0,
                 s->nout, want, MODEL_INIT_TOL);
        return false;
    }
    if (train && !(loss1 < loss0)) {
        snprintf(why, whysize, "wrong result: %d training steps on one batch took its loss from %.6g to %.6g, not lower",
                 MODEL_CHECK_STEPS, (double)loss0, (double)loss1);
        *max_err = INFINITY;
        return false;
    }
    return true;
}

bool vkgb_inst_setup(vkgb_inst *s, const vkgb_case *c, char *why, size_t whysize) {
    memset(s, 0, sizeof *s);
    s->c = c;
    const int64_t *p = c->p;
    float *a = NULL, *b = NULL, *e = NULL; /* host copies of the inputs */
    bool ok = true;
    switch (c->kind) {
    case VKGB_MATMUL: {
        int64_t B = p[0], m = p[1], k = p[2], n = p[3];
        bool f16 = p[4] != 0;
        vkg_shape as = B ? VKG_SHAPE(B, m, k) : VKG_SHAPE(m, k), bs = B ? VKG_SHAPE(B, k, n) : VKG_SHAPE(k, n);
        s->in[0] = upload(as, -1, 1, 1, &a);
        s->in[1] = upload(bs, -1, 1, 2, &b);
        if (!s->in[0] || !s->in[1]) { ok = setup_fail(why, whysize, "inputs"); break; }
        int64_t nb = B ? B : 1;
        if (f16) { /* the f16 copies, and their values (exact in f32) for the reference */
            for (int i = 0; i < 2; i++) {
                vkg_tensor *h = vkg_keep(vkg_to_dtype(s->in[i], VKG_F16));
                vkg_free(s->in[i]);
                s->in[i] = h;
            }
            if (!s->in[0] || !s->in[1]) { ok = setup_fail(why, whysize, "f16 inputs"); break; }
            for (int64_t i = 0; i < nb * m * k; i++) a[i] = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(a[i]));
            for (int64_t i = 0; i < nb * k * n; i++) b[i] = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(b[i]));
        }
        s->nout = (size_t)(nb * m * n);
        s->flops = 2.0 * (double)nb * (double)m * (double)n * (double)k;
        s->bytes = (f16 ? 2.0 : 4.0) * (double)nb * (double)(m * k + k * n) + 4.0 * (double)(nb * m * n);
        s->rtol = 1e-3;
        s->atol = 1e-5 * (double)k;
        const char *dt = f16 ? "f16" : "f32";
        if (B) snprintf(s->shape, sizeof s->shape, "%s (%lld,%lld,%lld) @ (%lld,%lld,%lld)", dt, (long long)B,
                        (long long)m, (long long)k, (long long)B, (long long)k, (long long)n);
        else snprintf(s->shape, sizeof s->shape, "%s (%lld,%lld) @ (%lld,%lld)", dt, (long long)m, (long long)k,
                      (long long)k, (long long)n);
        if (!B && (double)m * (double)n * (double)k > (double)(1 << 27)) {
            /* a full double-precision reference of 4096^3 takes minutes: check 8 spread rows */
            s->nrows = 8;
            s->row_len = n;
            s->ref = malloc((size_t)(8 * n) * sizeof *s->ref);
            if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
            for (int r = 0; r < 8; r++) {
                s->rows[r] = (m - 1) * r / 7;
                vkg_ref_matmul(s->ref + r * n, a + s->rows[r] * k, VKG_SHAPE(1, k), b, VKG_SHAPE(k, n));
            }
        } else {
            s->ref = malloc(s->nout * sizeof *s->ref);
            if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
            vkg_ref_matmul(s->ref, a, as, b, bs);
        }
        break;
    }
    case VKGB_UNARY: {
        vkg_shape xs = VKG_SHAPE(p[0], p[1]);
        bool positive = c->op == VKG_OP_LOG || c->op == VKG_OP_SQRT || c->op == VKG_OP_RSQRT;
        s->in[0] = upload(xs, positive ? 0.1f : -4.0f, 4.0f, 3, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        s->nout = (size_t)(p[0] * p[1]);
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_unary((vkg_op)c->op, s->ref, a, s->nout, 0.0f);
        s->bytes = 8.0 * (double)s->nout;
        s->rtol = 1e-4, s->atol = 1e-5;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld)", (long long)p[0], (long long)p[1]);
        break;
    }
    case VKGB_BINARY: {
        vkg_shape as = VKG_SHAPE(p[0], p[1]), bs = p[2] ? VKG_SHAPE(p[2], p[3]) : VKG_SHAPE(p[3]), ys;
        s->in[0] = upload(as, -2, 2, 4, &a);
        s->in[1] = upload(bs, 0.5f, 2, 5, &b);
        if (!s->in[0] || !s->in[1] || !vkg_broadcast_shape(as, bs, &ys)) { ok = setup_fail(why, whysize, "inputs"); break; }
        s->nout = (size_t)vkg_shape_numel(ys);
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_binary((vkg_op)c->op, s->ref, ys, a, as, b, bs);
        s->bytes = 4.0 * (double)(vkg_shape_numel(as) + vkg_shape_numel(bs) + vkg_shape_numel(ys));
        s->rtol = 1e-5, s->atol = 1e-6;
        char x[64], y[64];
        snprintf(s->shape, sizeof s->shape, "f32 %s, %s", vkg_shape_str(as, x, sizeof x), vkg_shape_str(bs, y, sizeof y));
        break;
    }
    case VKGB_REDUCE: {
        vkg_shape xs = VKG_SHAPE(p[0], p[1]);
        s->in[0] = upload(xs, -1, 1, 6, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        int axis = (int)p[2];
        s->nout = axis == ALL ? 1 : (size_t)(axis == 1 ? p[0] : p[1]);
        if (c->op == VKG_OP_ARGMAX) s->refi = malloc(s->nout * sizeof *s->refi);
        else s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref && !s->refi) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_reduce((vkg_op)c->op, s->ref, s->refi, a, xs, axis);
        s->flops = (double)(p[0] * p[1]);
        s->bytes = 4.0 * (double)(p[0] * p[1] + (int64_t)s->nout);
        s->rtol = 1e-4, s->atol = 1e-4;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld) axis %s", (long long)p[0], (long long)p[1],
                 axis == ALL ? "all" : axis ? "1" : "0");
        break;
    }
    case VKGB_COPY: {
        vkg_shape xs = VKG_SHAPE(p[0], p[1]);
        s->in[0] = upload(xs, -1, 1, 7, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        s->nout = (size_t)(p[0] * p[1]);
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        for (int64_t i = 0; i < p[1]; i++)
            for (int64_t j = 0; j < p[0]; j++) s->ref[i * p[0] + j] = a[j * p[1] + i];
        s->bytes = 8.0 * (double)s->nout;
        s->rtol = 0, s->atol = 0;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld) transposed", (long long)p[0], (long long)p[1]);
        break;
    }
    case VKGB_RANDN: {
        s->nout = (size_t)p[0];
        s->ref = malloc(s->nout * sizeof *s->ref);
        if (!s->ref) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_randn(s->ref, s->nout, &(vkg_rand_desc){ .seed = 42 });
        s->bytes = 4.0 * (double)s->nout;
        /* bitwise on lavapipe (tests/test_random.c checks that); a device whose sqrt is not
         * correctly rounded is a few ulps off (vkgrad/random.h), up to 16 on an NVIDIA H100 */
        s->rtol = 1e-5f, s->atol = 1e-6f;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,) seed 42", (long long)p[0]);
        break;
    }
    case VKGB_CONV2D: {
        int64_t N = p[0], C = p[1], H = p[2], W = p[3], K = p[4], k = p[5], pad = p[6];
        vkg_shape xs = VKG_SHAPE(N, C, H, W), ws = VKG_SHAPE(K, C, k, k);
        vkg_conv2d_desc d = { .padding = { (int)pad, (int)pad } };
        s->in[0] = upload(xs, -1, 1, 8, &a);
        s->in[1] = upload(ws, -0.5f, 0.5f, 9, &b);
        s->in[2] = upload(VKG_SHAPE(K), -0.5f, 0.5f, 10, &e);
        int64_t OH = vkg_conv_out_size(H, (int)k, 1, (int)pad, 1), OW = vkg_conv_out_size(W, (int)k, 1, (int)pad, 1);
        if (!s->in[0] || !s->in[1] || !s->in[2] || OH <= 0 || OW <= 0) { ok = setup_fail(why, whysize, "inputs"); break; }
        s->nout = (size_t)(N * K * OH * OW);
        if (!(s->ref = malloc(s->nout * sizeof *s->ref))) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_conv2d(s->ref, a, xs, b, ws, e, &d);
        s->flops = 2.0 * (double)s->nout * (double)(C * k * k); /* the multiply-adds; the bias adds not counted */
        s->bytes = 4.0 * (double)(vkg_shape_numel(xs) + vkg_shape_numel(ws) + K + (int64_t)s->nout);
        s->rtol = 1e-4, s->atol = 1e-5 * (double)(C * k * k);
        snprintf(s->shape, sizeof s->shape, "f32 x (%lld,%lld,%lld,%lld) w (%lld,%lld,%lld,%lld) + bias, stride 1 pad %lld",
                 (long long)N, (long long)C, (long long)H, (long long)W, (long long)K, (long long)C, (long long)k,
                 (long long)k, (long long)pad);
        break;
    }
    case VKGB_SOFTMAX:
    case VKGB_LAYER_NORM:
    case VKGB_CROSS_ENTROPY: { /* over the last dim of (rows, cols) */
        int64_t R = p[0], D = p[1];
        vkg_shape xs = VKG_SHAPE(R, D);
        s->in[0] = upload(xs, -4, 4, 11, &a);
        if (!s->in[0]) { ok = setup_fail(why, whysize, "input"); break; }
        s->nout = c->kind == VKGB_CROSS_ENTROPY ? 1 : (size_t)(R * D);
        if (!(s->ref = malloc(s->nout * sizeof *s->ref))) { ok = setup_fail(why, whysize, "reference"); break; }
        const char *what = "softmax over dim 1";
        if (c->kind == VKGB_SOFTMAX) {
            vkg_ref_softmax(s->ref, a, xs, 1);
            s->flops = 5.0 * (double)(R * D); /* max, subtract, exp, sum, divide */
            s->bytes = 8.0 * (double)(R * D);
        } else if (c->kind == VKGB_LAYER_NORM) {
            s->in[1] = upload(VKG_SHAPE(D), 0.5f, 1.5f, 12, &b);
            s->in[2] = upload(VKG_SHAPE(D), -0.5f, 0.5f, 13, &e);
            if (!s->in[1] || !s->in[2]) { ok = setup_fail(why, whysize, "weight and bias"); break; }
            vkg_ref_layer_norm(s->ref, NULL, NULL, a, b, e, R, D, VKG_LAYER_NORM_EPS);
            s->flops = 7.0 * (double)(R * D); /* sum; subtract, square, sum; scale, weight, bias */
            s->bytes = 4.0 * (double)(2 * R * D + 2 * D);
            what = "layer norm over dim 1, weight and bias, eps 1e-5";
        } else {
            int32_t *t = malloc((size_t)R * sizeof *t);
            if (!t || !(b = malloc((size_t)R * sizeof *b))) { free(t); ok = setup_fail(why, whysize, "targets"); break; }
            fill(b, (size_t)R, 0, (float)D, 14);
            for (int64_t i = 0; i < R; i++) t[i] = (int32_t)b[i] < D ? (int32_t)b[i] : (int32_t)(D - 1);
            s->in[1] = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(R), VKG_I32, t));
            if (s->in[1]) vkg_ref_cross_entropy(s->ref, a, R, D, t, VKG_REDUCTION_MEAN, -100);
            free(t);
            if (!s->in[1]) { ok = setup_fail(why, whysize, "targets"); break; }
            s->flops = 4.0 * (double)(R * D); /* max, subtract, exp, sum */
            s->bytes = 4.0 * (double)(R * D + R + 1);
            what = "cross-entropy with i32 targets, mean";
        }
        s->rtol = 1e-4, s->atol = 1e-5;
        snprintf(s->shape, sizeof s->shape, "f32 (%lld,%lld), %s", (long long)R, (long long)D, what);
        break;
    }
    case VKGB_ATTENTION: {
        int64_t B = p[0], H = p[1], T = p[2], Dh = p[3];
        bool causal = p[4] != 0;
        vkg_shape qs = VKG_SHAPE(B, H, T, Dh);
        s->in[0] = upload(qs, -1, 1, 15, &a);
        s->in[1] = upload(qs, -1, 1, 16, &b);
        s->in[2] = upload(qs, -1, 1, 17, &e);
        if (!s->in[0] || !s->in[1] || !s->in[2]) { ok = setup_fail(why, whysize, "q, k, v"); break; }
        s->nout = (size_t)vkg_shape_numel(qs);
        if (!(s->ref = malloc(s->nout * sizeof *s->ref))) { ok = setup_fail(why, whysize, "reference"); break; }
        vkg_ref_sdpa(s->ref, NULL, a, b, e, NULL, (vkg_shape){ 0 }, B, H, T, T, Dh, Dh, causal, 1.0f / sqrtf((float)Dh));
        /* q k^T and p v over the (query, key) pairs the mask lets through; the softmax not counted */
        double pairs = (double)(B * H) * (causal ? (double)T * (double)(T + 1) / 2 : (double)T * (double)T);
        s->flops = 4.0 * (double)Dh * pairs;
        s->bytes = 16.0 * (double)s->nout; /* q, k, v, o */
        s->rtol = 1e-4, s->atol = 1e-5;
        snprintf(s->shape, sizeof s->shape, "f32 q, k, v (%lld,%lld,%lld,%lld), %s, scale 1/sqrt(%lld)", (long long)B,
                 (long long)H, (long long)T, (long long)Dh, causal ? "causal" : "no mask", (long long)Dh);
        break;
    }
    case VKGB_ADAM: ok = adam_setup(s, p[0], why, whysize); break;
    case VKGB_MODEL_TRAIN:
    case VKGB_MODEL_INFER: ok = model_setup(s, why, whysize); break;
    default:
        snprintf(why, whysize, "not an op case");
        ok = false;
    }
    free(a);
    free(b);
    free(e);
    if (!ok) vkgb_inst_free(s);
    return ok;
}

vkg_tensor *vkgb_inst_record(vkgb_inst *s) {
    const vkgb_case *c = s->c;
    switch (c->kind) {
    case VKGB_MATMUL: return vkg_matmul(s->in[0], s->in[1]);
    case VKGB_UNARY: return vkg_unary((vkg_op)c->op, s->in[0]);
    case VKGB_BINARY: return vkg_binary((vkg_op)c->op, s->in[0], s->in[1]);
    case VKGB_REDUCE:
        return c->p[2] == ALL ? vkg_reduce_all((vkg_op)c->op, s->in[0]) : vkg_reduce((vkg_op)c->op, s->in[0], (int)c->p[2], false);
    case VKGB_COPY: {
        vkg_tensor *t = vkg_transpose(s->in[0], 0, 1);
        vkg_tensor *y = vkg_contiguous(t);
        vkg_free(t);
        return y;
    }
    case VKGB_RANDN: return vkg_randn(VKG_SHAPE(c->p[0]), &(vkg_rand_desc){ .seed = 42 });
    case VKGB_CONV2D:
        return vkg_conv2d(s->in[0], s->in[1], s->in[2], &(vkg_conv2d_desc){ .padding = { (int)c->p[6], (int)c->p[6] } });
    case VKGB_SOFTMAX: return vkg_softmax(s->in[0], 1);
    case VKGB_LAYER_NORM: return vkg_layer_norm(s->in[0], s->in[1], s->in[2], VKG_LAYER_NORM_EPS);
    case VKGB_CROSS_ENTROPY: return vkg_cross_entropy(s->in[0], s->in[1], NULL);
    case VKGB_ATTENTION:
        return vkg_scaled_dot_product_attention(s->in[0], s->in[1], s->in[2], &(vkg_attention_desc){ .causal = c->p[4] != 0 });
    case VKGB_ADAM: return vkg_optim_step(s->opt) == VKG_OK ? s->in[0] : NULL;
    default: return NULL;
    }
}

bool vkgb_inst_run(vkgb_inst *s) {
    bool ok;
    switch (s->c->kind) {
    case VKGB_MODEL_TRAIN: {
        /* as vkgrad-train runs it (models/trainer.c): the first step eager (pipelines, first-use
         * matmul tuning), the second captured into a graph, the later ones replayed, one submit
         * each and nothing recorded; the LSTM's steps stay eager there and here */
        bool graph = s->c->p[0] != VKG_MODEL_LSTM, capture = graph && s->runs == 1;
        if (graph && s->runs >= 2) {
            s->runs++;
            return vkg_graph_replay(s->graph) == VKG_OK;
        }
        if (capture && (!(s->graph = vkg_graph_new()) || vkg_graph_capture_begin(s->graph) != VKG_OK)) return false;
        vkg_scope_begin();
        vkg_optim_zero_grad(s->opt);
        vkg_tensor *loss = vkg_model_loss(s->model, s->in[0], s->in[1]);
        ok = loss && vkg_backward(loss) == VKG_OK && vkg_optim_step(s->opt) == VKG_OK;
        vkg_scope_end();
        if (capture) ok = vkg_graph_capture_end(s->graph) == VKG_OK && ok; /* runs the captured step */
        s->runs++;
        return ok;
    }
    case VKGB_MODEL_INFER:
        vkg_no_grad_begin();
        vkg_scope_begin();
        ok = vkg_model_forward(s->model, s->in[0]) != NULL;
        vkg_scope_end();
        vkg_no_grad_end();
        return ok;
    default: {
        vkg_tensor *y = vkgb_inst_record(s);
        if (!y) return false;
        if (!s->in_place) vkg_free(y); /* its range is reused by the next operation in stream order */
        return true;
    }
    }
}

bool vkgb_inst_verify(vkgb_inst *s, bool corrupt, double *max_err, char *why, size_t whysize) {
    if (s->model) return model_verify(s, corrupt, max_err, why, whysize);
    vkg_scope_begin();
    vkg_tensor *y = vkgb_inst_record(s);
    size_t elem = s->refi ? sizeof(int32_t) : sizeof(float);
    void *got = malloc(s->nout * elem + 1);
    bool ok = y && got && vkg_tensor_read(y, got, s->nout * elem) == VKG_OK;
    vkg_scope_end();
    if (!ok) {
        snprintf(why, whysize, "running the case: %s", vkg_last_error()[0] ? vkg_last_error() : "out of host memory");
    } else {
        if (corrupt) {
            if (s->refi) ((int32_t *)got)[s->nout / 2] += 1;
            else ((float *)got)[s->nout / 2] += 1.0f + 2.0f * fabsf(((float *)got)[s->nout / 2]);
        }
        ok = vkgb_inst_check(s, got, max_err, why, whysize);
    }
    free(got);
    return ok;
}

bool vkgb_inst_check(const vkgb_inst *s, const void *got, double *max_err, char *why, size_t whysize) {
    *max_err = 0;
    if (s->refi) {
        const int32_t *g = got;
        for (size_t i = 0; i < s->nout; i++)
            if (g[i] != s->refi[i]) {
                snprintf(why, whysize, "wrong result: element %zu is %d, the reference says %d", i, g[i], s->refi[i]);
                *max_err = INFINITY;
                return false;
            }
        return true;
    }
    const float *g = got;
    size_t n = s->nrows ? (size_t)(s->nrows * s->row_len) : s->nout;
    for (size_t i = 0; i < n; i++) {
        size_t gi = s->nrows ? (size_t)(s->rows[i / (size_t)s->row_len] * s->row_len) + i % (size_t)s->row_len : i;
        double w = s->ref[i], d = fabs((double)g[gi] - w), tol = s->atol + s->rtol * fabs(w);
        double e = tol > 0 ? d / tol : (d > 0 ? INFINITY : 0);
        if (isnan(g[gi]) != isnan(w)) e = INFINITY;
        if (e > *max_err) *max_err = e;
        if (e > 1.0) {
            snprintf(why, whysize, "wrong result: element %zu is %.9g, the reference says %.9g (tolerance %.3g)", gi,
                     (double)g[gi], w, tol);
            return false;
        }
    }
    return true;
}

void vkgb_inst_free(vkgb_inst *s) {
    vkg_graph_free(s->graph); /* before the optimizer whose steps it replays */
    vkg_optim_free(s->opt); /* before the parameters it updates */
    vkg_model_free(s->model);
    for (int i = 0; i < 3; i++) vkg_free(s->in[i]);
    free(s->ref);
    free(s->refi);
    memset(s, 0, sizeof *s);
}
