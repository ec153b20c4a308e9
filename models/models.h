/* vkgrad reference models: MLP and CNN on Fashion-MNIST, an LSTM and a tiny GPT on bytes, each
 * built on the public API only (vkgrad.h), with PyTorch's layers, names and default
 * initialisation, and a trainer (vkg_train_run) that vkgrad-train and the tests share.
 *
 *   vkg_model *m = vkg_model_new(VKG_MODEL_MLP, NULL, 42);           // the configuration
 *   vkg_scope_begin();
 *   vkg_tensor *logits = vkg_model_forward(m, x);                      // x (B, 28, 28) -> (B, 10)
 *   vkg_tensor *loss = vkg_model_loss(m, x, y);                        // mean cross-entropy, 0-d
 *   vkg_scope_end();
 *   const char *const *names; vkg_tensor *const *params;
 *   int n = vkg_module_params(vkg_model_module(m), &names, &params);   // "fc1.weight", ...
 *   vkg_model_free(m);
 *
 * Classifiers take x (B, 28, 28) f32 and return (B, 10) logits; language models take x (B, T)
 * i32 bytes and return (B, T, 256) logits for the next byte. Each model's configuration struct
 * has the values as defaults (a zero field means its default); `test` configurations
 * are the tiny widths the test suite uses. */
#ifndef VKGRAD_MODELS_H
#define VKGRAD_MODELS_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vkg_model_kind { VKG_MODEL_MLP = 0, VKG_MODEL_CNN, VKG_MODEL_LSTM, VKG_MODEL_GPT, VKG_MODEL_COUNT } vkg_model_kind;

/* ---- configurations (zero: the default in the comment) -------------------------------------- */
/* nn.Sequential(Flatten, Linear(784, 512), ReLU, Linear(512, 256), ReLU, Linear(256, 10)) */
typedef struct vkg_mlp_config {
    int64_t in, hidden1, hidden2, classes;   /* 784, 512, 256, 10 */
    /* Mixed precision, as vkg_module_amp(module, true) gives any model (vkgrad-train --amp): the
     * f32 weights stay the master copy; before each matmul the weight is cast to f16 and back to
     * f32, so the product sees f16-stored weights and computes in f32. That is f16 storage
     * precision, not f16 compute: on lavapipe it is no faster (two casts more per layer), and
     * nothing here measures a speed-up. */
    bool amp;
} vkg_mlp_config;

/* conv 1->c1 3x3 pad 1, ReLU, max-pool 2; conv c1->c2 3x3 pad 1, ReLU, max-pool 2; flatten;
 * Linear(c2 * 7 * 7, hidden), ReLU; Linear(hidden, classes). Input (B, 28, 28). */
typedef struct vkg_cnn_config {
    int64_t c1, c2, hidden, classes;         /* 32, 64, 128, 10 */
} vkg_cnn_config;

/* Embedding(vocab, embed), LSTM(embed, hidden, batch_first), Linear(hidden, vocab). */
typedef struct vkg_lstm_config {
    int64_t vocab, embed, hidden;            /* 256, 64, 256 */
    int64_t context;                         /* 64: the training sequence length */
} vkg_lstm_config;

/* GPT-style, pre-LayerNorm: token and learned position embeddings (N(0, 1), PyTorch's
 * Embedding default); per block x += attn(ln1(x)) (nn.MultiheadAttention, causal) and
 * x += proj(gelu_tanh(fc(ln2(x)))) with fc width mlp_mult * width; final LayerNorm; a separate
 * bias-free output head Linear(width, vocab). */
typedef struct vkg_gpt_config {
    int64_t vocab, context, width;           /* 256, 64, 128 */
    int layers, heads, mlp_mult;             /* 4, 4, 4 */
} vkg_gpt_config;

/* The defaults, or the tiny test configuration. */
vkg_mlp_config vkg_mlp_config_default(bool test);
vkg_cnn_config vkg_cnn_config_default(bool test);
vkg_lstm_config vkg_lstm_config_default(bool test);
vkg_gpt_config vkg_gpt_config_default(bool test);

/* ---- the models --------------------------------------------------------------------------- */
typedef struct vkg_model vkg_model;

/* config points at the kind's configuration struct (NULL: the defaults); zero fields take the
 * default. Parameters are drawn from `seed` (vkgrad/nn.h: each from the module seed and its
 * name). NULL with vkg_last_error() on failure. */
vkg_model *vkg_model_new(vkg_model_kind kind, const void *config, uint64_t seed);
void vkg_model_free(vkg_model *m);
vkg_model_kind vkg_model_get_kind(const vkg_model *m);
vkg_module *vkg_model_module(const vkg_model *m);   /* named parameters: vkg_module_params */
bool vkg_model_is_lm(const vkg_model *m);
int64_t vkg_model_context(const vkg_model *m);      /* LMs: the sequence length; else 0 */
int64_t vkg_model_outputs(const vkg_model *m);      /* classes, or the vocabulary */

/* Logits: classifiers (B, classes) from x (B, 28, 28); LMs (B, T, vocab) from x (B, T) i32. */
vkg_tensor *vkg_model_forward(vkg_model *m, vkg_tensor *x);
/* Mean cross-entropy of the logits against y: (B,) i32 classes, or (B, T) i32 next bytes. */
vkg_tensor *vkg_model_loss(vkg_model *m, vkg_tensor *x, vkg_tensor *y);

/* Each model's own entry points (what vkg_model_* dispatch to). */
typedef struct vkg_mlp_model vkg_mlp_model;
typedef struct vkg_cnn_model vkg_cnn_model;
typedef struct vkg_lstm_model vkg_lstm_model;
typedef struct vkg_gpt_model vkg_gpt_model;
vkg_mlp_model *vkg_mlp_model_new(vkg_module *module, const vkg_mlp_config *cfg);
vkg_tensor *vkg_mlp_model_forward(const vkg_mlp_model *m, vkg_tensor *x);
vkg_cnn_model *vkg_cnn_model_new(vkg_module *module, const vkg_cnn_config *cfg);
vkg_tensor *vkg_cnn_model_forward(const vkg_cnn_model *m, vkg_tensor *x);
vkg_lstm_model *vkg_lstm_model_new(vkg_module *module, const vkg_lstm_config *cfg);
/* h0, c0 (1, B, H) or NULL (zeros); *h_n, *c_n (1, B, H) when not NULL: the state after x. */
vkg_tensor *vkg_lstm_model_forward(const vkg_lstm_model *m, vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0,
                                   vkg_tensor **h_n, vkg_tensor **c_n);
vkg_gpt_model *vkg_gpt_model_new(vkg_module *module, const vkg_gpt_config *cfg);
vkg_tensor *vkg_gpt_model_forward(const vkg_gpt_model *m, vkg_tensor *x);   /* T <= context */
/* The model struct behind a vkg_model (NULL if it is another kind). */
vkg_mlp_model *vkg_model_mlp(const vkg_model *m);
vkg_cnn_model *vkg_model_cnn(const vkg_model *m);
vkg_lstm_model *vkg_model_lstm(const vkg_model *m);
vkg_gpt_model *vkg_model_gpt(const vkg_model *m);

/* ---- sampling (LSTM, GPT) ------------------------------------------------------------------ */
typedef struct vkg_sample_desc {
    const char *prompt;       /* "" or NULL: start from a newline                                */
    int length;               /* bytes to generate; 0: 200                                        */
    float temperature;        /* 0: 1.0; negative: greedy (argmax)                                */
    int top_k;                /* 0: all 256                                                       */
    uint64_t seed;            /* the draws: vkg_text_random(seed, i) for byte i                   */
} vkg_sample_desc;
/* Writes the prompt and `length` generated bytes into out (NUL-terminated; out_size bytes at
 * most). The same checkpoint, prompt and seed give the same text. */
vkg_status vkg_model_sample(vkg_model *m, const vkg_sample_desc *desc, char *out, size_t out_size);

/* ---- the trainer (vkgrad-train) --------------------------------------------------------------- */
typedef struct vkg_train_options {
    vkg_model_kind kind;
    bool test;                /* tiny configuration and data subsets (the test suite)             */
    int64_t steps;            /* optimizer steps in all; 0: epochs * batches (classifiers) or the default */
    int64_t epochs;           /* classifiers; 0: 5 (MLP), 2 (CNN)                                 */
    int64_t batch;            /* 0: 128 (classifiers), 32 (LMs)                                   */
    double lr;                /* 0: the model's default                                           */
    uint64_t seed;            /* parameters and data order; default 42 is applied by the caller  */
    const char *checkpoint;   /* where to save (end, SIGINT, --save-every) and what to resume    */
    bool resume;              /* continue from checkpoint                                         */
    bool eval_only;           /* load checkpoint (if any), evaluate, stop                         */
    int64_t save_every;       /* steps between checkpoints; 0: only at the end and on SIGINT    */
    int64_t log_every;        /* steps between progress lines; 0: 50 (1 with test)               */
    int64_t eval_batches;     /* LMs: validation batches; 0: 20                                   */
    int64_t stop_after;       /* tests: act as if SIGINT came during step stop_after (0: never)  */
    bool skip_eval;           /* no evaluation at the end                                         */
    bool quiet;               /* no progress lines                                                */
    bool no_graph;            /* eager steps, not a captured step replayed (not LSTM) */
    bool amp;                 /* f16-stored weights in the forward (vkg_module_amp) and dynamic loss
                                 scaling (vkg_loss_scaler); eager steps, since the scaler reads
                                 its inf/NaN flag back every step */
    const char *sample;       /* LMs: after training (or from the checkpoint), sample from it    */
    vkg_sample_desc sample_desc;
} vkg_train_options;

typedef struct vkg_train_result {
    int64_t steps_done;       /* optimizer steps taken in all (resumed ones included)              */
    int64_t steps_run;        /* in this call                                                     */
    double first_loss, last_loss;   /* training loss of the first and last step run here          */
    double eval;              /* classifiers: test accuracy (0..1); LMs: validation nats/byte     */
    bool evaluated;
    bool interrupted;         /* stopped by SIGINT (or stop_after); a checkpoint was saved         */
    double seconds;           /* training wall time in this call                                   */
    char sample[1024];
} vkg_train_result;

/* Set by the program's SIGINT handler: the trainer saves a checkpoint at the end of the step. */
extern volatile sig_atomic_t vkg_train_interrupt;

const char *vkg_model_kind_name(vkg_model_kind kind);     /* "mlp", "cnn", "lstm", "gpt" */
int vkg_model_kind_parse(const char *name);               /* -1 if unknown */
/* Needs vkg_init. Prints progress and a summary to stdout unless quiet. */
vkg_status vkg_train_run(const vkg_train_options *opt, vkg_train_result *result);

#ifdef __cplusplus
}
#endif
#endif
