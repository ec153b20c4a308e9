/* Reference models (models/models.h) at tiny widths: each model's output shape and parameter
 * names; its gradients against central differences of the device loss; 30 Adam steps on one
 * fixed batch drive its loss down; save -> load in a fresh context gives identical logits;
 * sampling from a checkpoint is deterministic for a seed; an interrupted run resumes to the
 * same bits as an uninterrupted one (the trainer's SIGINT path). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fashion_mnist.h"
#include "loader.h"
#include "models.h"
#include "support.h"
#include "text.h"
#include "vkgrad/checkpoint.h"

static char dir[64];
static char pbuf[4][256];

static const char *tpath(int k, const char *name) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/vkg_test_models.XXXXXX");
        cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
    }
    snprintf(pbuf[k], sizeof pbuf[k], "%s/%s", dir, name);
    return pbuf[k];
}

static void cleanup(void) {
    if (!dir[0]) return;
    for (int k = 0; k < 4; k++)
        if (pbuf[k][0]) remove(pbuf[k]);
    rmdir(dir);
    dir[0] = 0;
}

static vkg_model *tiny(vkg_model_kind kind, uint64_t seed) {
    vkg_model *m = NULL;
    switch (kind) {
    case VKG_MODEL_MLP: { vkg_mlp_config c = vkg_mlp_config_default(true); m = vkg_model_new(kind, &c, seed); break; }
    case VKG_MODEL_CNN: { vkg_cnn_config c = vkg_cnn_config_default(true); m = vkg_model_new(kind, &c, seed); break; }
    case VKG_MODEL_LSTM: { vkg_lstm_config c = vkg_lstm_config_default(true); m = vkg_model_new(kind, &c, seed); break; }
    case VKG_MODEL_GPT: { vkg_gpt_config c = vkg_gpt_config_default(true); m = vkg_model_new(kind, &c, seed); break; }
    default: break;
    }
    cr_assert_not_null(m, "%s: %s", vkg_model_kind_name(kind), vkg_last_error());
    return m;
}

/* A fixed batch outside every scope: B real Fashion-MNIST images (normalised) and labels, or
 * B windows of T bytes of the fortunes corpus. */
static void fixed_batch(vkg_model *m, int64_t B, vkg_tensor **x, vkg_tensor **y) {
    if (!vkg_model_is_lm(m)) {
        vkg_mnist d;
        cr_assert_eq(vkg_mnist_load(NULL, &d), VKG_OK, "%s", vkg_last_error());
        float *img = malloc((size_t)B * VKG_MNIST_PIXELS * sizeof *img);
        int32_t *lab = malloc((size_t)B * sizeof *lab);
        vkg_mnist_images_to_f32(d.train.images, (size_t)B, img, true);
        for (int64_t i = 0; i < B; i++) lab[i] = d.train.labels[i];
        *x = vkg_keep(vkg_from_data(VKG_SHAPE(B, 28, 28), img));
        *y = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, lab));
        free(img);
        free(lab);
        vkg_mnist_free(&d);
    } else {
        int64_t T = vkg_model_context(m);
        vkg_text t;
        cr_assert_eq(vkg_text_load_dir(NULL, &t), VKG_OK, "%s", vkg_last_error());
        uint8_t *bx = malloc((size_t)(B * T)), *by = malloc((size_t)(B * T));
        int32_t *ix = malloc((size_t)(B * T) * sizeof *ix), *iy = malloc((size_t)(B * T) * sizeof *iy);
        cr_assert_eq(vkg_text_batch(&t, VKG_TEXT_TRAIN, 5, 0, (int)B, (int)T, bx, by), VKG_OK);
        for (int64_t i = 0; i < B * T; i++) {
            ix[i] = bx[i];
            iy[i] = by[i];
        }
        *x = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, ix));
        *y = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, iy));
        free(bx), free(by), free(ix), free(iy);
        vkg_text_free(&t);
    }
    cr_assert(*x && *y, "%s", vkg_last_error());
}

/* ---- output shapes and names -------------------------------------------------------------- */
static void check_shape(vkg_model_kind kind, const char *first_param, const char *other_param) {
    vkg_model *m = tiny(kind, 1);
    vkg_tensor *x, *y;
    fixed_batch(m, 3, &x, &y);
    vkg_scope_begin();
    vkg_tensor *out = vkg_model_forward(m, x);
    cr_assert_not_null(out, "%s", vkg_last_error());
    if (vkg_model_is_lm(m)) {
        cr_assert_eq(vkg_ndim(out), 3);
        cr_assert_eq(vkg_dim(out, 0), 3);
        cr_assert_eq(vkg_dim(out, 1), vkg_model_context(m));
        cr_assert_eq(vkg_dim(out, 2), 256);
        /* a shorter sequence works too (sampling feeds one byte at a time) */
        vkg_tensor *o1 = vkg_model_forward(m, vkg_narrow(x, 1, 0, 1));
        cr_assert(o1 && vkg_dim(o1, 1) == 1, "%s", vkg_last_error());
    } else {
        cr_assert_eq(vkg_ndim(out), 2);
        cr_assert_eq(vkg_dim(out, 0), 3);
        cr_assert_eq(vkg_dim(out, 1), 10);
    }
    float *v = vkgt_read(out);
    for (int64_t i = 0; i < vkg_numel(out); i++) cr_assert(isfinite(v[i]), "logit %lld is %g", (long long)i, (double)v[i]);
    free(v);
    vkg_scope_end();
    const char *const *names;
    vkg_tensor *const *params;
    int n = vkg_module_params(vkg_model_module(m), &names, &params);
    cr_assert_str_eq(names[0], first_param);
    cr_assert_not_null(vkg_module_get(vkg_model_module(m), other_param), "%s has no %s", vkg_model_kind_name(kind), other_param);
    cr_assert_gt(n, 0);
    vkg_free(x), vkg_free(y);
    vkg_model_free(m);
}

VKG_TEST(models, mlp_shape) { check_shape(VKG_MODEL_MLP, "fc1.weight", "fc3.bias"); }
VKG_TEST(models, cnn_shape) { check_shape(VKG_MODEL_CNN, "conv1.weight", "fc2.weight"); }
VKG_TEST(models, lstm_shape) { check_shape(VKG_MODEL_LSTM, "embed.weight", "lstm.weight_hh_l0"); }
VKG_TEST(models, gpt_shape) { check_shape(VKG_MODEL_GPT, "wte.weight", "blocks.1.attn.in_proj_weight"); }

VKG_TEST(models, full_size_parameter_counts) {
    /* the configurations, counted as PyTorch counts them */
    struct { vkg_model_kind kind; int64_t numel; } want[] = {
        { VKG_MODEL_MLP, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10 },                              /* 535,818 */
        { VKG_MODEL_CNN, 32 * 9 + 32 + 64 * 32 * 9 + 64 + 3136 * 128 + 128 + 128 * 10 + 10 },               /* 421,642 */
        { VKG_MODEL_LSTM, 256 * 64 + 4 * 256 * (64 + 256) + 2 * 4 * 256 + 256 * 256 + 256 },                /* 411,904 */
        { VKG_MODEL_GPT, 256 * 128 + 64 * 128 + 4 * (2 * 256 + 3 * 128 * 128 + 3 * 128 + 128 * 128 + 128 + 128 * 512 + 512 + 512 * 128 + 128) +
                             256 + 256 * 128 },                                                                 /* 867,072 */
    };
    for (int i = 0; i < 4; i++) {
        vkg_model *m = vkg_model_new(want[i].kind, NULL, 0);
        cr_assert_not_null(m, "%s", vkg_last_error());
        cr_assert_eq(vkg_module_numel(vkg_model_module(m)), want[i].numel, "%s: %lld parameters, want %lld",
                     vkg_model_kind_name(want[i].kind), (long long)vkg_module_numel(vkg_model_module(m)), (long long)want[i].numel);
        vkg_model_free(m);
    }
}

/* ---- gradients against central differences ------------------------------------------------
 * The loss is recomputed on the device for each perturbed parameter as per-sample (or
 * per-position) f32 cross-entropies summed on the host in double: L(p + h) - L(p - h) over 2h.
 * Each f32 loss term carries a rounding error of about 1e-7 relative, so the difference
 * quotient is good to about 1e-7 * L / h for L ~ 2.5: 3e-5 at h = 1e-2, 3e-4 at h = 1e-3 (with
 * the device's reductions, a few times that). The smooth models (LSTM, GPT) use h = 1e-2, where
 * the truncation error h^2 |L'''| / 6 stays below 1e-4; the piecewise-linear ones (ReLU,
 * max-pool) use h = 1e-3, so that a perturbation rarely moves a pre-activation across 0 or
 * changes a pool's argmax (a bias moves a whole channel: with h = 1e-2 a CNN bias crossed such
 * kinks). The check is |fd - g| <= 2e-3 + 5e-2 |g|: several times those errors, and far below
 * the size of a wrong gradient (a missing term, a wrong sign or a factor of 2). Entries are
 * spread over every parameter tensor (first, middle, last). */
static double loss_host(vkg_model *m, vkg_tensor *x, vkg_tensor *y) {
    vkg_scope_begin();
    vkg_tensor *logits = vkg_model_forward(m, x);
    vkg_tensor *yy = y;
    if (vkg_model_is_lm(m)) {
        logits = vkg_reshape(logits, VKG_SHAPE(-1, 256));
        yy = vkg_reshape(y, VKG_SHAPE(-1));
    }
    vkg_tensor *l = vkg_cross_entropy(logits, yy, &(vkg_loss_desc){ .reduction = VKG_REDUCTION_NONE });
    float *v = vkgt_read(l);
    double s = 0.0;
    for (int64_t i = 0; i < vkg_numel(l); i++) s += v[i];
    s /= (double)vkg_numel(l);
    free(v);
    vkg_scope_end();
    return s;
}

static void gradcheck_model(vkg_model_kind kind, float h) {
    vkg_model *m = tiny(kind, 3);
    vkg_tensor *x, *y;
    fixed_batch(m, 2, &x, &y);
    vkg_scope_begin();
    cr_assert_eq(vkg_backward(vkg_model_loss(m, x, y)), VKG_OK, "%s", vkg_last_error());
    vkg_scope_end();
    const char *const *names;
    vkg_tensor *const *params;
    int n = vkg_module_params(vkg_model_module(m), &names, &params);
    int checked = 0;
    double worst = 0.0;
    for (int p = 0; p < n; p++) {
        int64_t numel = vkg_numel(params[p]);
        float *w = vkgt_read(params[p]);
        float *g = vkgt_read(vkg_grad(params[p]));
        int64_t at[3] = { 0, numel / 2, numel - 1 };
        for (int k = 0; k < 3; k++) {
            int64_t i = at[k];
            if (k && at[k] == at[k - 1]) continue;
            float w0 = w[i];
            w[i] = w0 + h;
            vkg_tensor_write(params[p], w, (size_t)numel * sizeof *w);
            double lp = loss_host(m, x, y);
            w[i] = w0 - h;
            vkg_tensor_write(params[p], w, (size_t)numel * sizeof *w);
            double lm = loss_host(m, x, y);
            w[i] = w0;
            vkg_tensor_write(params[p], w, (size_t)numel * sizeof *w);
            double fd = (lp - lm) / (2.0 * h), err = fabs(fd - g[i]);
            cr_assert(err <= 2e-3 + 5e-2 * fabs(g[i]), "%s: %s[%lld]: finite differences %.6g, backward %.6g",
                      vkg_model_kind_name(kind), names[p], (long long)i, fd, (double)g[i]);
            if (err > worst) worst = err;
            checked++;
        }
        free(w);
        free(g);
    }
    cr_log_info("%s: %d entries of %d parameters, worst |fd - grad| %.3g", vkg_model_kind_name(kind), checked, n, worst);
    vkg_free(x), vkg_free(y);
    vkg_model_free(m);
}

VKG_TEST(models, mlp_gradcheck) { gradcheck_model(VKG_MODEL_MLP, 1e-3f); }
VKG_TEST(models, cnn_gradcheck) { gradcheck_model(VKG_MODEL_CNN, 1e-3f); }
VKG_TEST(models, lstm_gradcheck) { gradcheck_model(VKG_MODEL_LSTM, 1e-2f); }
VKG_TEST(models, gpt_gradcheck) { gradcheck_model(VKG_MODEL_GPT, 1e-2f); }

/* ---- 30 steps on one fixed batch ------------------------------------------------------------ */
/* With amp: the module's weights used through f16 (vkg_module_amp), the loss scaled by 2^16 and
 * the gradients unscaled and checked before each Adam step (vkg_loss_scaler). Returns the first
 * loss, and the last in *last_out. */
static float overfit_run(vkg_model_kind kind, int64_t B, double lr, double factor, bool amp, float *last_out) {
    vkg_model *m = tiny(kind, 4);
    vkg_module_amp(vkg_model_module(m), amp);
    vkg_tensor *x, *y;
    fixed_batch(m, B, &x, &y);
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = lr });
    cr_assert_eq(vkg_optim_add_module(opt, vkg_model_module(m)), VKG_OK, "%s", vkg_last_error());
    vkg_loss_scaler *sc = amp ? vkg_loss_scaler_new(NULL) : NULL;
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 30; step++) {
        vkg_scope_begin();
        vkg_optim_zero_grad(opt);
        vkg_tensor *loss = vkg_model_loss(m, x, y);
        bool stepped;
        cr_assert_eq(vkg_backward(amp ? vkg_loss_scaler_scale(sc, loss) : loss), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(amp ? vkg_loss_scaler_step(sc, opt, &stepped) : vkg_optim_step(opt), VKG_OK, "%s", vkg_last_error());
        if (step == 0) first = vkg_item(loss);
        if (step == 29) last = vkg_item(loss);
        vkg_scope_end();
    }
    vkg_loss_scaler_free(sc);
    cr_log_info("%s: loss %.4f -> %.4f after 30 steps (%.1fx)", vkg_model_kind_name(kind), (double)first, (double)last,
                (double)(first / last));
    cr_assert(isfinite(last) && last * factor <= first, "%s: loss %.4f -> %.4f, not down by %gx", vkg_model_kind_name(kind),
              (double)first, (double)last, factor);
    vkg_optim_free(opt);
    vkg_free(x), vkg_free(y);
    vkg_model_free(m);
    if (last_out) *last_out = last;
    return first;
}

static void overfit(vkg_model_kind kind, int64_t B, double lr, double factor) {
    overfit_run(kind, B, lr, factor, false, NULL);
}

/* The same 30 steps with --amp's mixed precision, to the same bar; the first loss is the f32
 * run's within 1%, and the last is not the same bits (the weights really are rounded to f16). */
static void amp_overfit(vkg_model_kind kind, int64_t B, double lr, double factor) {
    float last32, last16;
    float f32 = overfit_run(kind, B, lr, factor, false, &last32), amp = overfit_run(kind, B, lr, factor, true, &last16);
    cr_assert(fabsf(amp - f32) <= 1e-2f * f32, "%s: first loss with amp %.8f, f32 %.8f", vkg_model_kind_name(kind),
              (double)amp, (double)f32);
    cr_assert(last16 != last32, "%s: the amp run ended at the f32 run's very loss %.8f", vkg_model_kind_name(kind),
              (double)last32);
}

/* --amp's MLP: weights rounded through f16 in the forward, loss scaled by 2^16 and the
 * gradients unscaled and checked before each Adam step; 30 steps on the same batch from the same
 * initialisation must drive the loss down like the f32 run (the same 100x bar), starting from
 * nearly the same loss (the f16 weights differ by at most 2^-11 relative). */
VKG_TEST(models, mlp_amp_overfit) {
    float loss[2][30];
    for (int amp = 0; amp < 2; amp++) {
        vkg_mlp_config c = vkg_mlp_config_default(true);
        c.amp = amp;
        vkg_model *m = vkg_model_new(VKG_MODEL_MLP, &c, 4);
        cr_assert_not_null(m, "%s", vkg_last_error());
        vkg_tensor *x, *y;
        fixed_batch(m, 16, &x, &y);
        vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-2 });
        cr_assert_eq(vkg_optim_add_module(opt, vkg_model_module(m)), VKG_OK, "%s", vkg_last_error());
        vkg_loss_scaler *sc = amp ? vkg_loss_scaler_new(NULL) : NULL;
        int skipped = 0;
        for (int step = 0; step < 30; step++) {
            vkg_scope_begin();
            vkg_optim_zero_grad(opt);
            vkg_tensor *l = vkg_model_loss(m, x, y);
            bool stepped = true;
            if (amp) {
                cr_assert_eq(vkg_backward(vkg_loss_scaler_scale(sc, l)), VKG_OK, "%s", vkg_last_error());
                cr_assert_eq(vkg_loss_scaler_step(sc, opt, &stepped), VKG_OK, "%s", vkg_last_error());
            } else {
                cr_assert_eq(vkg_backward(l), VKG_OK, "%s", vkg_last_error());
                cr_assert_eq(vkg_optim_step(opt), VKG_OK, "%s", vkg_last_error());
            }
            skipped += !stepped;
            loss[amp][step] = vkg_item(l);
            vkg_scope_end();
        }
        cr_log_info("mlp%s: loss %.4f -> %.4f after 30 steps, %d skipped%s", amp ? " --amp" : "", (double)loss[amp][0],
                    (double)loss[amp][29], skipped, amp ? "" : " (f32)");
        if (amp) cr_assert_eq(vkg_loss_scaler_get_scale(sc) * (skipped ? 1 << skipped : 1), 65536.0);
        vkg_loss_scaler_free(sc);
        vkg_optim_free(opt);
        vkg_free(x), vkg_free(y);
        vkg_model_free(m);
    }
    cr_assert(fabsf(loss[1][0] - loss[0][0]) <= 1e-2f * loss[0][0], "first loss: amp %.6f, f32 %.6f", (double)loss[1][0],
              (double)loss[0][0]);
    cr_assert(isfinite(loss[1][29]) && loss[1][29] * 100.0f <= loss[1][0], "mlp --amp: loss %.4f -> %.4f, not down 100x",
              (double)loss[1][0], (double)loss[1][29]);
    /* and through the trainer (eager steps with the scaler) */
    vkg_train_result r;
    vkg_train_options o = { .kind = VKG_MODEL_MLP, .test = true, .steps = 5, .seed = 9, .quiet = true, .amp = true,
                            .skip_eval = true };
    cr_assert_eq(vkg_train_run(&o, &r), VKG_OK, "%s", vkg_last_error());
    cr_assert(r.steps_run == 5 && isfinite(r.last_loss));
    for (int k = VKG_MODEL_CNN; k < VKG_MODEL_COUNT; k++) { /* every model takes --amp */
        o.kind = (vkg_model_kind)k;
        cr_assert_eq(vkg_train_run(&o, &r), VKG_OK, "%s --amp: %s", vkg_model_kind_name(o.kind), vkg_last_error());
        cr_assert(r.steps_run == 5 && isfinite(r.last_loss));
    }
}

/* Measured (lavapipe): MLP 2.39 -> 0.0002, CNN 2.31 -> 0.0042, LSTM 5.54 -> 2.42, GPT 5.80 -> 0.33;
 * the bars leave a wide margin below those (models/README.md). */
VKG_TEST(models, mlp_overfit) { overfit(VKG_MODEL_MLP, 16, 1e-2, 100.0); }
VKG_TEST(models, cnn_overfit) { overfit(VKG_MODEL_CNN, 16, 1e-2, 50.0); }
VKG_TEST(models, lstm_overfit) { overfit(VKG_MODEL_LSTM, 4, 1e-2, 1.8); }
VKG_TEST(models, gpt_overfit) { overfit(VKG_MODEL_GPT, 4, 1e-2, 5.0); }
VKG_TEST(models, cnn_amp_overfit) { amp_overfit(VKG_MODEL_CNN, 16, 1e-2, 50.0); }
VKG_TEST(models, lstm_amp_overfit) { amp_overfit(VKG_MODEL_LSTM, 4, 1e-2, 1.8); }
VKG_TEST(models, gpt_amp_overfit) { amp_overfit(VKG_MODEL_GPT, 4, 1e-2, 5.0); }

/* ---- save -> load in a fresh context -------------------------------------------------------- */
static float *logits_of(vkg_model *m, vkg_model_kind kind, size_t *n) {
    vkg_tensor *x, *y;
    fixed_batch(m, 2, &x, &y);
    (void)kind;
    vkg_scope_begin();
    vkg_tensor *out = vkg_model_forward(m, x);
    *n = (size_t)vkg_numel(out);
    float *v = vkgt_read(out);
    vkg_scope_end();
    vkg_free(x), vkg_free(y);
    return v;
}

static void save_load(vkg_model_kind kind) {
    const char *path = tpath(0, "model.safetensors");
    vkg_model *m = tiny(kind, 11);
    size_t n1, n2;
    float *before = logits_of(m, kind, &n1);
    cr_assert_eq(vkg_checkpoint_save_module(path, vkg_model_module(m), NULL, NULL), VKG_OK, "%s", vkg_last_error());
    vkg_model_free(m);
    vkg_shutdown();   /* a fresh context: nothing of the first one survives */
    cr_assert_eq(vkg_validation_message_count(), 0);
    vkgt_setup();
    m = tiny(kind, 12);   /* other initial values, overwritten by the load */
    cr_assert_eq(vkg_checkpoint_load_module(path, vkg_model_module(m), NULL, NULL, NULL), VKG_OK, "%s", vkg_last_error());
    float *after = logits_of(m, kind, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(before, after, n1 * sizeof *before), 0, "%s: the logits differ after save -> load",
                 vkg_model_kind_name(kind));
    free(before);
    free(after);
    vkg_model_free(m);
    cleanup();
}

VKG_TEST(models, mlp_save_load) { save_load(VKG_MODEL_MLP); }
VKG_TEST(models, cnn_save_load) { save_load(VKG_MODEL_CNN); }
VKG_TEST(models, lstm_save_load) { save_load(VKG_MODEL_LSTM); }
VKG_TEST(models, gpt_save_load) { save_load(VKG_MODEL_GPT); }

/* ---- sampling from a trained checkpoint ----------------------------------------------------- */
static void sample_deterministic(vkg_model_kind kind) {
    const char *path = tpath(0, "lm.safetensors");
    vkg_train_result r;
    vkg_train_options o = { .kind = kind, .test = true, .steps = 5, .seed = 3, .checkpoint = path, .skip_eval = true, .quiet = true };
    cr_assert_eq(vkg_train_run(&o, &r), VKG_OK, "%s", vkg_last_error());
    char a[1024], b[1024], c[1024];
    vkg_train_options e = { .kind = kind, .test = true, .seed = 3, .checkpoint = path, .eval_only = true, .skip_eval = true,
                            .quiet = true, .sample = "The ", .sample_desc = { .length = 24, .temperature = 0.8f, .top_k = 20, .seed = 7 } };
    cr_assert_eq(vkg_train_run(&e, &r), VKG_OK, "%s", vkg_last_error());
    strcpy(a, r.sample);
    cr_assert_eq(vkg_train_run(&e, &r), VKG_OK, "%s", vkg_last_error());
    strcpy(b, r.sample);
    e.sample_desc.seed = 8;
    cr_assert_eq(vkg_train_run(&e, &r), VKG_OK, "%s", vkg_last_error());
    strcpy(c, r.sample);
    cr_assert_eq(strlen(a), 4 + 24);
    cr_assert_eq(strncmp(a, "The ", 4), 0);
    cr_assert_str_eq(a, b, "the same seed gave two samples");
    cr_assert_str_neq(a, c, "seeds 7 and 8 gave the same sample");
    cleanup();
}

VKG_TEST(models, lstm_sample_deterministic) { sample_deterministic(VKG_MODEL_LSTM); }
VKG_TEST(models, gpt_sample_deterministic) { sample_deterministic(VKG_MODEL_GPT); }

/* ---- interrupt and resume ------------------------------------------------------------------- */
static void assert_same_files(const char *p, const char *q) {
    vkg_safetensors a, b;
    cr_assert_eq(vkg_safetensors_read(p, &a), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_safetensors_read(q, &b), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(a.count, b.count);
    for (int i = 0; i < a.count; i++) {
        cr_assert_str_eq(a.tensors[i].name, b.tensors[i].name);
        cr_assert_eq(a.tensors[i].nbytes, b.tensors[i].nbytes);
        cr_assert_eq(memcmp(a.tensors[i].data, b.tensors[i].data, a.tensors[i].nbytes), 0, "%s differs after the resume",
                     a.tensors[i].name);
    }
    cr_assert_str_eq(vkg_safetensors_metadata(&a, "vkgrad.step"), vkg_safetensors_metadata(&b, "vkgrad.step"));
    cr_assert_str_eq(vkg_safetensors_metadata(&a, "vkgrad.epoch"), vkg_safetensors_metadata(&b, "vkgrad.epoch"));
    cr_assert_str_eq(vkg_safetensors_metadata(&a, "vkgrad.batch"), vkg_safetensors_metadata(&b, "vkgrad.batch"));
    vkg_safetensors_free(&a);
    vkg_safetensors_free(&b);
}

static void interrupt_resume(vkg_model_kind kind, int64_t steps, int64_t stop) {
    const char *full = tpath(0, "full.safetensors"), *cut = tpath(1, "cut.safetensors");
    vkg_train_result r1, r2, r3;
    vkg_train_options o = { .kind = kind, .test = true, .steps = steps, .seed = 9, .checkpoint = full, .quiet = true };
    cr_assert_eq(vkg_train_run(&o, &r1), VKG_OK, "%s", vkg_last_error());
    o.checkpoint = cut;
    o.stop_after = stop;   /* what SIGINT does: the flag is seen at the end of step `stop` */
    cr_assert_eq(vkg_train_run(&o, &r2), VKG_OK, "%s", vkg_last_error());
    cr_assert(r2.interrupted && r2.steps_done == stop && !r2.evaluated);
    o.stop_after = 0;
    o.resume = true;
    cr_assert_eq(vkg_train_run(&o, &r3), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(r3.steps_done, steps);
    cr_assert_eq(r3.steps_run, steps - stop);
    cr_assert_eq(r3.last_loss, r1.last_loss, "last loss %.9g resumed, %.9g uninterrupted", r3.last_loss, r1.last_loss);
    cr_assert_eq(r3.eval, r1.eval, "evaluation %.9g resumed, %.9g uninterrupted", r3.eval, r1.eval);
    assert_same_files(full, cut);
    cleanup();
}

/* 20 steps of 32 images, drop-last over 512 images (16 batches an epoch): the resumed run crosses an epoch */
VKG_TEST(models, mlp_interrupt_resume) { interrupt_resume(VKG_MODEL_MLP, 20, 7); }
VKG_TEST(models, lstm_interrupt_resume) { interrupt_resume(VKG_MODEL_LSTM, 6, 2); }
