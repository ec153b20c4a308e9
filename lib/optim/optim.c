/* The optimizers: hyperparameters with PyTorch's defaults, per-parameter state made outside
 * every scope, and fused dispatches of shaders/optim_step.comp: one for up to MULTI parameters
 * (optim_multi) where the device indexes arrays of buffers and the parameters allow, else one per
 * parameter. The formulas are written out in lib/include/vkgrad/optim.h; coefficients PyTorch
 * computes in Python (double) are computed here in double and rounded once to f32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "runtime/graph_internal.h"
#include "vkgrad/nn.h"

#define NSTATE 3  /* state slots per parameter (shaders/optim_step.comp's S0-S2) */
#define MULTI 6   /* parameters one optim_multi dispatch steps (shaders/optim_step.comp): change both */

/* Mirrors the Push block of shaders/optim_step.comp: change both. */
typedef struct vkg_optim_push {
    uint32_t n, p_off, g_off, flags;
    float lr, wd, momentum, damp1;
    float w1, beta2, w2, eps;
    float step_size, bc2_sqrt, decay;
    uint32_t c_off;
    union {
        uint32_t nm[MULTI];          /* optim_multi: each parameter's elements                 */
        uint32_t tex[NSTATE + 2];    /* optim_step_tex: P, S0-S2, G's texel bases (their views) */
    };
} vkg_optim_push;
_Static_assert(sizeof(vkg_optim_push) <= VKG_PUSH_SIZE, "push constants too large");

enum { /* shaders/optim_step.comp's ALGO and F_* flags: change both */
    ALGO_SGD = 0, ALGO_ADAM = 1, ALGO_RMSPROP = 2,
    F_NESTEROV = 1, F_FIRST = 2, F_AMSGRAD = 4, F_DECOUPLED = 8, F_CENTERED = 16, F_MAXIMIZE = 32, F_MOMENTUM = 64,
    F_COEF = 128,
};

/* The per-step values, in the order of a slot of the coefficient buffer (shaders/optim_step.comp's
 * C block: change both). Eager steps pass them as push constants; a captured step reads them from
 * a buffer that is written before every replay, so the same f32 values reach the same code. */
enum { C_LR, C_STEP_SIZE, C_BC2_SQRT, C_DECAY, C_FIRST, C_SLOT = 8 };

#define LOCAL 128
#define MULTI_BINDINGS (NSTATE + 2)   /* the arrays: parameter, states, gradient */
#define PI 3.14159265358979323846

/* Moves t out of every scope (freed by vkg_optim_free), like vkg_keep applied at each level. */
static vkg_tensor *persist(vkg_tensor *t) {
    while (t && t->scope > 0) vkg_keep(t);
    return t;
}

typedef struct optim_param {
    char *name;
    vkg_tensor *p;
    vkg_tensor *s[NSTATE];  /* the slots of optim_step.comp's bindings 1..3 */
    int64_t step;
} optim_param;

/* A graph that captured steps of this optimizer (vkgrad/graph.h): per captured parameter step, a
 * slot of a coefficient buffer, whose values the graph has computed and written before each run
 * (ahead: capture_run). Chunks of `per` slots, one tensor each. A parameter steps `mult` times
 * per run (once per captured vkg_optim_step that had its gradient), its slots in order `ord`;
 * its step count is brought up to date with the runs only when it is read (settle). */
typedef struct optim_capture {
    struct optim_capture *next;   /* in the optimizer's list                              */
    vkg_optim *opt;               /* NULL once the optimizer is freed                     */
    vkg_graph *graph;
    int *slots;                   /* the parameter index of each slot                     */
    int *mult, *ord;              /* per slot, made at the capture run                    */
    int nslots, capslots;
    int64_t counted;              /* the graph's runs that the step counts include        */
    vkg_tensor **chunks;
    int *stage;                   /* each chunk's stage in the graph                      */
    int nchunks, per;
    float *vals;                  /* nchunks * per * C_SLOT                               */
} optim_capture;

struct vkg_optim {
    vkg_optim_desc d;       /* defaults filled in */
    optim_param *params;
    int n, cap;
    optim_capture *captures;
};

static const char *kind_name(vkg_optim_kind k) {
    switch (k) {
    case VKG_OPTIM_SGD: return "SGD";
    case VKG_OPTIM_ADAM: return "Adam";
    case VKG_OPTIM_ADAMW: return "AdamW";
    case VKG_OPTIM_RMSPROP: return "RMSprop";
    }
    return "?";
}

/* 0: the default; VKG_OPTIM_ZERO: an explicit 0; other negatives and non-finite: refused. */
static bool hyper(double *v, double def, const char *what, vkg_optim_kind k) {
    if (*v == 0.0) *v = def;
    else if (*v == VKG_OPTIM_ZERO) *v = 0.0;
    else if (!(*v > 0.0) || !isfinite(*v)) {
        vkg_fail(VKG_ERR_INVALID, "vkg_optim_new: %s %s is %g; it must be >= 0 (VKG_OPTIM_ZERO for an explicit 0)",
                 kind_name(k), what, *v);
        return false;
    }
    return true;
}

vkg_optim *vkg_optim_new(const vkg_optim_desc *desc) {
    vkg_optim_desc d = desc ? *desc : (vkg_optim_desc){ 0 };
    vkg_optim_kind k = d.kind;
    if ((unsigned)k > VKG_OPTIM_RMSPROP) return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: unknown kind %d", (int)k);
    bool adam = k == VKG_OPTIM_ADAM || k == VKG_OPTIM_ADAMW;
    if (!hyper(&d.lr, k == VKG_OPTIM_RMSPROP ? 1e-2 : 1e-3, "lr", k) ||
        !hyper(&d.weight_decay, k == VKG_OPTIM_ADAMW ? 1e-2 : 0.0, "weight_decay", k) ||
        !hyper(&d.momentum, 0.0, "momentum", k) || !hyper(&d.dampening, 0.0, "dampening", k) ||
        !hyper(&d.beta1, 0.9, "beta1", k) || !hyper(&d.beta2, 0.999, "beta2", k) || !hyper(&d.eps, 1e-8, "eps", k) ||
        !hyper(&d.alpha, 0.99, "alpha", k))
        return NULL;
    if (adam && (d.beta1 >= 1.0 || d.beta2 >= 1.0))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: %s betas (%g, %g) must be in [0, 1)", kind_name(k), d.beta1,
                             d.beta2);
    if (k == VKG_OPTIM_SGD && d.nesterov && (d.momentum <= 0.0 || d.dampening != 0.0))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: SGD nesterov needs momentum > 0 and dampening 0 (momentum "
                                              "%g, dampening %g)",
                             d.momentum, d.dampening);
    if ((d.nesterov || d.dampening != 0.0) && k != VKG_OPTIM_SGD)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: nesterov and dampening are SGD's; %s has neither",
                             kind_name(k));
    if (d.momentum != 0.0 && adam)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: %s has no momentum (use beta1)", kind_name(k));
    if (d.amsgrad && !adam)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: amsgrad is Adam's and AdamW's, not %s's", kind_name(k));
    if (d.centered && k != VKG_OPTIM_RMSPROP)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_new: centered is RMSprop's, not %s's", kind_name(k));
    vkg_optim *o = calloc(1, sizeof *o);
    if (!o) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_new: out of host memory");
    o->d = d;
    return o;
}

void vkg_optim_free(vkg_optim *opt) {
    if (!opt) return;
    for (optim_capture *c = opt->captures; c; c = c->next) c->opt = NULL; /* their replays now fail */
    vkg_graph_values_changed();
    for (int i = 0; i < opt->n; i++) {
        for (int j = 0; j < NSTATE; j++) vkg_free(opt->params[i].s[j]);
        free(opt->params[i].name);
    }
    free(opt->params);
    free(opt);
}

/* The state names of each slot, "" where the configuration has no such state. */
static const char *slot_name(const vkg_optim_desc *d, int j) {
    switch (d->kind) {
    case VKG_OPTIM_SGD: return j == 0 && d->momentum != 0.0 ? "momentum_buffer" : "";
    case VKG_OPTIM_ADAM:
    case VKG_OPTIM_ADAMW: return j == 0 ? "exp_avg" : j == 1 ? "exp_avg_sq" : d->amsgrad ? "max_exp_avg_sq" : "";
    case VKG_OPTIM_RMSPROP:
        return j == 0 ? "square_avg" : j == 1 ? (d->momentum > 0.0 ? "momentum_buffer" : "") : d->centered ? "grad_avg" : "";
    }
    return "";
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

static optim_param *find(const vkg_optim *opt, const char *name) {
    for (int i = 0; opt && name && i < opt->n; i++)
        if (strcmp(opt->params[i].name, name) == 0) return &opt->params[i];
    return NULL;
}

vkg_status vkg_optim_add(vkg_optim *opt, const char *name, vkg_tensor *param) {
    if (!opt || !name) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: the optimizer or name is NULL");
    if (!param) {
        vkg_status last = vkg_last_status();
        return last != VKG_OK ? last : vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: parameter \"%s\" is NULL", name);
    }
    char b[192];
    if (param->dead) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: parameter \"%s\" was freed", name);
    if (param->dtype != VKG_F32 || !vkg_is_contiguous(param))
        return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: parameter \"%s\" is %s%s; parameters are contiguous f32", name,
                        vkg_desc(param, b, sizeof b), vkg_is_contiguous(param) ? "" : " (a non-contiguous view)");
    if (!param->requires_grad || param->node)
        return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: parameter \"%s\" %s", name,
                        param->node ? "is not a leaf (it was computed from other tensors)"
                                    : "does not require grad (vkg_requires_grad)");
    if (find(opt, name)) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: a parameter named \"%s\" is already added", name);
    for (int i = 0; i < opt->n; i++)
        if (opt->params[i].p == param)
            return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add: \"%s\" is the parameter already added as \"%s\"", name,
                            opt->params[i].name);
    if (opt->n == opt->cap) {
        int cap = opt->cap ? 2 * opt->cap : 16;
        optim_param *np = realloc(opt->params, (size_t)cap * sizeof *np);
        if (!np) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_add: out of host memory");
        opt->params = np;
        opt->cap = cap;
    }
    optim_param e = { .p = param, .name = dup_str(name) };
    if (!e.name) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_add: out of host memory");
    for (int j = 0; j < NSTATE; j++) {
        if (!*slot_name(&opt->d, j)) continue;
        e.s[j] = persist(vkg_zeros(param->shape));
        if (!e.s[j]) {
            for (int i = 0; i < j; i++) vkg_free(e.s[i]);
            free(e.name);
            return vkg_last_status();
        }
    }
    opt->params[opt->n++] = e;
    return VKG_OK;
}

vkg_status vkg_optim_add_params(vkg_optim *opt, const char *const *names, vkg_tensor *const *params, int n) {
    if (n < 0 || (n > 0 && !params)) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add_params: %d parameters at %p", n,
                                                     (const void *)params);
    for (int i = 0; i < n; i++) {
        char def[32];
        snprintf(def, sizeof def, "%d", opt ? opt->n : 0);
        vkg_status st = vkg_optim_add(opt, names && names[i] ? names[i] : def, params[i]);
        if (st != VKG_OK) return st;
    }
    return VKG_OK;
}

vkg_status vkg_optim_add_module(vkg_optim *opt, const vkg_module *m) {
    if (!m) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_add_module: the module is NULL");
    const char *const *names;
    vkg_tensor *const *params;
    int n = vkg_module_params(m, &names, &params);
    return vkg_optim_add_params(opt, names, params, n);
}

/* The per-step values of step t (1-based), computed in double and rounded once to f32. */
static void coefs(const vkg_optim_desc *d, int64_t t, float out[C_SLOT]) {
    memset(out, 0, C_SLOT * sizeof *out);
    out[C_LR] = (float)d->lr;
    out[C_FIRST] = t == 1 ? 1.0f : 0.0f;
    if (d->kind == VKG_OPTIM_ADAM || d->kind == VKG_OPTIM_ADAMW) {
        out[C_STEP_SIZE] = (float)(d->lr / (1.0 - pow(d->beta1, (double)t)));
        out[C_BC2_SQRT] = (float)sqrt(1.0 - pow(d->beta2, (double)t));
        if (d->kind == VKG_OPTIM_ADAMW) out[C_DECAY] = (float)(1.0 - d->lr * d->weight_decay);
    }
}

/* Adds the runs of c's graph since the last call to its parameters' step counts. */
static void settle_capture(optim_capture *c) {
    int64_t runs = vkg_graph_replays(c->graph) - c->counted;
    if (runs <= 0 || !c->opt || !c->mult) return;
    for (int k = 0; k < c->nslots; k++)
        if (c->slots[k] >= 0 && c->ord[k] == 0) c->opt->params[c->slots[k]].step += runs * c->mult[k];
    c->counted += runs;
}

/* Brings every step count up to date with the runs of the graphs that captured opt's steps. */
static void settle(const vkg_optim *opt) {
    for (optim_capture *c = opt->captures; c; c = c->next) settle_capture(c);
}

/* Each slot's multiplicity and order among its parameter's slots (at the capture run). */
static vkg_status slot_orders(optim_capture *c) {
    int n = c->nslots ? c->nslots : 1, *seen = calloc((size_t)c->opt->n + 1, sizeof *seen);
    c->mult = malloc((size_t)n * sizeof *c->mult);
    c->ord = malloc((size_t)n * sizeof *c->ord);
    if (!seen || !c->mult || !c->ord) {
        free(seen);
        free(c->mult);
        free(c->ord);
        c->mult = c->ord = NULL;
        return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_graph_capture_end: out of host memory");
    }
    for (int k = 0; k < c->nslots; k++) c->ord[k] = c->slots[k] >= 0 ? seen[c->slots[k]]++ : 0;
    for (int k = 0; k < c->nslots; k++) c->mult[k] = c->slots[k] >= 0 ? seen[c->slots[k]] : 0;
    free(seen);
    return VKG_OK;
}

/* The graph's hook: the values of run r, from the step counts as of now. */
static vkg_status capture_run(void *user, int64_t r) {
    optim_capture *c = user;
    if (!c->opt)
        return vkg_fail(VKG_ERR_INVALID, "vkg_graph_replay: the optimizer whose steps the graph captured was freed");
    if (!c->mult) {
        vkg_status st = slot_orders(c);
        if (st != VKG_OK) return st;
    }
    settle(c->opt);
    int64_t ahead = r - vkg_graph_replays(c->graph), prev = -1;
    for (int k = 0; k < c->nslots; k++) {
        if (c->slots[k] < 0) continue; /* padding: stays 0 */
        int64_t t = c->opt->params[c->slots[k]].step + ahead * c->mult[k] + c->ord[k] + 1;
        float *v = &c->vals[(size_t)k * C_SLOT];
        /* parameters mostly share their step count: two pow() per parameter were a fifth of a
         * replay's host time */
        if (t == prev) memcpy(v, v - C_SLOT, C_SLOT * sizeof *v);
        else coefs(&c->opt->d, t, v);
        prev = t;
    }
    for (int i = 0; i < c->nchunks; i++) {
        vkg_status st = vkg_graph_stage_write(c->graph, c->stage[i], &c->vals[(size_t)i * c->per * C_SLOT]);
        if (st != VKG_OK) return st;
    }
    return VKG_OK;
}

static void capture_release(void *user, bool at_shutdown) {
    optim_capture *c = user;
    settle_capture(c); /* the runs of the graph now freed stay counted */
    if (c->opt)
        for (optim_capture **p = &c->opt->captures; *p; p = &(*p)->next)
            if (*p == c) {
                *p = c->next;
                break;
            }
    for (int i = 0; i < c->nchunks && !at_shutdown; i++) vkg_free(c->chunks[i]); /* at shutdown: already freed */
    free(c->chunks);
    free(c->stage);
    free(c->slots);
    free(c->mult);
    free(c->ord);
    free(c->vals);
    free(c);
}

/* Appends a slot for parameter `param` (-1: padding) to c, with a new chunk when it needs one. */
static vkg_status add_slot(optim_capture *c, int param) {
    int k = c->nslots;
    if (k == c->capslots) {
        int cap = c->capslots ? 2 * c->capslots : 16;
        int *ns = realloc(c->slots, (size_t)cap * sizeof *ns);
        if (!ns) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_step: out of host memory");
        c->slots = ns;
        c->capslots = cap;
    }
    if (k / c->per == c->nchunks) {
        vkg_tensor **nc = realloc(c->chunks, (size_t)(c->nchunks + 1) * sizeof *nc);
        if (!nc) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_step: out of host memory");
        c->chunks = nc;
        int *nst = realloc(c->stage, (size_t)(c->nchunks + 1) * sizeof *nst);
        if (!nst) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_step: out of host memory");
        c->stage = nst;
        size_t chunk = (size_t)c->per * C_SLOT;
        float *nv = realloc(c->vals, (size_t)(c->nchunks + 1) * chunk * sizeof *nv);
        if (!nv) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_step: out of host memory");
        c->vals = nv;
        memset(nv + (size_t)c->nchunks * chunk, 0, chunk * sizeof *nv); /* slots past the last stay 0 */
        /* no fill: a dispatch here would be captured and run after the values are written */
        vkg_tensor *t = persist(vkg_tensor_alloc(VKG_SHAPE((int64_t)chunk), VKG_F32, true, "vkg_optim_step"));
        if (!t) return vkg_last_status();
        c->chunks[c->nchunks] = t;
        c->stage[c->nchunks] = vkg_graph_stage_add(c->graph, t->storage, 0, (VkDeviceSize)chunk * sizeof(float));
        if (c->stage[c->nchunks++] < 0) return vkg_last_status();
    }
    c->slots[c->nslots++] = param;
    return VKG_OK;
}

/* Inside a capture: a new slot for parameter e's step, the first of `room` that one dispatch
 * reads (an optim_multi group: consecutive in one chunk, so padding first where the chunk has
 * fewer left); its buffer and offset in *buf, *off. */
static vkg_status capture_slot(vkg_optim *opt, const optim_param *e, int room, vkg_tensor **buf, uint32_t *off) {
    vkg_graph *g = vkg_graph_capturing();
    optim_capture *c = opt->captures;
    while (c && c->graph != g) c = c->next;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_step: out of host memory");
        c->opt = opt;
        c->graph = g;
        c->per = opt->n > MULTI ? opt->n : MULTI; /* a group fits in a chunk */
        vkg_status st = vkg_graph_hook_add(g, (vkg_graph_hook){ capture_run, capture_release, c });
        if (st != VKG_OK) {
            free(c);
            return st;
        }
        c->next = opt->captures;
        opt->captures = c;
    }
    vkg_status st = VKG_OK;
    while (st == VKG_OK && c->nslots % c->per + room > c->per) st = add_slot(c, -1);
    int k = c->nslots;
    if (st == VKG_OK) st = add_slot(c, (int)(e - opt->params));
    if (st != VKG_OK) return st;
    *buf = c->chunks[k / c->per];
    *off = (uint32_t)((k % c->per) * C_SLOT);
    return VKG_OK;
}

/* Checks parameter e's gradient; *gc gets it contiguous (a view is gathered), NULL when e has none. */
static vkg_status grad_of(const optim_param *e, vkg_tensor **gc) {
    *gc = NULL;
    vkg_tensor *g = e->p->grad;
    if (!g) return VKG_OK;
    char a[192], b[192];
    if (g->dtype != VKG_F32 || g->shape.ndim != e->p->shape.ndim || vkg_numel(g) != vkg_numel(e->p))
        return vkg_fail(VKG_ERR_INVALID, "vkg_optim_step: parameter \"%s\" is %s but its gradient is %s", e->name,
                        vkg_desc(e->p, a, sizeof a), vkg_desc(g, b, sizeof b));
    if (e->p->dead || !e->p->storage)
        return vkg_fail(VKG_ERR_INVALID, "vkg_optim_step: parameter \"%s\" was freed", e->name);
    if (vkg_numel(e->p) == 0) return VKG_OK;
    *gc = vkg_contiguous(g);
    return *gc ? VKG_OK : vkg_last_status();
}

/* The push constants of step t but the tensors' sizes and offsets; returns the algorithm. */
static uint32_t step_push(const vkg_optim_desc *d, int64_t t, bool captured, vkg_optim_push *pc) {
    float cf[C_SLOT];
    coefs(d, t, cf);
    *pc = (vkg_optim_push){ .lr = cf[C_LR], .eps = (float)d->eps, .momentum = (float)d->momentum };
    uint32_t f = d->maximize ? F_MAXIMIZE : 0;
    if (captured) f |= F_COEF;
    switch (d->kind) {
    case VKG_OPTIM_SGD:
        pc->wd = (float)d->weight_decay;
        pc->damp1 = (float)(1.0 - d->dampening);
        if (d->momentum != 0.0) f |= F_MOMENTUM;
        if (cf[C_FIRST] != 0.0f) f |= F_FIRST;
        if (d->nesterov) f |= F_NESTEROV;
        break;
    case VKG_OPTIM_ADAM:
    case VKG_OPTIM_ADAMW:
        if (d->kind == VKG_OPTIM_ADAMW) {
            f |= F_DECOUPLED;
            pc->decay = cf[C_DECAY];
        } else {
            pc->wd = (float)d->weight_decay;
        }
        if (d->amsgrad) f |= F_AMSGRAD;
        pc->w1 = (float)(1.0 - d->beta1);
        pc->beta2 = (float)d->beta2;
        pc->w2 = (float)(1.0 - d->beta2);
        pc->step_size = cf[C_STEP_SIZE];
        pc->bc2_sqrt = cf[C_BC2_SQRT];
        break;
    case VKG_OPTIM_RMSPROP:
        pc->wd = (float)d->weight_decay;
        pc->w1 = (float)(1.0 - d->alpha);
        pc->beta2 = (float)d->alpha;
        if (d->momentum > 0.0) f |= F_MOMENTUM;
        if (d->centered) f |= F_CENTERED;
        break;
    }
    pc->flags = f;
    return d->kind == VKG_OPTIM_SGD ? ALGO_SGD : d->kind == VKG_OPTIM_RMSPROP ? ALGO_RMSPROP : ALGO_ADAM;
}

/* The step of the k parameters es[0..k) (k <= MULTI, gradients gcs, the same step count): one
 * optim_multi dispatch, or with k == 1 one of optim_step(_vec4). */
static vkg_status step_group(vkg_optim *opt, optim_param **es, vkg_tensor **gcs, int k) {
    bool captured = vkg_graph_capturing() != NULL;
    vkg_tensor *cbuf = NULL;
    uint32_t c_off = 0;
    /* captured: every parameter has a slot, so that each one's step count advances at every run;
     * a group's slots follow one another, and parameter i reads the i-th (their step counts are
     * equal at the capture, not necessarily later: vkg_optim_set_step_count) */
    for (int i = 0; captured && i < k; i++) {
        vkg_tensor *b;
        uint32_t o;
        vkg_status st = capture_slot(opt, es[i], i == 0 ? k : 1, &b, &o);
        if (st != VKG_OK) return st;
        if (i == 0) {
            cbuf = b;
            c_off = o;
        }
    }
    int64_t t = es[0]->step + 1;
    vkg_optim_push pc;
    uint32_t algo = step_push(&opt->d, t, captured, &pc);
    pc.c_off = c_off;
    /* the configuration's flags are a specialization constant too (optim_step.comp's CONFIG) */
    uint32_t config = pc.flags & ~(uint32_t)(F_FIRST | F_COEF);
    vkg_dispatch_desc dd = { .op = VKG_OP_COUNT, .name = "optim_step", .spec = { algo, config }, .nspec = 2,
                             .local_size = LOCAL, .push = &pc, .push_size = sizeof pc };
    if (k == 1) {
        optim_param *e = es[0];
        int64_t n = vkg_numel(e->p);
        pc.n = (uint32_t)n;
        pc.p_off = (uint32_t)e->p->offset;
        pc.g_off = (uint32_t)gcs[0]->offset;
        /* optim_step_vec4: four elements an item where the offsets allow (the state tensors start at 0) */
        bool vec4 = pc.p_off % 4 == 0 && pc.g_off % 4 == 0 && n >= 4;
        dd.groups[0] = vkg_groups_for(vec4 ? (uint64_t)n / 4 : (uint64_t)n, LOCAL);
        dd.flops = 12.0 * (double)n;
        dd.nout = 1 + NSTATE;
        dd.bind[0] = e->p;
        for (int j = 0; j < NSTATE; j++) dd.bind[1 + j] = e->s[j] ? e->s[j] : e->p; /* unused slots: never touched */
        dd.bind[1 + NSTATE] = gcs[0];
        dd.bind[2 + NSTATE] = cbuf ? cbuf : gcs[0]; /* eager: the values are push constants, the slot is not read */
        /* optim_step_tex: the same reading through texel views where the device prefers them:
         * bindings 6-9 view what 0-3 write, 4 is the gradient's view */
        for (int j = 0; j <= NSTATE; j++) dd.bind[3 + NSTATE + j] = dd.bind[j];
        bool tex = vec4 && vkg_texel_bind(&dd, 1u << (1 + NSTATE) | 0xfu << (3 + NSTATE), 0u);
        if (tex) {
            for (int j = 0; j <= NSTATE; j++) pc.tex[j] = (uint32_t)(vkg_texel_base(dd.bind[j]->storage) / 4);
            pc.tex[1 + NSTATE] = (uint32_t)(vkg_texel_base(gcs[0]->storage) / 4);
        } else {
            memset(&dd.bind[3 + NSTATE], 0, (NSTATE + 1) * sizeof dd.bind[0]);
        }
        dd.shader = tex ? "optim_step_tex" : vec4 ? "optim_step_vec4" : "optim_step";
    } else {
        /* binding j holds MULTI buffers, parameter i's at bind[j * MULTI + i]; slots past k
         * repeat the last parameter's (every descriptor must be valid; rows past k never run) */
        uint64_t most = 0;
        dd.flops = 0;
        for (int i = 0; i < MULTI; i++) {
            optim_param *e = es[i < k ? i : k - 1];
            int64_t n = vkg_numel(e->p);
            if (i < k) {
                pc.nm[i] = (uint32_t)n;
                dd.flops += 12.0 * (double)n;
                if ((uint64_t)n / 4 > most) most = (uint64_t)n / 4;
            }
            dd.bind[i] = e->p;
            for (int j = 0; j < NSTATE; j++) dd.bind[(1 + j) * MULTI + i] = e->s[j] ? e->s[j] : e->p;
            dd.bind[(1 + NSTATE) * MULTI + i] = gcs[i < k ? i : k - 1];
        }
        dd.bind[MULTI_BINDINGS * MULTI] = cbuf ? cbuf : gcs[0];
        for (int j = 0; j < MULTI_BINDINGS; j++) dd.array[j] = MULTI;
        dd.shader = "optim_multi";
        dd.nout = (1 + NSTATE) * MULTI;
        dd.groups[0] = vkg_groups_for(most ? most : 1, LOCAL);
        dd.groups[1] = (uint32_t)k;
    }
    vkg_status st = vkg_dispatch(&dd);
    for (int i = 0; st == VKG_OK && !captured && i < k; i++) es[i]->step = t;
    return st;
}

/* Whether this step groups parameters at all: a device that indexes arrays of MULTI_BINDINGS x
 * MULTI buffers, unless VKG_OPTIM_MULTI=0. Then whether parameter e (gradient gc) can join a
 * group: offsets 0 (its buffers are bound whole), at least 4 elements, and on CPU devices at
 * most CPU_MULTI_MOST: there an array access costs a little more than a plain one (the MLP's
 * Adam step took 5-7% more GPU time with its 784 x 512 weight in the group), so only small
 * tensors, whose dispatch cost (~44 us on lavapipe) exceeds their work, gain. */
#define CPU_MULTI_MOST 65536
/* Where the single steps read texel views (optim_step_tex; the arrays of optim_multi cannot be
 * views) they run 4-5x faster than the storage reads of a group, so only biases and norms
 * group: the LSTM's Adam step took 2.8 ms of GPU time with no groups, 6.2 ms with 64K. */
#define TEX_MULTI_MOST 4096
static bool multi_on(void) {
    const char *env = getenv("VKG_OPTIM_MULTI"); /* 0: one dispatch per parameter (for comparisons) */
    return vkg_ctx.max_descriptors >= MULTI_BINDINGS * MULTI + 1 && !(env && strcmp(env, "0") == 0);
}
static bool multi_ok(const optim_param *e, const vkg_tensor *gc) {
    int64_t n = vkg_numel(e->p);
    return e->p->offset == 0 && gc->offset == 0 && n >= 4 && n <= UINT32_MAX &&
           (vkg_ctx.info.type != VKG_DEVICE_CPU || n <= (vkg_ctx.texel_reads ? TEX_MULTI_MOST : CPU_MULTI_MOST));
}

/* Whether parameter a goes before b: larger step counts first (a group's parameters share one),
 * then larger tensors (similar sizes in a group waste fewer empty workgroups), then in order. */
static bool before(const optim_param *a, const optim_param *b) {
    if (a->step != b->step) return a->step > b->step;
    int64_t na = vkg_numel(a->p), nb = vkg_numel(b->p);
    return na != nb ? na > nb : a < b;
}

vkg_status vkg_optim_step(vkg_optim *opt) {
    if (!opt) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_step: the optimizer is NULL");
    if (!vkg_ready("vkg_optim_step")) return vkg_last_status();
    settle(opt);
    vkg_status st = VKG_OK;
    vkg_tensor **gcs = calloc((size_t)opt->n + 1, sizeof *gcs);
    int *order = calloc((size_t)opt->n + 1, sizeof *order), norder = 0;
    if (!gcs || !order) {
        free(gcs);
        free(order);
        return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_optim_step: out of host memory");
    }
    vkg_no_grad_begin();
    /* parameters without a gradient keep their step count; empty ones count a step */
    for (int i = 0; i < opt->n && st == VKG_OK; i++) {
        optim_param *e = &opt->params[i];
        st = grad_of(e, &gcs[i]);
        if (st == VKG_OK && !gcs[i] && e->p->grad) {
            if (vkg_graph_capturing()) {
                vkg_tensor *b;
                uint32_t o;
                st = capture_slot(opt, e, 1, &b, &o);
            } else {
                e->step++;
            }
        }
        if (st == VKG_OK && gcs[i]) order[norder++] = i;
    }
    for (int i = 1; i < norder; i++) /* insertion sort: a model has tens of parameters */
        for (int j = i; j > 0 && before(&opt->params[order[j]], &opt->params[order[j - 1]]); j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    bool multi = multi_on(); /* once per step, not per parameter */
    optim_param *group[MULTI];
    vkg_tensor *ggc[MULTI];
    int k = 0;
    for (int j = 0; j <= norder && st == VKG_OK; j++) {
        optim_param *e = j < norder ? &opt->params[order[j]] : NULL;
        bool joins = e && multi && multi_ok(e, gcs[order[j]]);
        /* a group ends when full, at a new step count, or at the end; a parameter that cannot
         * join goes alone in between */
        if (k > 0 && (!e || (joins && (k == MULTI || group[0]->step != e->step)))) {
            st = step_group(opt, group, ggc, k);
            k = 0;
        }
        if (st != VKG_OK || !e) break;
        if (joins) {
            group[k] = e;
            ggc[k++] = gcs[order[j]];
        } else {
            st = step_group(opt, &e, &gcs[order[j]], 1);
        }
    }
    for (int i = 0; i < opt->n; i++)
        if (gcs[i] && gcs[i] != opt->params[i].p->grad) vkg_free(gcs[i]);
    free(gcs);
    free(order);
    vkg_no_grad_end();
    if (!vkg_graph_capturing()) vkg_graph_values_changed(); /* the step counts moved */
    return st;
}

void vkg_optim_zero_grad(vkg_optim *opt) {
    for (int i = 0; opt && i < opt->n; i++) vkg_zero_grad(opt->params[i].p);
}

vkg_optim_desc vkg_optim_get_desc(const vkg_optim *opt) { return opt ? opt->d : (vkg_optim_desc){ 0 }; }
void vkg_optim_set_lr(vkg_optim *opt, double lr) {
    if (!opt || opt->d.lr == lr) return;
    opt->d.lr = lr;
    if (opt->captures) vkg_graph_values_changed();
}
double vkg_optim_lr(const vkg_optim *opt) { return opt ? opt->d.lr : 0.0; }
int vkg_optim_param_count(const vkg_optim *opt) { return opt ? opt->n : 0; }
const char *vkg_optim_param_name(const vkg_optim *opt, int i) {
    return opt && i >= 0 && i < opt->n ? opt->params[i].name : NULL;
}
vkg_tensor *vkg_optim_param(const vkg_optim *opt, int i) { return opt && i >= 0 && i < opt->n ? opt->params[i].p : NULL; }

vkg_tensor *vkg_optim_state(const vkg_optim *opt, const char *param_name, const char *state_name) {
    optim_param *e = find(opt, param_name);
    if (!e)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_state: no parameter named \"%s\"", param_name ? param_name : "(null)");
    for (int j = 0; state_name && j < NSTATE; j++) {
        const char *s = slot_name(&opt->d, j);
        if (*s && strcmp(s, state_name) == 0) return e->s[j];
    }
    return vkg_fail_null(VKG_ERR_INVALID, "vkg_optim_state: %s as configured keeps no state \"%s\"", kind_name(opt->d.kind),
                         state_name ? state_name : "(null)");
}

int64_t vkg_optim_step_count(const vkg_optim *opt, const char *param_name) {
    optim_param *e = find(opt, param_name);
    if (!e) {
        vkg_fail(VKG_ERR_INVALID, "vkg_optim_step_count: no parameter named \"%s\"", param_name ? param_name : "(null)");
        return -1;
    }
    settle(opt);
    return e->step;
}

vkg_status vkg_optim_set_step_count(vkg_optim *opt, const char *param_name, int64_t step) {
    optim_param *e = find(opt, param_name);
    if (!e)
        return vkg_fail(VKG_ERR_INVALID, "vkg_optim_set_step_count: no parameter named \"%s\"",
                        param_name ? param_name : "(null)");
    if (step < 0) return vkg_fail(VKG_ERR_INVALID, "vkg_optim_set_step_count: step %lld is negative", (long long)step);
    settle(opt);
    e->step = step;
    vkg_graph_values_changed();
    return VKG_OK;
}

/* ---- schedules -------------------------------------------------------------------------------- */
double vkg_lr_step_decay(double base_lr, int64_t step, int64_t step_size, double gamma) {
    if (step < 0) step = 0;
    if (step_size < 1) step_size = 1;
    return base_lr * pow(gamma, (double)(step / step_size));
}

double vkg_lr_cosine(double base_lr, int64_t step, int64_t warmup, int64_t total, double min_lr) {
    if (step < 0) step = 0;
    if (step < warmup) return base_lr * (double)step / (double)warmup;
    double span = (double)(total - warmup);
    double progress = span > 0 ? (double)(step - warmup) / span : 1.0;
    if (progress > 1.0) progress = 1.0;
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + cos(PI * progress));
}
