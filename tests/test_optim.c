/* Optimizer tests: each optimizer's first three steps on a fixed parameter vector, with a fixed
 * gradient per step, against the published update rules computed here in double (derivations
 * beside each reference), to 1e-6 relative; the state tensors; one dispatch per parameter and
 * step, or one per group of parameters (the multi-tensor step); defaults and refusals; gradient clipping by global norm; the learning-rate schedules.
 *
 * Why 1e-6 relative holds in f32: each step changes a parameter by a few f32 operations of
 * relative error ~6e-8 each, applied to an update much smaller than the parameter; the values
 * are chosen so that nothing cancels (|p| in [1, 2], gradients of the sign opposite to p and of
 * one sign per element across steps, weight decay small beside the gradient), so the error stays
 * a few ulps (~3e-7) after three steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "support.h"

#define NSTEPS 3
#define RTOL 1e-6

/* Whether this device steps several parameters in one dispatch (optim_multi, lib/optim/optim.c:
 * 6 parameters x 5 buffer arrays + 1, indexed per workgroup). */
static bool multi_tensor(void) {
    const char *env = getenv("VKG_OPTIM_MULTI");
    return vkg_ctx.max_descriptors >= 31 && !(env && strcmp(env, "0") == 0);
}

/* ---- fixed data --------------------------------------------------------------------------------- */
/* p0 in +-[1, 2]; the gradient of step k, g_k = -sign(p0) * [0.1, 0.5] (different per step). */
static void make_data(double *p0, double (*g)[NSTEPS], size_t n, uint64_t seed) {
    float *u = malloc(n * 4 * sizeof *u);
    vkgt_fill(u, n * 4, 0.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) {
        double sign = u[i] < 0.5f ? -1.0 : 1.0;
        p0[i] = (float)(sign * (1.0 + 2.0 * fabs(u[i] - 0.5)));
        for (int k = 0; k < NSTEPS; k++) g[i][k] = (float)(-sign * (0.1 + 0.4 * u[n * (size_t)(k + 1) + i]));
    }
    free(u);
}

/* ---- references in double, from the published rules ---------------------------------------------
 * Each takes the state of one element and the gradient of step t (1-based) and returns the new
 * parameter; s[] holds that element's state across calls. */
typedef struct ref_state {
    double m, v, vmax, buf, sq, ga;
} ref_state;

/* SGD with momentum (Sutskever et al. 2013, as torch.optim.SGD writes it):
 *   g' = g + wd p                          L2 penalty wd/2 |p|^2 differentiated
 *   b_1 = g',  b_t = mu b_{t-1} + (1 - tau) g'      (tau: dampening; the first buffer is g')
 *   d = nesterov ? g' + mu b_t : b_t        (Nesterov: look ahead along the new velocity)
 *   p <- p - lr d                           (mu = 0: plain gradient descent, d = g') */
static double ref_sgd(const vkg_optim_desc *o, ref_state *s, double p, double g, int t) {
    if (o->maximize) g = -g;
    g += o->weight_decay * p;
    if (o->momentum != 0.0) {
        s->buf = t == 1 ? g : o->momentum * s->buf + (1.0 - o->dampening) * g;
        g = o->nesterov ? g + o->momentum * s->buf : s->buf;
    }
    return p - o->lr * g;
}

/* Adam (Kingma & Ba 2015, Algorithm 1) with L2 weight decay, and AdamW (Loshchilov & Hutter
 * 2019, Algorithm 2: decay decoupled from the gradient, scaled by lr as in PyTorch):
 *   AdamW: p <- p (1 - lr wd);   Adam: g <- g + wd p
 *   m_t = beta1 m + (1 - beta1) g,   v_t = beta2 v + (1 - beta2) g^2
 *   mhat = m_t / (1 - beta1^t),      vhat = v_t / (1 - beta2^t)   (bias corrections)
 *   AMSGrad (Reddi et al. 2018, PyTorch's form): vmax_t = max(vmax, v_t), vhat = vmax_t / (1 - beta2^t)
 *   p <- p - lr mhat / (sqrt(vhat) + eps) */
static double ref_adam(const vkg_optim_desc *o, ref_state *s, double p, double g, int t, bool decoupled) {
    if (o->maximize) g = -g;
    if (decoupled) p *= 1.0 - o->lr * o->weight_decay;
    else g += o->weight_decay * p;
    s->m = o->beta1 * s->m + (1.0 - o->beta1) * g;
    s->v = o->beta2 * s->v + (1.0 - o->beta2) * g * g;
    double mhat = s->m / (1.0 - pow(o->beta1, t));
    double vv = s->v;
    if (o->amsgrad) {
        s->vmax = fmax(s->vmax, s->v);
        vv = s->vmax;
    }
    double vhat = vv / (1.0 - pow(o->beta2, t));
    return p - o->lr * mhat / (sqrt(vhat) + o->eps);
}

/* RMSprop (Tieleman & Hinton 2012, lecture 6.5; centered: Graves 2013, eq. 38-40):
 *   g <- g + wd p
 *   E[g^2]_t = alpha E[g^2] + (1 - alpha) g^2,   centered: E[g]_t = alpha E[g] + (1 - alpha) g
 *   d = sqrt(E[g^2]_t - (centered ? E[g]_t^2 : 0)) + eps
 *   momentum mu > 0: b_t = mu b + g / d, p <- p - lr b_t;   else p <- p - lr g / d */
static double ref_rmsprop(const vkg_optim_desc *o, ref_state *s, double p, double g, int t) {
    (void)t;
    if (o->maximize) g = -g;
    g += o->weight_decay * p;
    s->sq = o->alpha * s->sq + (1.0 - o->alpha) * g * g;
    double var = s->sq;
    if (o->centered) {
        s->ga = o->alpha * s->ga + (1.0 - o->alpha) * g;
        var -= s->ga * s->ga;
    }
    double d = sqrt(var) + o->eps;
    if (o->momentum > 0.0) {
        s->buf = o->momentum * s->buf + g / d;
        return p - o->lr * s->buf;
    }
    return p - o->lr * g / d;
}

/* PyTorch's documented defaults (torch.optim docs, 2.x), filled into the zero fields: what the
 * references use, written here independently of the library's own table. */
static vkg_optim_desc torch_defaults(vkg_optim_desc d) {
    bool adam = d.kind == VKG_OPTIM_ADAM || d.kind == VKG_OPTIM_ADAMW;
    double *f[] = { &d.lr, &d.weight_decay, &d.momentum, &d.dampening, &d.beta1, &d.beta2, &d.eps, &d.alpha };
    bool explicit_zero[8];
    for (int i = 0; i < 8; i++) explicit_zero[i] = *f[i] == VKG_OPTIM_ZERO;
    if (d.lr == 0) d.lr = d.kind == VKG_OPTIM_RMSPROP ? 1e-2 : 1e-3;
    if (d.weight_decay == 0) d.weight_decay = d.kind == VKG_OPTIM_ADAMW ? 1e-2 : 0.0;
    if (adam && d.beta1 == 0) d.beta1 = 0.9;
    if (adam && d.beta2 == 0) d.beta2 = 0.999;
    if (d.eps == 0) d.eps = 1e-8;
    if (d.kind == VKG_OPTIM_RMSPROP && d.alpha == 0) d.alpha = 0.99;
    for (int i = 0; i < 8; i++)
        if (explicit_zero[i]) *f[i] = 0.0;
    return d;
}

static double ref_step(const vkg_optim_desc *o, ref_state *s, double p, double g, int t) {
    switch (o->kind) {
    case VKG_OPTIM_SGD: return ref_sgd(o, s, p, g, t);
    case VKG_OPTIM_ADAM: return ref_adam(o, s, p, g, t, false);
    case VKG_OPTIM_ADAMW: return ref_adam(o, s, p, g, t, true);
    case VKG_OPTIM_RMSPROP: return ref_rmsprop(o, s, p, g, t);
    }
    return NAN;
}

static void assert_rel(const float *got, const double *want, size_t n, double rtol, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs((double)got[i] - want[i]) <= rtol * fabs(want[i]), "%s: element %zu of %zu is %.9g, want %.9g (rel %.3g)",
                  what, i, n, (double)got[i], want[i], fabs((double)got[i] - want[i]) / fabs(want[i]));
}

/* Sets p's gradient to exactly g: the gradient of sum(p * g) with respect to p. */
static void set_grad(vkg_tensor *p, const float *g) {
    vkg_scope_begin();
    vkg_tensor *c = vkg_from_data(vkg_tensor_shape(p), g);
    cr_assert_eq(vkg_backward(vkg_sum_all(vkg_mul(p, c))), VKG_OK, "backward: %s", vkg_last_error());
    vkg_scope_end();
}

/* Runs three steps of the optimizer on a parameter of n elements and checks the parameter after
 * every step and the state after the last against the reference. */
static void check_three_steps(const char *what, vkg_optim_desc desc, size_t n, uint64_t seed) {
    double *p0 = malloc(n * sizeof *p0), (*g)[NSTEPS] = malloc(n * sizeof *g), *want = malloc(n * sizeof *want);
    float *pf = malloc(n * sizeof *pf), *gf = malloc(n * sizeof *gf);
    ref_state *rs = calloc(n, sizeof *rs);
    make_data(p0, g, n, seed);
    for (size_t i = 0; i < n; i++) {
        pf[i] = (float)p0[i];
        want[i] = p0[i];
    }
    vkg_tensor *p = vkg_requires_grad(vkg_from_data(VKG_SHAPE((int64_t)n), pf), true);
    vkg_optim *opt = vkg_optim_new(&desc);
    cr_assert_not_null(opt, "%s: %s", what, vkg_last_error());
    cr_assert_eq(vkg_optim_add(opt, "p", p), VKG_OK, "%s: %s", what, vkg_last_error());
    vkg_optim_desc ref = torch_defaults(desc);
    for (int t = 1; t <= NSTEPS; t++) {
        for (size_t i = 0; i < n; i++) gf[i] = (float)g[i][t - 1];
        vkg_optim_zero_grad(opt);
        set_grad(p, gf);
        vkg_stream_stats before = vkg_stream_stats_get();
        cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s: %s", what, vkg_last_error());
        cr_assert_eq(vkg_stream_stats_get().dispatches - before.dispatches, 1, "%s: one fused dispatch per step", what);
        for (size_t i = 0; i < n; i++) want[i] = ref_step(&ref, &rs[i], want[i], g[i][t - 1], t);
        float *got = vkgt_read(p);
        char w[160];
        snprintf(w, sizeof w, "%s, parameter after step %d", what, t);
        assert_rel(got, want, n, RTOL, w);
        free(got);
        cr_assert_eq(vkg_optim_step_count(opt, "p"), t);
    }
    /* the state, by PyTorch's names */
    struct { const char *name; size_t field; } st[] = {
        { "momentum_buffer", offsetof(ref_state, buf) }, { "exp_avg", offsetof(ref_state, m) },
        { "exp_avg_sq", offsetof(ref_state, v) },        { "max_exp_avg_sq", offsetof(ref_state, vmax) },
        { "square_avg", offsetof(ref_state, sq) },       { "grad_avg", offsetof(ref_state, ga) },
    };
    bool adam = desc.kind == VKG_OPTIM_ADAM || desc.kind == VKG_OPTIM_ADAMW;
    bool has[] = { ref.momentum != 0.0, adam, adam, adam && ref.amsgrad, desc.kind == VKG_OPTIM_RMSPROP,
                   desc.kind == VKG_OPTIM_RMSPROP && ref.centered };
    for (size_t k = 0; k < sizeof st / sizeof st[0]; k++) {
        vkg_tensor *s = vkg_optim_state(opt, "p", st[k].name);
        if (!has[k]) {
            cr_assert_null(s, "%s: no state %s expected", what, st[k].name);
            continue;
        }
        cr_assert_not_null(s, "%s: state %s: %s", what, st[k].name, vkg_last_error());
        for (size_t i = 0; i < n; i++) want[i] = *(const double *)((const char *)&rs[i] + st[k].field);
        float *got = vkgt_read(s);
        char w[160];
        snprintf(w, sizeof w, "%s, state %s after step %d", what, st[k].name, NSTEPS);
        assert_rel(got, want, n, RTOL, w);
        free(got);
    }
    vkg_optim_free(opt);
    vkg_free(p);
    free(p0), free(g), free(want), free(pf), free(gf), free(rs);
}

/* n = 37: below one workgroup and not a multiple of anything; 1000: several workgroups; the
 * vec4 module takes 1000 whole, 37 and 1003 with a tail of 1 and 3; 3 goes to the one-float
 * module. */
#define SIZES(what, desc, seed)                        \
    do {                                               \
        check_three_steps(what, desc, 37, seed);       \
        check_three_steps(what, desc, 1000, seed + 1); \
        check_three_steps(what, desc, 1003, seed + 2); \
        check_three_steps(what, desc, 3, seed + 3);    \
    } while (0)

VKG_TEST(optim, sgd_three_steps) {
    SIZES("sgd", ((vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1 }), 11);
    SIZES("sgd default lr", ((vkg_optim_desc){ .kind = VKG_OPTIM_SGD }), 12);
    SIZES("sgd momentum", ((vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9 }), 13);
    SIZES("sgd momentum dampening wd",
          ((vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01 }),
          14);
    SIZES("sgd nesterov wd",
          ((vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01 }),
          15);
    SIZES("sgd maximize", ((vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.05, .maximize = true }), 16);
}

VKG_TEST(optim, adam_three_steps) {
    SIZES("adam", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.05 }), 21);
    SIZES("adam defaults", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAM }), 22);
    SIZES("adam wd betas", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.05, .weight_decay = 0.01, .beta1 = 0.8,
                                             .beta2 = 0.99, .eps = 1e-6 }),
          23);
    SIZES("adam amsgrad", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.05, .amsgrad = true }), 24);
}

VKG_TEST(optim, adamw_three_steps) {
    SIZES("adamw", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 0.05 }), 31);
    SIZES("adamw defaults", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW }), 32);
    SIZES("adamw wd 0.1 amsgrad", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 0.05, .weight_decay = 0.1, .amsgrad = true }),
          33);
    SIZES("adamw no wd", ((vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 0.05, .weight_decay = VKG_OPTIM_ZERO }), 34);
}

VKG_TEST(optim, rmsprop_three_steps) {
    SIZES("rmsprop", ((vkg_optim_desc){ .kind = VKG_OPTIM_RMSPROP, .lr = 0.005 }), 41);
    SIZES("rmsprop defaults", ((vkg_optim_desc){ .kind = VKG_OPTIM_RMSPROP }), 42);
    SIZES("rmsprop momentum", ((vkg_optim_desc){ .kind = VKG_OPTIM_RMSPROP, .lr = 0.005, .momentum = 0.9 }), 43);
    SIZES("rmsprop centered", ((vkg_optim_desc){ .kind = VKG_OPTIM_RMSPROP, .lr = 0.005, .centered = true }), 44);
    SIZES("rmsprop centered momentum wd alpha",
          ((vkg_optim_desc){ .kind = VKG_OPTIM_RMSPROP, .lr = 0.002, .centered = true, .momentum = 0.5,
                             .weight_decay = 0.01, .alpha = 0.9 }),
          45);
}

VKG_TEST(optim, defaults_are_pytorchs) {
    struct { vkg_optim_kind k; double lr, wd, b1, b2, eps, alpha; } want[] = {
        { VKG_OPTIM_SGD, 1e-3, 0, 0, 0, 1e-8, 0 },        { VKG_OPTIM_ADAM, 1e-3, 0, 0.9, 0.999, 1e-8, 0 },
        { VKG_OPTIM_ADAMW, 1e-3, 1e-2, 0.9, 0.999, 1e-8, 0 }, { VKG_OPTIM_RMSPROP, 1e-2, 0, 0, 0, 1e-8, 0.99 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        vkg_optim *o = vkg_optim_new(&(vkg_optim_desc){ .kind = want[i].k });
        cr_assert_not_null(o, "%s", vkg_last_error());
        vkg_optim_desc d = vkg_optim_get_desc(o);
        bool adam = want[i].k == VKG_OPTIM_ADAM || want[i].k == VKG_OPTIM_ADAMW;
        cr_expect_eq(d.lr, want[i].lr, "kind %d lr %g", (int)want[i].k, d.lr);
        cr_expect_eq(d.weight_decay, want[i].wd, "kind %d weight_decay %g", (int)want[i].k, d.weight_decay);
        if (adam) {
            cr_expect_eq(d.beta1, want[i].b1);
            cr_expect_eq(d.beta2, want[i].b2);
        }
        cr_expect_eq(d.eps, want[i].eps);
        if (want[i].k == VKG_OPTIM_RMSPROP) cr_expect_eq(d.alpha, want[i].alpha);
        cr_expect_eq(d.momentum, 0.0);
        cr_expect_eq(d.dampening, 0.0);
        cr_expect(!d.nesterov && !d.amsgrad && !d.centered && !d.maximize);
        vkg_optim_free(o);
    }
    vkg_optim *o = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .weight_decay = VKG_OPTIM_ZERO,
                                                     .beta1 = VKG_OPTIM_ZERO });
    cr_assert_not_null(o, "%s", vkg_last_error());
    cr_expect_eq(vkg_optim_get_desc(o).weight_decay, 0.0);
    cr_expect_eq(vkg_optim_get_desc(o).beta1, 0.0);
    vkg_optim_set_lr(o, 0.25);
    cr_expect_eq(vkg_optim_lr(o), 0.25);
    vkg_optim_free(o);
}

VKG_TEST(optim, bad_hyperparameters_are_refused) {
    struct { vkg_optim_desc d; const char *msg; } bad[] = {
        { { .kind = VKG_OPTIM_SGD, .lr = -0.5 }, "lr" },
        { { .kind = VKG_OPTIM_SGD, .nesterov = true }, "nesterov needs momentum" },
        { { .kind = VKG_OPTIM_SGD, .nesterov = true, .momentum = 0.9, .dampening = 0.1 }, "nesterov needs momentum" },
        { { .kind = VKG_OPTIM_ADAM, .beta2 = 1.0 }, "betas" },
        { { .kind = VKG_OPTIM_ADAM, .momentum = 0.9 }, "no momentum" },
        { { .kind = VKG_OPTIM_SGD, .amsgrad = true }, "amsgrad" },
        { { .kind = VKG_OPTIM_ADAM, .centered = true }, "centered" },
        { { .kind = (vkg_optim_kind)9 }, "unknown kind" },
        { { .kind = VKG_OPTIM_RMSPROP, .eps = NAN }, "eps" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_null(vkg_optim_new(&bad[i].d), "case %zu accepted", i);
        cr_expect(strstr(vkg_last_error(), bad[i].msg), "case %zu: \"%s\" lacks \"%s\"", i, vkg_last_error(), bad[i].msg);
    }
    vkg_optim *o = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM });
    vkg_tensor *nograd = vkg_zeros(VKG_SHAPE(3));
    cr_expect_neq(vkg_optim_add(o, "a", nograd), VKG_OK);
    cr_expect(strstr(vkg_last_error(), "does not require grad"), "%s", vkg_last_error());
    vkg_tensor *p = vkg_requires_grad(vkg_zeros(VKG_SHAPE(2, 3)), true);
    cr_expect_neq(vkg_optim_add(o, "t", vkg_transpose(p, 0, 1)), VKG_OK);
    cr_expect(strstr(vkg_last_error(), "not a leaf") || strstr(vkg_last_error(), "contiguous"), "%s", vkg_last_error());
    cr_expect_eq(vkg_optim_add(o, "p", p), VKG_OK, "%s", vkg_last_error());
    cr_expect_neq(vkg_optim_add(o, "p", vkg_requires_grad(vkg_zeros(VKG_SHAPE(1)), true)), VKG_OK);
    cr_expect(strstr(vkg_last_error(), "already added"), "%s", vkg_last_error());
    cr_expect_neq(vkg_optim_add(o, "q", p), VKG_OK);
    cr_expect_null(vkg_optim_state(o, "p", "momentum_buffer"));
    cr_expect(strstr(vkg_last_error(), "no state"), "%s", vkg_last_error());
    cr_expect_null(vkg_optim_state(o, "nope", "exp_avg"));
    cr_expect_eq(vkg_optim_step_count(o, "nope"), -1);
    vkg_optim_free(o);
}

/* Several parameters in one optimizer, stepped together (optim_multi: up to 6 a dispatch, in
 * groups of equal step counts, tensors of any size >= 4 with the n % 4 tail; a 3-element one and
 * one at a nonzero offset go alone): each follows the reference, one of them from step count 4
 * (its own bias corrections), and the dispatch count is the grouping's. */
static void check_many(const char *what, vkg_optim_desc desc) {
    enum { NP = 9 };
    const size_t sizes[NP] = { 37, 1000, 1003, 3, 4, 129, 7, 2048, 13 };
    const int64_t skew = 4; /* parameter 5 resumes at this step count */
    vkg_optim *opt = vkg_optim_new(&desc);
    cr_assert_not_null(opt, "%s: %s", what, vkg_last_error());
    vkg_optim_desc ref = torch_defaults(desc);
    double *p0[NP], (*g[NP])[NSTEPS], *want[NP];
    ref_state *rs[NP];
    vkg_tensor *p[NP], *base = NULL;
    for (int k = 0; k < NP; k++) {
        size_t n = sizes[k];
        p0[k] = malloc(n * sizeof *p0[k]);
        g[k] = malloc(n * sizeof *g[k]);
        want[k] = malloc(n * sizeof *want[k]);
        rs[k] = calloc(n, sizeof *rs[k]);
        make_data(p0[k], g[k], n, 100 + (uint64_t)k);
        float *pf = malloc(n * sizeof *pf);
        for (size_t i = 0; i < n; i++) want[k][i] = pf[i] = (float)p0[k][i];
        if (k == NP - 1) { /* a leaf at offset 8 of a larger tensor: its buffer is not bound whole */
            float *bf = calloc(n + 8, sizeof *bf);
            memcpy(bf + 8, pf, n * sizeof *pf);
            base = vkg_from_data(VKG_SHAPE((int64_t)n + 8), bf);
            p[k] = vkg_requires_grad(vkg_narrow(base, 0, 8, (int64_t)n), true);
            free(bf);
        } else {
            p[k] = vkg_requires_grad(vkg_from_data(VKG_SHAPE((int64_t)n), pf), true);
        }
        free(pf);
        char name[8];
        snprintf(name, sizeof name, "p%d", k);
        cr_assert_eq(vkg_optim_add(opt, name, p[k]), VKG_OK, "%s: %s", what, vkg_last_error());
    }
    cr_assert_eq(vkg_optim_set_step_count(opt, "p5", skew), VKG_OK);
    for (int t = 1; t <= NSTEPS; t++) {
        vkg_optim_zero_grad(opt);
        for (int k = 0; k < NP; k++) {
            float *gf = malloc(sizes[k] * sizeof *gf);
            for (size_t i = 0; i < sizes[k]; i++) gf[i] = (float)g[k][i][t - 1];
            set_grad(p[k], gf);
            free(gf);
        }
        vkg_stream_stats before = vkg_stream_stats_get();
        cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s: %s", what, vkg_last_error());
        /* multi: {37, 1000, 1003, 4, 7, 2048} and {129 (skewed)}; alone: 3 and the offset one */
        cr_assert_eq(vkg_stream_stats_get().dispatches - before.dispatches, multi_tensor() ? 4 : NP, "%s: %llu dispatches",
                     what, (unsigned long long)(vkg_stream_stats_get().dispatches - before.dispatches));
        for (int k = 0; k < NP; k++) {
            int tk = t + (k == 5 ? (int)skew : 0);
            for (size_t i = 0; i < sizes[k]; i++) want[k][i] = ref_step(&ref, &rs[k][i], want[k][i], g[k][i][t - 1], tk);
            float *got = vkgt_read(p[k]);
            char w[160];
            snprintf(w, sizeof w, "%s, parameter %d (%zu elements) after step %d", what, k, sizes[k], t);
            assert_rel(got, want[k], sizes[k], RTOL, w);
            free(got);
        }
    }
    cr_assert_eq(vkg_optim_step_count(opt, "p0"), NSTEPS);
    cr_assert_eq(vkg_optim_step_count(opt, "p5"), NSTEPS + skew);
    vkg_optim_free(opt);
    for (int k = 0; k < NP; k++) {
        vkg_free(p[k]);
        free(p0[k]), free(g[k]), free(want[k]), free(rs[k]);
    }
    vkg_free(base);
}

VKG_TEST(optim, many_parameters_step_together) {
    check_many("adam", (vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.05 });
    check_many("adamw amsgrad", (vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 0.05, .amsgrad = true });
    check_many("sgd nesterov", (vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.05, .momentum = 0.9, .nesterov = true });
    check_many("rmsprop centered momentum",
               (vkg_optim_desc){ .kind = VKG_OPTIM_RMSPROP, .lr = 0.005, .centered = true, .momentum = 0.5 });
}

/* Parameters without a gradient are skipped (their step count stays), and several parameters
 * share a dispatch where the device allows (else one each); the tensors keep their handles and
 * storage. */
VKG_TEST(optim, skips_parameters_without_gradient) {
    vkg_tensor *a = vkg_requires_grad(vkg_full(VKG_SHAPE(5), 1.0f), true);
    vkg_tensor *b = vkg_requires_grad(vkg_full(VKG_SHAPE(2, 3), 2.0f), true);
    vkg_tensor *c = vkg_requires_grad(vkg_full(VKG_SHAPE(4), 3.0f), true);
    vkg_optim *o = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.5 });
    cr_assert_eq(vkg_optim_add_params(o, (const char *[]){ "a", "b", "c" }, (vkg_tensor *[]){ a, b, c }, 3), VKG_OK);
    cr_expect_eq(vkg_optim_param_count(o), 3);
    cr_expect_str_eq(vkg_optim_param_name(o, 1), "b");
    cr_expect_eq(vkg_optim_param(o, 2), c);
    set_grad(a, (float[]){ 1, 1, 1, 1, 1 });
    set_grad(b, (float[]){ 2, 2, 2, 2, 2, 2 });
    vkg_stream_stats before = vkg_stream_stats_get();
    cr_assert_eq(vkg_optim_step(o), VKG_OK, "%s", vkg_last_error());
    cr_expect_eq(vkg_stream_stats_get().dispatches - before.dispatches, multi_tensor() ? 1 : 2);
    cr_expect_eq(vkg_optim_step_count(o, "a"), 1);
    cr_expect_eq(vkg_optim_step_count(o, "b"), 1);
    cr_expect_eq(vkg_optim_step_count(o, "c"), 0);
    float *va = vkgt_read(a), *vb = vkgt_read(b), *vc = vkgt_read(c);
    cr_expect_eq(va[4], 0.5f);
    cr_expect_eq(vb[5], 1.0f);
    cr_expect_eq(vc[0], 3.0f);
    free(va), free(vb), free(vc);
    vkg_optim_zero_grad(o);
    cr_expect_null(vkg_grad(a));
    cr_expect_null(vkg_grad(b));
    vkg_optim_free(o);
}

/* Resume: a second optimizer given the first one's state tensors and step count after two
 * steps takes the same third step, bit for bit. */
VKG_TEST(optim, state_resumes_from_a_checkpoint) {
    const size_t n = 50;
    double p0[50], g[50][NSTEPS];
    float pf[50], gf[NSTEPS][50];
    make_data(p0, g, n, 77);
    for (size_t i = 0; i < n; i++) {
        pf[i] = (float)p0[i];
        for (int k = 0; k < NSTEPS; k++) gf[k][i] = (float)g[i][k];
    }
    vkg_optim_desc d = { .kind = VKG_OPTIM_ADAMW, .lr = 0.05, .amsgrad = true };
    vkg_tensor *p = vkg_requires_grad(vkg_from_data(VKG_SHAPE(50), pf), true);
    vkg_optim *o = vkg_optim_new(&d);
    cr_assert_eq(vkg_optim_add(o, "w", p), VKG_OK);
    for (int k = 0; k < 2; k++) {
        vkg_optim_zero_grad(o);
        set_grad(p, gf[k]);
        cr_assert_eq(vkg_optim_step(o), VKG_OK);
    }
    float *mid = vkgt_read(p);
    vkg_tensor *q = vkg_requires_grad(vkg_from_data(VKG_SHAPE(50), mid), true);
    vkg_optim *o2 = vkg_optim_new(&d);
    cr_assert_eq(vkg_optim_add(o2, "w", q), VKG_OK);
    const char *names[] = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" };
    for (int k = 0; k < 3; k++) {
        float *s = vkgt_read(vkg_optim_state(o, "w", names[k]));
        cr_assert_eq(vkg_tensor_write(vkg_optim_state(o2, "w", names[k]), s, n * sizeof *s), VKG_OK);
        free(s);
    }
    cr_assert_eq(vkg_optim_set_step_count(o2, "w", vkg_optim_step_count(o, "w")), VKG_OK);
    vkg_optim_zero_grad(o);
    set_grad(p, gf[2]);
    set_grad(q, gf[2]);
    cr_assert_eq(vkg_optim_step(o), VKG_OK);
    cr_assert_eq(vkg_optim_step(o2), VKG_OK);
    float *a = vkgt_read(p), *b = vkgt_read(q);
    cr_expect_eq(memcmp(a, b, n * sizeof *a), 0, "the resumed step differs");
    free(a), free(b), free(mid);
    vkg_optim_free(o);
    vkg_optim_free(o2);
}

/* ---- clipping ---------------------------------------------------------------------------------- */
VKG_TEST(optim, clip_grad_norm) {
    enum { NA = 300, NB = 7 };
    float ga[NA], gb[NB];
    vkgt_fill(ga, NA, -1.0f, 1.0f, 501);
    vkgt_fill(gb, NB, -3.0f, 3.0f, 502);
    double ss = 0;
    for (int i = 0; i < NA; i++) ss += (double)ga[i] * ga[i];
    for (int i = 0; i < NB; i++) ss += (double)gb[i] * gb[i];
    double norm = sqrt(ss);
    vkg_tensor *a = vkg_requires_grad(vkg_zeros(VKG_SHAPE(20, 15)), true);
    vkg_tensor *b = vkg_requires_grad(vkg_zeros(VKG_SHAPE(NB)), true);
    vkg_tensor *c = vkg_requires_grad(vkg_zeros(VKG_SHAPE(3)), true); /* no gradient: skipped */
    vkg_tensor *params[] = { a, b, c };
    set_grad(a, ga);
    set_grad(b, gb);
    /* a max_norm above the norm leaves the gradients as they are (coefficient clamped to 1) */
    float got = vkg_clip_grad_norm(params, 3, (float)norm * 2);
    cr_expect(fabs(got - norm) <= 1e-6 * norm, "norm %.9g, want %.9g", (double)got, norm);
    float *ra = vkgt_read(vkg_grad(a));
    cr_expect_eq(memcmp(ra, ga, sizeof ga), 0);
    free(ra);
    /* below: scaled by max_norm / (norm + 1e-6), on the device, with no read back */
    double max_norm = 1.5, coef = max_norm / (norm + 1e-6);
    vkg_stream_stats before = vkg_stream_stats_get();
    vkg_tensor *nt = vkg_clip_grad_norm_tensor(params, 3, (float)max_norm);
    cr_assert_not_null(nt, "%s", vkg_last_error());
    cr_expect_eq(vkg_stream_stats_get().bytes_read_back, before.bytes_read_back, "clipping read back");
    cr_expect_eq(vkg_stream_stats_get().waits, before.waits, "clipping waited");
    cr_expect(fabs(vkg_item(nt) - norm) <= 1e-6 * norm);
    ra = vkgt_read(vkg_grad(a));
    float *rb = vkgt_read(vkg_grad(b));
    double want[NA];
    for (int i = 0; i < NA; i++) want[i] = ga[i] * coef;
    for (int i = 0; i < NA; i++) cr_assert(fabs(ra[i] - want[i]) <= 1e-6 * fabs(want[i]) + 1e-9, "a[%d] %.9g want %.9g", i, (double)ra[i], want[i]);
    for (int i = 0; i < NB; i++) cr_assert(fabs(rb[i] - gb[i] * coef) <= 1e-6 * fabs(gb[i] * coef), "b[%d]", i);
    free(ra), free(rb);
    /* the clipped norm is max_norm */
    float after = vkg_clip_grad_norm(params, 3, 100.0f);
    cr_expect(fabsf(after - 1.5f) <= 1e-5f, "after %.9g", (double)after);
    /* nothing to clip: 0; bad arguments: NAN with a message */
    cr_expect_eq(vkg_clip_grad_norm(&c, 1, 1.0f), 0.0f);
    cr_expect(isnan(vkg_clip_grad_norm(params, 3, -1.0f)));
    cr_expect(strstr(vkg_last_error(), "max_norm"), "%s", vkg_last_error());
    cr_expect(isnan(vkg_clip_grad_norm(NULL, 2, 1.0f)));
}

/* ---- schedules --------------------------------------------------------------------------------- */
VKG_TEST(optim, lr_schedules) {
    /* StepLR(step_size 10, gamma 0.5): epochs 0-9 base, 10-19 half, ... */
    cr_expect_eq(vkg_lr_step_decay(0.1, 0, 10, 0.5), 0.1);
    cr_expect_eq(vkg_lr_step_decay(0.1, 9, 10, 0.5), 0.1);
    cr_expect_eq(vkg_lr_step_decay(0.1, 10, 10, 0.5), 0.05);
    cr_expect(fabs(vkg_lr_step_decay(0.1, 35, 10, 0.5) - 0.0125) < 1e-15);
    /* warm-up 10 then cosine to step 110, floor 0.01 */
    cr_expect_eq(vkg_lr_cosine(1.0, 0, 10, 110, 0.01), 0.0);
    cr_expect(fabs(vkg_lr_cosine(1.0, 5, 10, 110, 0.01) - 0.5) < 1e-15);
    cr_expect(fabs(vkg_lr_cosine(1.0, 10, 10, 110, 0.01) - 1.0) < 1e-15);
    cr_expect(fabs(vkg_lr_cosine(1.0, 60, 10, 110, 0.01) - (0.01 + 0.99 * 0.5)) < 1e-12);
    double q = 0.01 + 0.99 * 0.5 * (1 + cos(3.14159265358979323846 * 0.25));
    cr_expect(fabs(vkg_lr_cosine(1.0, 35, 10, 110, 0.01) - q) < 1e-12);
    cr_expect(fabs(vkg_lr_cosine(1.0, 110, 10, 110, 0.01) - 0.01) < 1e-15);
    cr_expect(fabs(vkg_lr_cosine(1.0, 500, 10, 110, 0.01) - 0.01) < 1e-15);
    cr_expect(fabs(vkg_lr_cosine(2.0, 0, 0, 100, 0.0) - 2.0) < 1e-15); /* no warm-up */
}

/* ---- dynamic loss scaling ------------------------------------------------------------------------ */
/* loss = sum(relu(x @ w) * c) + sum(b^2) with the gradients left in w and b. */
static void scaler_backward(vkg_loss_scaler *sc, vkg_tensor *w, vkg_tensor *b, vkg_tensor *x, vkg_tensor *c) {
    vkg_tensor *loss = vkg_add(vkg_sum_all(vkg_mul(vkg_relu(vkg_add(vkg_matmul(x, w), b)), c)), vkg_sum_all(vkg_mul(b, b)));
    cr_assert_eq(vkg_backward(sc ? vkg_loss_scaler_scale(sc, loss) : loss), VKG_OK, "%s", vkg_last_error());
}

/* The problem both scaler tests step: w (7, 4) and b (4) with gradients, inputs x (5, 7) and c
 * (5, 4); hw and hb hold the parameters' first values. */
typedef struct scaler_problem {
    float hw[7 * 4], hb[4];
    vkg_tensor *w, *b, *x, *c;
} scaler_problem;

static scaler_problem scaler_problem_new(void) {
    scaler_problem p;
    float hx[5 * 7], hc[5 * 4];
    vkgt_fill(hx, 35, -1.0f, 1.0f, 1);
    vkgt_fill(p.hw, 28, -1.0f, 1.0f, 2);
    vkgt_fill(p.hb, 4, -0.5f, 0.5f, 3);
    vkgt_fill(hc, 20, -2.0f, 2.0f, 4);
    p.w = vkg_requires_grad(vkg_from_data(VKG_SHAPE(7, 4), p.hw), true);
    p.b = vkg_requires_grad(vkg_from_data(VKG_SHAPE(4), p.hb), true);
    p.x = vkg_from_data(VKG_SHAPE(5, 7), hx);
    p.c = vkg_from_data(VKG_SHAPE(5, 4), hc);
    return p;
}

/* Gradients of the scaled loss, unscaled, are the gradients of the loss itself, bit for bit:
 * the scale is a power of two and nothing overflows. */
VKG_TEST(optim, loss_scaler_unscaled_gradients_equal) {
    scaler_problem p = scaler_problem_new();
    vkg_tensor *w = p.w, *b = p.b, *x = p.x, *c = p.c;
    const float *hw = p.hw;
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1 });
    vkg_optim_add_params(opt, (const char *[]){ "w", "b" }, (vkg_tensor *[]){ w, b }, 2);
    vkg_loss_scaler *sc = vkg_loss_scaler_new(NULL);
    cr_assert_not_null(sc, "%s", vkg_last_error());
    cr_assert_eq(vkg_loss_scaler_get_scale(sc), 65536.0);
    vkg_scope_begin();
    scaler_backward(NULL, w, b, x, c);
    float *gw = vkgt_read(vkg_grad(w)), *gb = vkgt_read(vkg_grad(b));
    vkg_optim_zero_grad(opt);
    scaler_backward(sc, w, b, x, c);
    float *sw = vkgt_read(vkg_grad(w));
    cr_assert_eq(sw[0], gw[0] * 65536.0f, "the backward saw the scaled loss");
    free(sw);
    cr_assert_eq(vkg_loss_scaler_unscale(sc, opt), VKG_OK, "%s", vkg_last_error());
    float *uw = vkgt_read(vkg_grad(w)), *ub = vkgt_read(vkg_grad(b));
    cr_assert_arr_eq(uw, gw, sizeof p.hw, "unscaled dw differs from dw");
    cr_assert_arr_eq(ub, gb, sizeof p.hb, "unscaled db differs from db");
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_neq(vkg_loss_scaler_unscale(sc, opt), VKG_OK, "unscaling twice is refused");
    vkg_set_error_handler(NULL, NULL);
    bool stepped = false;
    cr_assert_eq(vkg_loss_scaler_step(sc, opt, &stepped), VKG_OK, "%s", vkg_last_error());
    cr_assert(stepped && !vkg_loss_scaler_found_inf(sc));
    float *pw = vkgt_read(w);
    for (int i = 0; i < 28; i++) cr_assert_eq(pw[i], hw[i] - 0.1f * gw[i], "w[%d] after the step", i);
    cr_assert_eq(vkg_loss_scaler_growth_tracker(sc), 1);
    free(gw);
    free(gb);
    free(uw);
    free(ub);
    free(pw);
    vkg_scope_end();
    vkg_loss_scaler_free(sc);
    vkg_optim_free(opt);
}

/* An inf (or NaN) in one gradient: the step is skipped (parameters, state and step count as
 * they were), the scale halves and the growth count restarts; the next finite step goes on. */
VKG_TEST(optim, loss_scaler_skips_inf_and_backs_off) {
    scaler_problem p = scaler_problem_new();
    vkg_tensor *w = p.w, *b = p.b, *x = p.x, *c = p.c;
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.01 });
    vkg_optim_add_params(opt, (const char *[]){ "w", "b" }, (vkg_tensor *[]){ w, b }, 2);
    vkg_loss_scaler *sc = vkg_loss_scaler_new(&(vkg_loss_scaler_desc){ .growth_interval = 100 });
    const float bad[2] = { INFINITY, NAN };
    for (int k = 0; k < 2; k++) {
        vkg_scope_begin();
        vkg_optim_zero_grad(opt);
        scaler_backward(sc, w, b, x, c);
        bool stepped = true;
        cr_assert_eq(vkg_loss_scaler_step(sc, opt, &stepped), VKG_OK, "%s", vkg_last_error());
        cr_assert(stepped);
        float *w1 = vkgt_read(w), *b1 = vkgt_read(b), *m1 = vkgt_read(vkg_optim_state(opt, "b", "exp_avg"));
        int64_t steps = vkg_optim_step_count(opt, "b");
        double scale = vkg_loss_scaler_get_scale(sc);
        cr_assert_gt(vkg_loss_scaler_growth_tracker(sc), 0);
        /* the next backward, with one element of db replaced by inf or NaN */
        vkg_optim_zero_grad(opt);
        scaler_backward(sc, w, b, x, c);
        float *db = vkgt_read(vkg_grad(b));
        db[2] = bad[k];
        cr_assert_eq(vkg_tensor_write(vkg_grad(b), db, sizeof p.hb), VKG_OK);
        cr_assert_eq(vkg_loss_scaler_step(sc, opt, &stepped), VKG_OK, "%s", vkg_last_error());
        cr_assert(!stepped, "a step with %s in a gradient must be skipped", k ? "NaN" : "inf");
        cr_assert(vkg_loss_scaler_found_inf(sc));
        cr_assert_eq(vkg_loss_scaler_get_scale(sc), scale * 0.5);
        cr_assert_eq(vkg_loss_scaler_growth_tracker(sc), 0);
        cr_assert_eq(vkg_optim_step_count(opt, "b"), steps);
        float *w2 = vkgt_read(w), *b2 = vkgt_read(b), *m2 = vkgt_read(vkg_optim_state(opt, "b", "exp_avg"));
        cr_assert_arr_eq(w2, w1, sizeof p.hw, "w moved on a skipped step");
        cr_assert_arr_eq(b2, b1, sizeof p.hb, "b moved on a skipped step");
        cr_assert_arr_eq(m2, m1, sizeof p.hb, "Adam's state moved on a skipped step");
        free(w1); free(b1); free(m1); free(w2); free(b2); free(m2); free(db);
        vkg_scope_end();
    }
    cr_assert_eq(vkg_loss_scaler_get_scale(sc), 65536.0 / 4.0);
    vkg_loss_scaler_free(sc);
    vkg_optim_free(opt);
}

/* The scale grows by growth_factor after growth_interval finite steps in a row, and a refused
 * description says why. */
VKG_TEST(optim, loss_scaler_growth) {
    vkg_tensor *p = vkg_requires_grad(vkg_from_data(VKG_SHAPE(3), (float[]){ 1, 2, 3 }), true);
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.01 });
    vkg_optim_add(opt, "p", p);
    vkg_loss_scaler *sc = vkg_loss_scaler_new(&(vkg_loss_scaler_desc){ .init_scale = 8, .growth_interval = 3 });
    const double want_scale[7] = { 8, 8, 16, 16, 16, 32, 32 };
    const int64_t want_tracker[7] = { 1, 2, 0, 1, 2, 0, 1 };
    for (int k = 0; k < 7; k++) {
        vkg_scope_begin();
        vkg_optim_zero_grad(opt);
        cr_assert_eq(vkg_backward(vkg_loss_scaler_scale(sc, vkg_sum_all(vkg_mul(p, p)))), VKG_OK);
        bool stepped;
        cr_assert_eq(vkg_loss_scaler_step(sc, opt, &stepped), VKG_OK, "%s", vkg_last_error());
        cr_assert(stepped);
        cr_assert_eq(vkg_loss_scaler_get_scale(sc), want_scale[k], "step %d: scale %g", k, vkg_loss_scaler_get_scale(sc));
        cr_assert_eq(vkg_loss_scaler_growth_tracker(sc), want_tracker[k]);
        vkg_scope_end();
    }
    cr_assert_eq(vkg_optim_step_count(opt, "p"), 7);
    vkg_loss_scaler_free(sc);
    /* the defaults are torch's GradScaler's; bad values are refused */
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_null(vkg_loss_scaler_new(&(vkg_loss_scaler_desc){ .backoff_factor = 1.5 }));
    cr_assert_null(vkg_loss_scaler_new(&(vkg_loss_scaler_desc){ .growth_factor = 0.5 }));
    cr_assert_null(vkg_loss_scaler_new(&(vkg_loss_scaler_desc){ .init_scale = -1 }));
    cr_assert_null(vkg_loss_scaler_new(&(vkg_loss_scaler_desc){ .growth_interval = -3 }));
    cr_assert(strstr(vkg_last_error(), "growth_interval"), "%s", vkg_last_error());
    vkg_set_error_handler(NULL, NULL);
    vkg_optim_free(opt);
}
