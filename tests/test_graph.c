/* Graph capture and replay (vkgrad/graph.h): a small MLP training step (forward, backward,
 * optimizer step) captured once and replayed with fresh batches gives parameters, optimizer
 * state and losses bitwise equal to the same steps run eagerly from the same start, for Adam,
 * AdamW with a learning-rate schedule and SGD with momentum (whose first step differs); the
 * pooled-descriptor and staging paths; host inputs written for replays still in flight; the
 * optimizer's values computed ahead of the runs, through eager steps, a second graph, new step
 * counts and learning rates between them; and the refusals: nested captures, read-backs and waits inside a capture, shape changes, freed
 * optimizers, graphs left alive at shutdown. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"   /* vkg_copy_into: an in-place write to capture */
#include "support.h"
#include "vkgrad/graph.h"

#define IN 12
#define HID 20
#define OUT 5
#define BATCH 7
#define STEPS 5

typedef struct mlp {
    vkg_tensor *w1, *b1, *w2, *b2;
} mlp;

static vkg_tensor *param(vkg_shape s, uint64_t seed) { return vkgt_leaf(s, -0.5f, 0.5f, seed); }

static mlp mlp_new(vkg_optim *opt) {
    mlp m = { param(VKG_SHAPE(IN, HID), 1), param(VKG_SHAPE(HID), 2), param(VKG_SHAPE(HID, OUT), 3),
              param(VKG_SHAPE(OUT), 4) };
    const char *names[] = { "w1", "b1", "w2", "b2" };
    vkg_tensor *ps[] = { m.w1, m.b1, m.w2, m.b2 };
    cr_assert_eq(vkg_optim_add_params(opt, names, ps, 4), VKG_OK, "%s", vkg_last_error());
    return m;
}

/* Batch k: inputs and labels from fixed seeds. */
static void batch(int k, float *x, int32_t *y) {
    vkgt_fill(x, BATCH * IN, -1.0f, 1.0f, 100 + (uint64_t)k);
    for (int i = 0; i < BATCH; i++) y[i] = (int32_t)((i * 3 + k) % OUT);
}

/* One training step on the device tensors x, y; returns the loss tensor (in the current scope). */
static vkg_tensor *step(mlp *m, vkg_optim *opt, vkg_tensor *x, vkg_tensor *y) {
    vkg_optim_zero_grad(opt);
    vkg_tensor *h = vkg_relu(vkg_add(vkg_matmul(x, m->w1), m->b1));
    vkg_tensor *loss = vkg_cross_entropy(vkg_add(vkg_matmul(h, m->w2), m->b2), y, NULL);
    if (!loss || vkg_backward(loss) != VKG_OK || vkg_optim_step(opt) != VKG_OK) return NULL;
    return loss;
}

static double lr_at(int k) { return vkg_lr_cosine(1e-2, k, 2, STEPS, 1e-3); }

typedef struct run_result {
    float params[IN * HID + HID + HID * OUT + OUT];
    float state[IN * HID];   /* w1's first state slot */
    float loss[STEPS];
    int64_t steps;
} run_result;

static void collect(const mlp *m, vkg_optim *opt, const char *state_name, run_result *r) {
    const vkg_tensor *ps[] = { m->w1, m->b1, m->w2, m->b2 };
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)vkg_numel(ps[i]);
        cr_assert_eq(vkg_tensor_read(ps[i], r->params + off, n * sizeof(float)), VKG_OK, "%s", vkg_last_error());
        off += n;
    }
    vkg_tensor *s = vkg_optim_state(opt, "w1", state_name);
    cr_assert_not_null(s, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(s, r->state, sizeof r->state), VKG_OK, "%s", vkg_last_error());
    r->steps = vkg_optim_step_count(opt, "w1");
}

/* STEPS training steps, eager or captured once and replayed; sched: the lr follows lr_at. */
static void train(const vkg_optim_desc *d, bool graph, bool sched, const char *state_name, run_result *r) {
    vkg_optim *opt = vkg_optim_new(d);
    cr_assert_not_null(opt, "%s", vkg_last_error());
    mlp m = mlp_new(opt);
    float xh[BATCH * IN];
    int32_t yh[BATCH];
    vkg_graph *g = NULL;
    vkg_tensor *x = NULL, *y = NULL, *loss = NULL;
    if (graph) {
        g = vkg_graph_new();
        cr_assert_not_null(g, "%s", vkg_last_error());
        x = vkg_empty(VKG_SHAPE(BATCH, IN));
        y = vkg_empty_dtype(VKG_SHAPE(BATCH), VKG_I32);
    }
    for (int k = 0; k < STEPS; k++) {
        batch(k, xh, yh);
        if (sched) vkg_optim_set_lr(opt, lr_at(k));
        if (!graph) {
            vkg_scope_begin();
            vkg_tensor *xe = vkg_from_data(VKG_SHAPE(BATCH, IN), xh);
            vkg_tensor *ye = vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, yh);
            vkg_tensor *l = step(&m, opt, xe, ye);
            cr_assert_not_null(l, "eager step %d: %s", k, vkg_last_error());
            r->loss[k] = vkg_item(l);
            vkg_scope_end();
            continue;
        }
        if (k == 0) {
            /* the first step is the capture run; its inputs are written before the capture */
            cr_assert_eq(vkg_tensor_write(x, xh, sizeof xh), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_tensor_write(y, yh, sizeof yh), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK, "%s", vkg_last_error());
            cr_assert(vkg_graph_is_capturing());
            vkg_scope_begin();
            loss = vkg_keep(step(&m, opt, x, y));
            vkg_scope_end();   /* the step's temporaries: the graph keeps their memory */
            cr_assert_not_null(loss, "captured step: %s", vkg_last_error());
            cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
            cr_assert_gt(vkg_graph_dispatches(g), 10);
        } else {
            /* x from the device (a copy), y from host memory */
            vkg_scope_begin();
            vkg_tensor *xn = vkg_from_data(VKG_SHAPE(BATCH, IN), xh);
            cr_assert_eq(vkg_graph_input_copy(g, x, xn), VKG_OK, "%s", vkg_last_error());
            vkg_scope_end();
            cr_assert_eq(vkg_graph_input_write(g, y, yh, sizeof yh), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_graph_replay(g), VKG_OK, "replay %d: %s", k, vkg_last_error());
        }
        r->loss[k] = vkg_item(loss);
    }
    if (graph) cr_assert_eq(vkg_graph_replays(g), STEPS);
    collect(&m, opt, state_name, r);
    vkg_graph_free(g);
    vkg_free(x);
    vkg_free(y);
    vkg_free(loss);
    vkg_optim_free(opt);
    vkg_free(m.w1);
    vkg_free(m.b1);
    vkg_free(m.w2);
    vkg_free(m.b2);
}

static void assert_same(const run_result *a, const run_result *b) {
    cr_assert_eq(a->steps, STEPS);
    cr_assert_eq(b->steps, STEPS, "replayed steps counted: %lld", (long long)b->steps);
    for (int k = 0; k < STEPS; k++)
        cr_assert_eq(memcmp(&a->loss[k], &b->loss[k], sizeof(float)), 0, "loss of step %d: eager %.9g, replay %.9g", k,
                     (double)a->loss[k], (double)b->loss[k]);
    for (size_t i = 0; i < sizeof a->params / sizeof(float); i++)
        cr_assert_eq(memcmp(&a->params[i], &b->params[i], sizeof(float)), 0, "parameter element %zu: eager %.9g, "
                     "replay %.9g", i, (double)a->params[i], (double)b->params[i]);
    cr_assert_eq(memcmp(a->state, b->state, sizeof a->state), 0, "optimizer state differs");
    cr_assert(a->loss[STEPS - 1] < a->loss[0], "the steps train: loss %g -> %g", (double)a->loss[0],
              (double)a->loss[STEPS - 1]);
}

static void check_bitwise(const vkg_optim_desc *d, bool sched, const char *state_name) {
    static run_result eager, replay;
    memset(&eager, 0, sizeof eager);
    memset(&replay, 0, sizeof replay);
    train(d, false, sched, state_name, &eager);
    train(d, true, sched, state_name, &replay);
    assert_same(&eager, &replay);
}

VKG_TEST(graph, adam_replay_bitwise_equal_to_eager) {
    check_bitwise(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-2 }, false, "exp_avg_sq");
}

VKG_TEST(graph, adamw_schedule_replay_bitwise_equal_to_eager) {
    check_bitwise(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 1e-2, .weight_decay = 0.1, .amsgrad = true }, true,
                  "max_exp_avg_sq");
}

VKG_TEST(graph, sgd_momentum_replay_bitwise_equal_to_eager) {
    /* the first step initialises the momentum buffer: the capture run is step 1, replays are not */
    check_bitwise(&(vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .nesterov = true }, true,
                  "momentum_buffer");
}

/* The discrete-GPU paths: staging uploads and read-backs, descriptor sets from pools. */
VKG_TEST(graph, staging_and_pooled_descriptors) {
    vkg_shutdown();
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .force_staging = true, .no_push_descriptor = true,
                                            .cache_dir = getenv("VKG_TEST_CACHE") }),
                 VKG_OK, "%s", vkg_last_error());
    check_bitwise(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-2 }, false, "exp_avg_sq");
}

/* Replays queued back to back, nothing read between them: each run's optimizer values go through
 * a stage slot of its own while earlier runs are still in flight. Same parameters as eager. */
static void back_to_back(bool graph, float *out, size_t n) {
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 1e-2, .weight_decay = 0.05 });
    mlp m = mlp_new(opt);
    float xh[BATCH * IN];
    int32_t yh[BATCH];
    batch(3, xh, yh);
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(BATCH, IN), xh);
    vkg_tensor *y = vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, yh);
    vkg_graph *g = graph ? vkg_graph_new() : NULL;
    vkg_tensor *loss = NULL;
    for (int k = 0; k < 3 * STEPS; k++) {
        if (k % 4 == 3) vkg_optim_set_lr(opt, 1e-2 / (double)(k + 1));
        if (graph && k == 0) cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK, "%s", vkg_last_error());
        if (!graph || k == 0) {
            vkg_scope_begin();
            vkg_tensor *l = step(&m, opt, x, y);
            cr_assert_not_null(l, "step %d: %s", k, vkg_last_error());
            if (graph) loss = vkg_keep(l);
            vkg_scope_end();
            if (graph) cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
        } else {
            cr_assert_eq(vkg_graph_replay(g), VKG_OK, "replay %d: %s", k, vkg_last_error());
        }
    }
    cr_assert_eq(vkg_optim_step_count(opt, "b2"), 3 * STEPS);
    const vkg_tensor *ps[] = { m.w1, m.b1, m.w2, m.b2 };
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        size_t c = (size_t)vkg_numel(ps[i]);
        cr_assert_leq(off + c, n);
        cr_assert_eq(vkg_tensor_read(ps[i], out + off, c * sizeof(float)), VKG_OK, "%s", vkg_last_error());
        off += c;
    }
    vkg_graph_free(g);
    vkg_free(loss);
    vkg_optim_free(opt);
}

VKG_TEST(graph, back_to_back_replays_equal_eager) {
    static float eager[IN * HID + HID + HID * OUT + OUT], replay[IN * HID + HID + HID * OUT + OUT];
    back_to_back(false, eager, sizeof eager / sizeof *eager);
    back_to_back(true, replay, sizeof replay / sizeof *replay);
    for (size_t i = 0; i < sizeof eager / sizeof *eager; i++)
        cr_assert_eq(memcmp(&eager[i], &replay[i], sizeof(float)), 0, "element %zu: eager %.9g, replay %.9g", i,
                     (double)eager[i], (double)replay[i]);
}

VKG_TEST(graph, back_to_back_replays_staging_pooled) {
    vkg_shutdown();
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .force_staging = true, .no_push_descriptor = true,
                                            .cache_dir = getenv("VKG_TEST_CACHE") }),
                 VKG_OK, "%s", vkg_last_error());
    static float eager[IN * HID + HID + HID * OUT + OUT], replay[IN * HID + HID + HID * OUT + OUT];
    back_to_back(false, eager, sizeof eager / sizeof *eager);
    back_to_back(true, replay, sizeof replay / sizeof *replay);
    cr_assert_eq(memcmp(eager, replay, sizeof eager), 0, "parameters differ");
}

/* The optimizer's per-run values are computed ahead, eight runs at a time, and its step counts
 * are brought up to date only when read: whatever changes them between runs must reach the next
 * run. Two graphs A and B capture the same step, each with host inputs of its own, and run in an
 * irregular order (long stretches of A past the values written ahead, B in between), with eager
 * steps, vkg_optim_set_step_count and vkg_optim_set_lr between them; run eagerly, the same
 * sequence gives the same step counts after every step and bitwise equal parameters and Adam
 * state at the end. */
#define PLAN "ABAAAAAAAAAAAEAAABBAAAAAAAAAAAABAE"

static void planned(bool graph, run_result *r, int64_t *counts) {
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-2 });
    mlp m = mlp_new(opt);
    vkg_graph *g[2] = { NULL, NULL };
    vkg_tensor *x[2] = { NULL, NULL }, *y[2] = { NULL, NULL }, *keep[2] = { NULL, NULL };
    float xh[BATCH * IN];
    int32_t yh[BATCH];
    for (int k = 0; PLAN[k]; k++) {
        batch(k, xh, yh);
        if (k == 17) cr_assert_eq(vkg_optim_set_step_count(opt, "w1", 3), VKG_OK, "%s", vkg_last_error());
        if (k == 22) vkg_optim_set_lr(opt, 3e-3);
        int which = PLAN[k] - 'A';
        if (!graph || PLAN[k] == 'E') {
            vkg_scope_begin();
            vkg_tensor *l = step(&m, opt, vkg_from_data(VKG_SHAPE(BATCH, IN), xh),
                                 vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, yh));
            cr_assert_not_null(l, "eager step %d: %s", k, vkg_last_error());
            vkg_scope_end();
        } else if (!g[which]) {
            g[which] = vkg_graph_new();
            x[which] = vkg_from_data(VKG_SHAPE(BATCH, IN), xh);
            y[which] = vkg_from_data_dtype(VKG_SHAPE(BATCH), VKG_I32, yh);
            cr_assert_eq(vkg_graph_capture_begin(g[which]), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_graph_host_input(g[which], x[which]), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_graph_host_input(g[which], y[which]), VKG_OK, "%s", vkg_last_error());
            vkg_scope_begin();
            keep[which] = vkg_keep(step(&m, opt, x[which], y[which]));
            vkg_scope_end();
            cr_assert_not_null(keep[which], "capture %c: %s", PLAN[k], vkg_last_error());
            cr_assert_eq(vkg_graph_capture_end(g[which]), VKG_OK, "%s", vkg_last_error());
        } else {
            cr_assert_eq(vkg_graph_input_write(g[which], x[which], xh, sizeof xh), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_graph_input_write(g[which], y[which], yh, sizeof yh), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_graph_replay(g[which]), VKG_OK, "replay %d: %s", k, vkg_last_error());
        }
        counts[k] = vkg_optim_step_count(opt, "w1");
    }
    collect(&m, opt, "exp_avg", r);
    r->steps = vkg_optim_step_count(opt, "b2");
    for (int i = 0; i < 2; i++) {
        vkg_graph_free(g[i]);
        vkg_free(x[i]);
        vkg_free(y[i]);
        vkg_free(keep[i]);
    }
    vkg_optim_free(opt);
    vkg_free(m.w1);
    vkg_free(m.b1);
    vkg_free(m.w2);
    vkg_free(m.b2);
}

VKG_TEST(graph, optimizer_values_ahead_follow_every_change) {
    static run_result eager, replay;
    int64_t ce[sizeof PLAN], cg[sizeof PLAN];
    planned(false, &eager, ce);
    planned(true, &replay, cg);
    int n = (int)strlen(PLAN);
    for (int k = 0; k < n; k++) cr_assert_eq(cg[k], ce[k], "w1's step count after step %d: %lld, eager %lld", k,
                                             (long long)cg[k], (long long)ce[k]);
    cr_assert_eq(ce[n - 1], n - 17 + 3, "w1 counts from 3 after step 17");
    cr_assert_eq(replay.steps, n, "b2's step count %lld", (long long)replay.steps);
    cr_assert_eq(memcmp(eager.params, replay.params, sizeof eager.params), 0, "parameters differ");
    cr_assert_eq(memcmp(eager.state, replay.state, sizeof eager.state), 0, "Adam state differs");
}

/* Host inputs (vkg_graph_host_input): what is written for a replay reaches that run although the
 * runs before it are still in flight (nothing is read between replays); a replay given no new
 * values uses the newest ones; the capture run uses what the tensors held. The step is SGD with
 * lr 1 on loss = sum(index_select(p, idx) * x), which subtracts x[j] from p[idx[j]]: p ends at its
 * start minus what every run saw, exactly (small integers), with an i32 and an f32 input. */
static void host_inputs(void) {
    float ph[5] = { 100, 200, 300, 400, 500 };
    vkg_tensor *p = vkg_requires_grad(vkg_from_data(VKG_SHAPE(5), ph), true);
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 1 });
    vkg_optim_add_params(opt, (const char *[]){ "p" }, (vkg_tensor *[]){ p }, 1);
    int32_t ih[3] = { 0, 1, 2 };
    float xh[3] = { 1, 1, 1 };
    vkg_tensor *idx = vkg_from_data_dtype(VKG_SHAPE(3), VKG_I32, ih), *x = vkg_from_data(VKG_SHAPE(3), xh);
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_host_input(g, x), VKG_ERR_INVALID, "declared outside the capture");
    cr_assert(strstr(vkg_last_error(), "during its graph's capture"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_host_input(g, idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_host_input(g, x), VKG_OK, "%s", vkg_last_error());
    vkg_scope_begin();
    vkg_optim_zero_grad(opt);
    cr_assert_eq(vkg_backward(vkg_sum_all(vkg_mul(vkg_index_select(p, 0, idx), x))), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
    for (int k = 0;; k++) { /* what the runs see: the capture run's values, then the writes */
        for (int j = 0; j < 3; j++) ph[ih[j]] -= xh[j];
        if (k == 8) break;
        bool write_idx = k != 4 && k != 5, write_x = k != 5; /* run 6 keeps both, run 5 the indices */
        if (write_idx)
            for (int j = 0; j < 3; j++) ih[j] = (k + 2 * j) % 5;
        if (write_x)
            for (int j = 0; j < 3; j++) xh[j] = (float)((k + 1) * (j + 1));
        if (write_idx) cr_assert_eq(vkg_graph_input_write(g, idx, ih, sizeof ih), VKG_OK, "%s", vkg_last_error());
        if (write_x) cr_assert_eq(vkg_graph_input_write(g, x, xh, sizeof xh), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(vkg_graph_replay(g), VKG_OK, "replay %d: %s", k, vkg_last_error());
    }
    float out[5];
    cr_assert_eq(vkg_tensor_read(p, out, sizeof out), VKG_OK, "%s", vkg_last_error());
    for (int i = 0; i < 5; i++) cr_assert_eq(out[i], ph[i], "p[%d] is %g, want %g", i, (double)out[i], (double)ph[i]);
    vkg_tensor *other = vkg_zeros(VKG_SHAPE(3));
    cr_assert_eq(vkg_graph_input_copy(g, x, other), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "is a host input"), "%s", vkg_last_error());
    vkg_graph_free(g);
    vkg_optim_free(opt);
}

VKG_TEST(graph, host_inputs_reach_their_runs) { host_inputs(); }

VKG_TEST(graph, host_inputs_staging) {
    vkg_shutdown();
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .force_staging = true,
                                            .cache_dir = getenv("VKG_TEST_CACHE") }),
                 VKG_OK, "%s", vkg_last_error());
    host_inputs();
}

/* Eager work between replays sees the replayed values, and replays see eager writes. */
VKG_TEST(graph, eager_work_around_replays) {
    vkg_tensor *a = vkg_from_data(VKG_SHAPE(4), (float[]){ 1, 2, 3, 4 });
    vkg_tensor *b = vkg_zeros(VKG_SHAPE(4));
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK, "%s", vkg_last_error());
    vkg_scope_begin();
    vkg_tensor *t = vkg_mul_scalar(vkg_add(a, b), 2.0f);   /* b = 2 (a + b) + 1, in place */
    cr_assert_eq(vkg_copy_into(b, vkg_add_scalar(t, 1.0f)), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
    float want[4], got[4];
    for (int i = 0; i < 4; i++) want[i] = 2.0f * (float)(i + 1) + 1.0f;
    cr_assert_eq(vkg_tensor_read(b, got, sizeof got), VKG_OK);
    cr_assert_eq(memcmp(got, want, sizeof got), 0, "capture run: %g %g %g %g", got[0], got[1], got[2], got[3]);
    for (int r = 0; r < 3; r++) {
        /* an eager op writes a between replays: the replay must read it, not a stale value */
        vkg_scope_begin();
        cr_assert_eq(vkg_copy_into(a, vkg_add_scalar(a, 1.0f)), VKG_OK, "%s", vkg_last_error());
        vkg_scope_end();
        cr_assert_eq(vkg_graph_replay(g), VKG_OK, "%s", vkg_last_error());
        for (int i = 0; i < 4; i++) want[i] = 2.0f * ((float)(i + 2 + r) + want[i]) + 1.0f;
    }
    /* and an eager op right after the last replay reads its result */
    vkg_scope_begin();
    vkg_tensor *c = vkg_add_scalar(b, 0.0f);
    cr_assert_eq(vkg_tensor_read(c, got, sizeof got), VKG_OK);
    vkg_scope_end();
    cr_assert_eq(memcmp(got, want, sizeof got), 0, "after replays: %g %g %g %g, want %g %g %g %g", got[0], got[1],
                 got[2], got[3], want[0], want[1], want[2], want[3]);
    vkg_graph_free(g);
}

/* A temporary freed inside the capture serves the capture's later tensors, as in an eager step:
 * a chain of 40 ops on 1 MiB tensors keeps a few MiB, not 40, and replays right. */
VKG_TEST(graph, capture_reuses_freed_temporaries) {
    const int64_t n = 1 << 18;   /* 1 MiB of f32 */
    vkg_tensor *x = vkg_full(VKG_SHAPE(n), 1.0f);
    vkg_graph *g = vkg_graph_new();
    uint64_t before = vkg_memory_stats_get().in_use;
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    vkg_tensor *y = vkg_add_scalar(x, 0.0f);
    for (int i = 0; i < 40; i++) {
        vkg_tensor *z = vkg_add(y, x);   /* y + 1 */
        vkg_free(y);
        y = z;
    }
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
    uint64_t used = vkg_memory_stats_get().in_use - before;
    cr_assert_leq(used, (uint64_t)4 * n * 4, "the capture keeps %llu bytes for 40 temporaries of %lld",
                  (unsigned long long)used, (long long)n * 4);
    float v;
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(vkg_graph_replay(g), VKG_OK, "%s", vkg_last_error());
        vkg_tensor *last = vkg_narrow(y, 0, n - 1, 1);
        cr_assert_eq(vkg_tensor_read(last, &v, sizeof v), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(v, 41.0f, "replay %d: %g", r, (double)v);
    }
    vkg_graph_free(g);
}

/* ... but never bytes that every run reads as they were: a host upload made inside the capture,
 * or a tensor from before it, freed inside the capture, are not given to later tensors. */
VKG_TEST(graph, keeps_host_values_and_earlier_tensors) {
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(4), (float[]){ 1, 2, 3, 4 });
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    vkg_tensor *c = vkg_from_data(VKG_SHAPE(4), (float[]){ 10, 20, 30, 40 });
    vkg_tensor *t = vkg_add(x, c);
    vkg_free(c);
    vkg_free(x);
    vkg_tensor *u = vkg_mul_scalar(t, 2.0f);
    vkg_free(t);
    vkg_tensor *v = vkg_add_scalar(u, 1.0f);
    vkg_free(u);
    vkg_tensor *w = vkg_add_scalar(v, 1.0f);
    vkg_free(v);
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
    for (int r = 0; r < 3; r++) {
        float got[4];
        cr_assert_eq(vkg_tensor_read(w, got, sizeof got), VKG_OK, "%s", vkg_last_error());
        for (int i = 0; i < 4; i++)
            cr_assert_eq(got[i], 22.0f * (float)(i + 1) + 2.0f, "run %d, element %d: %g", r, i, (double)got[i]);
        cr_assert_eq(vkg_graph_replay(g), VKG_OK, "%s", vkg_last_error());
    }
    vkg_graph_free(g);
}

/* ---- refusals ---------------------------------------------------------------------------------- */
static vkg_graph *small_graph(vkg_tensor **x, vkg_tensor **y) {
    *x = vkg_from_data(VKG_SHAPE(2, 3), (float[]){ 1, 2, 3, 4, 5, 6 });
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK, "%s", vkg_last_error());
    *y = vkg_relu(vkg_sub_scalar(*x, 2.5f));
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
    return g;
}

VKG_TEST(graph, refuses_nested_capture_and_replay_inside) {
    vkg_graph *g = vkg_graph_new(), *h = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "being captured"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_capture_begin(h), VKG_ERR_INVALID);
    cr_assert_eq(vkg_graph_replay(h), VKG_ERR_INVALID);
    cr_assert_eq(vkg_graph_capture_end(h), VKG_ERR_INVALID);
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "an empty capture is a valid graph: %s", vkg_last_error());
    cr_assert_eq(vkg_graph_dispatches(g), 0);
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_ERR_INVALID, "a graph is captured once");
    cr_assert_eq(vkg_graph_replay(h), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "no captured step"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_replay(NULL), VKG_ERR_INVALID);
    vkg_graph_free(g);
    vkg_graph_free(h);
    vkg_graph_free(NULL);
}

VKG_TEST(graph, refuses_read_back_and_sync_inside_capture) {
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(3), (float[]){ 1, 2, 3 });
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    vkg_tensor *y = vkg_mul_scalar(x, 3.0f);
    cr_assert_not_null(y);
    cr_assert(isnan(vkg_item(vkg_sum_all(y))));
    cr_assert(strstr(vkg_last_error(), "read back inside a graph capture"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_capture_end(g), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "the capture failed"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_replay(g), VKG_ERR_INVALID, "a failed capture leaves the graph empty");
    vkg_graph_free(g);

    g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    cr_assert_eq(vkg_sync(), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "inside a graph capture"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_capture_end(g), VKG_ERR_INVALID);
    vkg_graph_free(g);

    /* a host write into a tensor the capture already uses would land before the step */
    g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    cr_assert_not_null(vkg_mul_scalar(x, 3.0f));
    cr_assert_eq(vkg_tensor_write(x, (float[]){ 4, 5, 6 }, 3 * sizeof(float)), VKG_ERR_INVALID);
    cr_assert_eq(vkg_graph_capture_end(g), VKG_ERR_INVALID);
    vkg_graph_free(g);

    /* the stream works as before afterwards */
    float out[3];
    cr_assert_eq(vkg_tensor_read(vkg_mul_scalar(x, 2.0f), out, sizeof out), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(out[2], 6.0f);
}

VKG_TEST(graph, refuses_shape_change_and_foreign_inputs) {
    vkg_tensor *x, *y;
    vkg_graph *g = small_graph(&x, &y);
    vkg_tensor *wrong = vkg_zeros(VKG_SHAPE(3, 2));
    cr_assert_eq(vkg_graph_input_copy(g, x, wrong), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "captured with this input as (2, 3) f32, the new value is (3, 2) f32"), "%s",
              vkg_last_error());
    cr_assert_eq(vkg_graph_input_write(g, x, (float[]){ 1, 2 }, 2 * sizeof(float)), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "new shape needs a new capture"), "%s", vkg_last_error());
    cr_assert_eq(vkg_graph_input_copy(g, wrong, x), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "not read by the captured step"), "%s", vkg_last_error());
    /* a good refresh, then the output follows */
    cr_assert_eq(vkg_graph_input_write(g, x, (float[]){ 10, 0, 3, 0, 0, 2.5f }, 6 * sizeof(float)), VKG_OK, "%s",
                 vkg_last_error());
    cr_assert_eq(vkg_graph_replay(g), VKG_OK, "%s", vkg_last_error());
    float out[6];
    cr_assert_eq(vkg_tensor_read(y, out, sizeof out), VKG_OK);
    cr_assert_eq(out[0], 7.5f);
    cr_assert_eq(out[2], 0.5f);
    cr_assert_eq(out[5], 0.0f);
    vkg_graph_free(g);
}

VKG_TEST(graph, refuses_replay_after_the_optimizer_is_freed) {
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM });
    mlp m = mlp_new(opt);
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(BATCH, IN));
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    vkg_scope_begin();
    vkg_optim_zero_grad(opt);
    vkg_tensor *h = vkg_relu(vkg_add(vkg_matmul(x, m.w1), m.b1));
    cr_assert_eq(vkg_backward(vkg_mean_all(vkg_add(vkg_matmul(h, m.w2), m.b2))), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    cr_assert_eq(vkg_graph_capture_end(g), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_optim_step_count(opt, "w2"), 1);
    cr_assert_eq(vkg_graph_replay(g), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_optim_step_count(opt, "w2"), 2);
    vkg_optim_free(opt);
    cr_assert_eq(vkg_graph_replay(g), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "optimizer whose steps the graph captured was freed"), "%s", vkg_last_error());
    vkg_graph_free(g);
}

/* Graphs (one captured, one mid-capture) and an optimizer left alive: shutdown frees them all. */
VKG_TEST(graph, shutdown_frees_live_graphs) {
    vkg_tensor *x, *y;
    small_graph(&x, &y);
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_SGD, .lr = 0.1 });
    mlp m = mlp_new(opt);
    vkg_graph *g = vkg_graph_new();
    cr_assert_eq(vkg_graph_capture_begin(g), VKG_OK);
    vkg_tensor *xi = vkg_zeros(VKG_SHAPE(BATCH, IN));
    cr_assert_eq(vkg_backward(vkg_mean_all(vkg_matmul(vkg_matmul(xi, m.w1), m.w2))), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s", vkg_last_error());
    vkg_shutdown();   /* vkgt_finish shuts down again (a no-op), then checks messages and leaks */
    vkg_optim_free(opt);
}
