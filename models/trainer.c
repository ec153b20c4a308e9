/* The trainer behind vkgrad-train: data (Fashion-MNIST through the device loader, or byte
 * windows of the fortunes corpus), the optimizer of each model's configuration, the step loop
 * with progress lines, checkpoints (module + optimizer state + position, so a resume continues
 * exactly), SIGINT handling at step boundaries, evaluation and sampling. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fashion_mnist.h"
#include "loader.h"
#include "models.h"
#include "text.h"
#include "vkgrad/checkpoint.h"
#include "vkgrad/graph.h"

volatile sig_atomic_t vkg_train_interrupt = 0;

/* Validation batches of the language models come from this seed, whatever the training seed,
 * so runs from different seeds are scored on the same bytes. */
#define LM_EVAL_SEED 20240601u
/* --test: the first images of each split (the loader path is the same as the full run's). */
#define TEST_TRAIN_IMAGES 512
#define TEST_TEST_IMAGES 256

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!(s >= 0.0) || s > 1e7) {
        snprintf(buf, n, "?");
    } else if (s < 60.0) {
        snprintf(buf, n, "%.1fs", s);
    } else if (s < 3600.0) {
        snprintf(buf, n, "%dm%02ds", (int)(s / 60.0), (int)fmod(s, 60.0));
    } else {
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600.0), (int)fmod(s / 60.0, 60.0));
    }
}

typedef struct trainer {
    const vkg_train_options *o;
    vkg_model *model;
    vkg_optim *optim;
    vkg_loss_scaler *scaler;   /* --amp */
    bool lm;
    int64_t batch, context;
    int64_t eval_batch;     /* LMs: validation batches are 32 x context (4 with --test), whatever --batch */
    /* classifiers */
    vkg_mnist mnist;
    bool have_mnist;
    vkg_loader *train, *test;
    /* language models */
    vkg_text text;
    bool have_text;
    uint8_t *bx, *by;
    int32_t *ix, *iy;
    /* the captured step (vkgrad/graph.h): its inputs, refreshed in place, and its loss */
    vkg_graph *graph;
    vkg_tensor *gx, *gy, *gloss;
} trainer;

static vkg_status fail(const char *what) {
    vkg_status st = vkg_last_status();
    fprintf(stderr, "vkgrad-train: %s: %s\n", what, vkg_last_error());
    return st != VKG_OK ? st : VKG_ERR_INVALID;
}

static vkg_model *make_model(const vkg_train_options *o) {
    switch (o->kind) {
    case VKG_MODEL_MLP: { vkg_mlp_config c = vkg_mlp_config_default(o->test); return vkg_model_new(o->kind, &c, o->seed); }
    case VKG_MODEL_CNN: { vkg_cnn_config c = vkg_cnn_config_default(o->test); return vkg_model_new(o->kind, &c, o->seed); }
    case VKG_MODEL_LSTM: { vkg_lstm_config c = vkg_lstm_config_default(o->test); return vkg_model_new(o->kind, &c, o->seed); }
    case VKG_MODEL_GPT: { vkg_gpt_config c = vkg_gpt_config_default(o->test); return vkg_model_new(o->kind, &c, o->seed); }
    default: return NULL;
    }
}

/* The optimizers: Adam 1e-3 (MLP, CNN), AdamW 2e-3 wd 0 (LSTM), AdamW 1e-3 wd 0.1 (GPT). */
static vkg_optim *make_optim(const vkg_train_options *o, vkg_model *m) {
    vkg_optim_desc d;
    switch (o->kind) {
    case VKG_MODEL_LSTM: d = (vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 2e-3, .weight_decay = VKG_OPTIM_ZERO }; break;
    case VKG_MODEL_GPT: d = (vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.1 }; break;
    default: d = (vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-3 }; break;
    }
    if (o->lr > 0.0) d.lr = o->lr;
    vkg_optim *opt = vkg_optim_new(&d);
    if (opt && vkg_optim_add_module(opt, vkg_model_module(m)) != VKG_OK) {
        vkg_optim_free(opt);
        return NULL;
    }
    return opt;
}

/* One training step through the graph: the run's first step is eager (pipelines, autotuning), the
 * second is captured (and run), later ones replay it with the batch copied into its inputs. The
 * batch shape is fixed (drop_last), so one capture serves the whole run. */
static vkg_status graph_step(trainer *t, int64_t step, int64_t start, vkg_tensor *x, vkg_tensor *y, bool log,
                             float *lossv) {
    if (step == start) {
        vkg_optim_zero_grad(t->optim);
        vkg_tensor *loss = vkg_model_loss(t->model, x, y);
        if (!loss || vkg_backward(loss) != VKG_OK || vkg_optim_step(t->optim) != VKG_OK) return fail("training step");
        if (log) *lossv = vkg_item(loss);
        return VKG_OK;
    }
    if (!t->graph) {
        t->graph = vkg_graph_new();
        t->gx = vkg_keep(vkg_copy(x));    /* out of the step's scope: they live as long as the graph */
        t->gy = vkg_keep(vkg_copy(y));
        if (!t->graph || !t->gx || !t->gy || vkg_graph_capture_begin(t->graph) != VKG_OK) return fail("graph capture");
        vkg_scope_begin();
        vkg_optim_zero_grad(t->optim);
        vkg_tensor *loss = vkg_model_loss(t->model, t->gx, t->gy);
        if (loss && vkg_backward(loss) == VKG_OK && vkg_optim_step(t->optim) == VKG_OK) t->gloss = vkg_keep(vkg_keep(loss));
        vkg_scope_end();
        if (vkg_graph_capture_end(t->graph) != VKG_OK) return fail("graph capture");
    } else if (vkg_graph_input_copy(t->graph, t->gx, x) != VKG_OK || vkg_graph_input_copy(t->graph, t->gy, y) != VKG_OK ||
               vkg_graph_replay(t->graph) != VKG_OK) {
        return fail("graph replay");
    }
    if (log) *lossv = vkg_item(t->gloss);
    return VKG_OK;
}

static void graph_free(trainer *t) {
    vkg_graph_free(t->graph);
    vkg_free(t->gx);
    vkg_free(t->gy);
    vkg_free(t->gloss);
    t->graph = NULL;
    t->gx = t->gy = t->gloss = NULL;
}

static vkg_status data_open(trainer *t) {
    const vkg_train_options *o = t->o;
    if (!t->lm) {
        if (vkg_mnist_load(NULL, &t->mnist) != VKG_OK) return fail("Fashion-MNIST");
        t->have_mnist = true;
        size_t ntrain = o->test ? TEST_TRAIN_IMAGES : t->mnist.train.count;
        size_t ntest = o->test ? TEST_TEST_IMAGES : t->mnist.test.count;
        t->train = vkg_loader_create(&(vkg_loader_desc){
            .images = t->mnist.train.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
            .labels = t->mnist.train.labels, .labels_dtype = VKG_U8, .count = (int64_t)ntrain,
            .batch_size = t->batch, .drop_last = true, .seed = o->seed, .normalize = true,
            .mean = VKG_FASHION_MNIST_MEAN, .std = VKG_FASHION_MNIST_STD });
        if (!t->train) return fail("train loader");
        t->test = vkg_loader_create(&(vkg_loader_desc){
            .images = t->mnist.test.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
            .labels = t->mnist.test.labels, .labels_dtype = VKG_U8, .count = (int64_t)ntest,
            .batch_size = o->test ? 128 : 500, .no_shuffle = true, .normalize = true,
            .mean = VKG_FASHION_MNIST_MEAN, .std = VKG_FASHION_MNIST_STD });
        if (!t->test) return fail("test loader");
        return VKG_OK;
    }
    if (vkg_text_load_dir(NULL, &t->text) != VKG_OK) return fail("text corpus");
    t->have_text = true;
    t->eval_batch = o->test ? 4 : 32;
    size_t n = (size_t)((t->batch > t->eval_batch ? t->batch : t->eval_batch) * t->context);
    t->bx = malloc(n);
    t->by = malloc(n);
    t->ix = malloc(n * sizeof *t->ix);
    t->iy = malloc(n * sizeof *t->iy);
    if (!t->bx || !t->by || !t->ix || !t->iy) {
        fprintf(stderr, "vkgrad-train: out of host memory\n");
        return VKG_ERR_OUT_OF_MEMORY;
    }
    return VKG_OK;
}

static void data_close(trainer *t) {
    vkg_loader_free(t->train);
    vkg_loader_free(t->test);
    if (t->have_mnist) vkg_mnist_free(&t->mnist);
    if (t->have_text) vkg_text_free(&t->text);
    free(t->bx);
    free(t->by);
    free(t->ix);
    free(t->iy);
}

/* Batch `index` of a split as (B, T) i32 tensors in the current scope. */
static vkg_status lm_batch(trainer *t, vkg_text_split split, uint64_t seed, uint64_t index, int B, vkg_tensor **x,
                           vkg_tensor **y) {
    int T = (int)t->context;
    if (vkg_text_batch(&t->text, split, seed, index, B, T, t->bx, t->by) != VKG_OK) return fail("text batch");
    for (int i = 0; i < B * T; i++) {
        t->ix[i] = t->bx[i];
        t->iy[i] = t->by[i];
    }
    *x = vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, t->ix);
    *y = vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, t->iy);
    return *x && *y ? VKG_OK : fail("upload");
}

/* Classifiers: accuracy over the test loader; LMs: mean cross-entropy over eval batches. */
static vkg_status evaluate(trainer *t, double *out) {
    vkg_status st = VKG_OK;
    vkg_module_train(vkg_model_module(t->model), false);
    vkg_no_grad_begin();
    if (!t->lm) {
        int64_t correct = 0, total = 0;
        int64_t classes = vkg_model_outputs(t->model);
        vkg_batch b;
        for (;;) {
            vkg_scope_begin();
            bool more = vkg_loader_next(t->test, &b);
            if (more) {
                vkg_tensor *logits = vkg_model_forward(t->model, b.x);
                float *l = malloc((size_t)(b.size * classes) * sizeof *l);
                int32_t *y = malloc((size_t)b.size * sizeof *y);
                if (!l || !y || !logits || vkg_tensor_read(logits, l, (size_t)(b.size * classes) * sizeof *l) != VKG_OK ||
                    vkg_tensor_read(b.y, y, (size_t)b.size * sizeof *y) != VKG_OK) {
                    st = fail("evaluation");
                } else {
                    for (int64_t i = 0; i < b.size; i++) {
                        int64_t best = 0;
                        for (int64_t c = 1; c < classes; c++)
                            if (l[i * classes + c] > l[i * classes + best]) best = c;
                        correct += best == y[i];
                    }
                    total += b.size;
                }
                free(l);
                free(y);
            }
            vkg_scope_end();
            if (!more || st != VKG_OK) break;
        }
        if (st == VKG_OK && b.status != VKG_OK) st = fail("test loader");
        *out = total ? (double)correct / (double)total : 0.0;
    } else {
        int64_t n = t->o->eval_batches > 0 ? t->o->eval_batches : 20;
        double sum = 0.0;
        for (int64_t i = 0; i < n && st == VKG_OK; i++) {
            vkg_scope_begin();
            vkg_tensor *x, *y;
            st = lm_batch(t, VKG_TEXT_VAL, LM_EVAL_SEED, (uint64_t)i, (int)t->eval_batch, &x, &y);
            if (st == VKG_OK) {
                float v = vkg_item(vkg_model_loss(t->model, x, y));
                if (isnan(v) && vkg_last_status() != VKG_OK) st = fail("evaluation");
                sum += v;
            }
            vkg_scope_end();
        }
        *out = sum / (double)n;
    }
    vkg_no_grad_end();
    vkg_module_train(vkg_model_module(t->model), true);
    return st;
}

static vkg_status save(trainer *t, const char *path, int64_t step) {
    vkg_checkpoint_position pos = { .step = step, .seed = t->o->seed };
    if (!t->lm) {
        vkg_loader_info li = vkg_loader_info_get(t->train);
        pos.epoch = li.epoch;
        pos.batch = li.batch;
    } else {
        pos.batch = step;   /* LM batches are counter-based: batch index = step */
    }
    const char *meta[] = { "vkgrad.model", vkg_model_kind_name(t->o->kind) };
    const char *ikeys[] = { "train.test", "train.batch" };
    int64_t ivals[] = { t->o->test, t->batch };
    vkg_status st = vkg_checkpoint_save_module(path, vkg_model_module(t->model), t->optim,
                                               &(vkg_checkpoint_desc){ .position = pos, .metadata = meta, .metadata_count = 1,
                                                                       .int_keys = ikeys, .int_values = ivals, .int_count = 2 });
    return st == VKG_OK ? st : fail("saving the checkpoint");
}

/* Checks that the checkpoint holds this model in this configuration. */
static vkg_status check_checkpoint(trainer *t, const char *path) {
    vkg_checkpoint ck = { 0 };
    if (vkg_checkpoint_open(path, &ck) != VKG_OK) return fail("opening the checkpoint");
    vkg_status st = VKG_OK;
    const char *model = vkg_checkpoint_get(&ck, "vkgrad.model");
    int64_t test = -1, batch = -1;
    vkg_checkpoint_get_int(&ck, "train.test", &test);
    vkg_checkpoint_get_int(&ck, "train.batch", &batch);
    if (!model || strcmp(model, vkg_model_kind_name(t->o->kind)) || test != (int64_t)t->o->test) {
        fprintf(stderr, "vkgrad-train: %s holds model %s%s, not %s%s\n", path, model ? model : "?", test == 1 ? " --test" : "",
                vkg_model_kind_name(t->o->kind), t->o->test ? " --test" : "");
        st = VKG_ERR_FORMAT;
    } else if (batch != t->batch && !t->o->eval_only) {
        fprintf(stderr, "vkgrad-train: %s was trained with batch %lld, not %lld (pass --batch %lld)\n", path,
                (long long)batch, (long long)t->batch, (long long)batch);
        st = VKG_ERR_INVALID;
    }
    vkg_checkpoint_close(&ck);
    return st;
}

vkg_status vkg_train_run(const vkg_train_options *o, vkg_train_result *r) {
    vkg_train_result local;
    if (!r) r = &local;
    memset(r, 0, sizeof *r);
    trainer t = { .o = o };
    t.lm = o->kind == VKG_MODEL_LSTM || o->kind == VKG_MODEL_GPT;
    t.batch = o->batch > 0 ? o->batch : t.lm ? 32 : 128;
    if (o->test && o->batch <= 0) t.batch = t.lm ? 4 : 32;
    vkg_status st = VKG_OK;
    t.model = make_model(o);
    if (!t.model) return fail("building the model");
    vkg_module_amp(vkg_model_module(t.model), o->amp); /* --amp: f16-rounded weights, with t.scaler */
    t.context = vkg_model_context(t.model);
    t.optim = make_optim(o, t.model);
    if (!t.optim) {
        st = fail("the optimizer");
        goto done;
    }
    if (o->amp && !(t.scaler = vkg_loss_scaler_new(NULL))) {
        st = fail("the loss scaler");
        goto done;
    }
    if ((st = data_open(&t)) != VKG_OK) goto done;

    int64_t start = 0, total = o->steps;
    if (!total) {
        if (t.lm) {
            total = o->test ? 20 : 2000;
        } else {
            int64_t epochs = o->epochs > 0 ? o->epochs : o->kind == VKG_MODEL_MLP ? 5 : 2;
            total = epochs * vkg_loader_info_get(t.train).batches_per_epoch;
        }
    }
    if ((o->resume || o->eval_only) && o->checkpoint) {
        FILE *f = fopen(o->checkpoint, "rb");
        if (!f && o->resume && !o->eval_only) {
            if (!o->quiet) printf("no checkpoint at %s: starting from step 0\n", o->checkpoint);
        } else {
            if (f) fclose(f);
            if ((st = check_checkpoint(&t, o->checkpoint)) != VKG_OK) goto done;
            vkg_checkpoint_position pos;
            st = vkg_checkpoint_load_module(o->checkpoint, vkg_model_module(t.model), o->eval_only ? NULL : t.optim,
                                            &(vkg_checkpoint_load_desc){ .allow_unexpected = o->eval_only }, &pos);
            if (st != VKG_OK) {
                st = fail("loading the checkpoint");
                goto done;
            }
            start = pos.step;
            if (!t.lm && !o->eval_only && vkg_loader_seek(t.train, pos.epoch, pos.batch) != VKG_OK) {
                st = fail("seeking the loader");
                goto done;
            }
            if (!o->quiet) printf("loaded %s: step %lld\n", o->checkpoint, (long long)start);
        }
    } else if (o->eval_only && !o->quiet) {
        printf("no --checkpoint: evaluating the freshly initialised model\n");
    }
    r->steps_done = start;

    if (!o->eval_only && start < total) {
        if (!o->quiet) {
            printf("%s: %lld parameters, batch %lld, steps %lld..%lld, seed %llu\n", vkg_model_kind_name(o->kind),
                   (long long)vkg_module_numel(vkg_model_module(t.model)), (long long)t.batch, (long long)start,
                   (long long)total, (unsigned long long)o->seed);
            fflush(stdout);
        }
        int64_t log_every = o->log_every > 0 ? o->log_every : o->test ? 1 : 50;
        bool use_graph = o->kind != VKG_MODEL_LSTM && !o->no_graph && !o->amp;
        double t0 = now_s(), tlog = t0;
        int64_t slog = start;
        for (int64_t step = start; step < total; step++) {
            bool log = (step + 1) % log_every == 0 || step == start || step + 1 == total;
            vkg_scope_begin();
            vkg_tensor *x = NULL, *y = NULL;
            if (t.lm) {
                st = lm_batch(&t, VKG_TEXT_TRAIN, o->seed, (uint64_t)step, (int)t.batch, &x, &y);
            } else {
                vkg_batch b;
                if (!vkg_loader_next(t.train, &b) && b.status == VKG_OK) vkg_loader_next(t.train, &b);   /* next epoch */
                if (b.status != VKG_OK) st = fail("train loader");
                x = b.x;
                y = b.y;
            }
            float lossv = NAN;
            if (st == VKG_OK && use_graph) {
                st = graph_step(&t, step, start, x, y, log, &lossv);
            } else if (st == VKG_OK && t.scaler) { /* --amp: the step is skipped when a gradient overflowed */
                vkg_optim_zero_grad(t.optim);
                vkg_tensor *loss = vkg_model_loss(t.model, x, y);
                if (!loss || vkg_backward(vkg_loss_scaler_scale(t.scaler, loss)) != VKG_OK ||
                    vkg_loss_scaler_step(t.scaler, t.optim, NULL) != VKG_OK)
                    st = fail("training step");
                else if (log) lossv = vkg_item(loss);
            } else if (st == VKG_OK) {
                vkg_optim_zero_grad(t.optim);
                vkg_tensor *loss = vkg_model_loss(t.model, x, y);
                if (!loss || vkg_backward(loss) != VKG_OK || vkg_optim_step(t.optim) != VKG_OK) st = fail("training step");
                else if (log) lossv = vkg_item(loss);
            }
            vkg_scope_end();
            if (st != VKG_OK) goto done;
            r->steps_done = step + 1;
            r->steps_run++;
            if (step == start) r->first_loss = lossv;
            if (step + 1 == total) r->last_loss = lossv;
            if (log) {
                if (!isnan(lossv)) r->last_loss = lossv;
                double tn = now_s(), dt = (tn - tlog) / (double)(step + 1 - slog);
                char el[32], left[32];
                fmt_time(el, sizeof el, tn - t0);
                fmt_time(left, sizeof left, dt * (double)(total - step - 1));
                if (!o->quiet) {
                    printf("step %6lld/%lld  loss %.4f  %7.0f %s/s  %7.1f ms/step  elapsed %s  left %s\n",
                           (long long)(step + 1), (long long)total, (double)lossv,
                           (double)(t.lm ? t.batch * t.context : t.batch) / dt, t.lm ? "tok" : "img", 1e3 * dt, el, left);
                    fflush(stdout);
                }
                tlog = tn;
                slog = step + 1;
            }
            bool stop = vkg_train_interrupt || (o->stop_after > 0 && step + 1 == o->stop_after);
            if (stop || (o->save_every > 0 && (step + 1) % o->save_every == 0 && step + 1 < total)) {
                char def[256];
                snprintf(def, sizeof def, "vkgrad-%s.safetensors", vkg_model_kind_name(o->kind));
                const char *path = o->checkpoint ? o->checkpoint : def;
                if ((st = save(&t, path, step + 1)) != VKG_OK) goto done;
                if (stop) {
                    r->interrupted = true;
                    r->seconds = now_s() - t0;
                    if (!o->quiet) printf("interrupted after step %lld: saved %s (resume with --resume)\n", (long long)(step + 1), path);
                    goto done;
                }
            }
        }
        r->seconds = now_s() - t0;
        if (o->checkpoint && (st = save(&t, o->checkpoint, r->steps_done)) != VKG_OK) goto done;
    }

    if (!o->skip_eval) {
        double t1 = now_s();
        if ((st = evaluate(&t, &r->eval)) != VKG_OK) goto done;
        r->evaluated = true;
        if (!o->quiet) {
            if (t.lm)
                printf("validation loss %.4f nats/byte (%lld batches of %lldx%lld, %.1fs)\n", r->eval,
                       (long long)(o->eval_batches > 0 ? o->eval_batches : 20), (long long)t.eval_batch, (long long)t.context,
                       now_s() - t1);
            else
                printf("test accuracy %.2f%% (%lld images, %.1fs)\n", 100.0 * r->eval,
                       (long long)vkg_loader_info_get(t.test).count, now_s() - t1);
        }
    }
    if (o->sample && t.lm) {
        vkg_sample_desc sd = o->sample_desc;
        sd.prompt = o->sample;
        if (vkg_model_sample(t.model, &sd, r->sample, sizeof r->sample) != VKG_OK) {
            st = fail("sampling");
            goto done;
        }
        if (!o->quiet) printf("sample (seed %llu): %s\n", (unsigned long long)sd.seed, r->sample);
    }
    if (!o->quiet && r->steps_run) {
        char el[32];
        fmt_time(el, sizeof el, r->seconds);
        printf("summary: %s, %lld steps (%lld in this run) in %s, %.1f ms/step, last loss %.4f", vkg_model_kind_name(o->kind),
               (long long)r->steps_done, (long long)r->steps_run, el, 1e3 * r->seconds / (double)r->steps_run, r->last_loss);
        if (r->evaluated) {
            if (t.lm) printf(", validation %.4f nats/byte", r->eval);
            else printf(", test accuracy %.2f%%", 100.0 * r->eval);
        }
        printf("\n");
    }
done:
    graph_free(&t);
    data_close(&t);
    vkg_optim_free(t.optim);
    vkg_loss_scaler_free(t.scaler);
    vkg_model_free(t.model);
    fflush(stdout);
    return st;
}
