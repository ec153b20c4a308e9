/* vkgrad layers: a module is a set of named parameters (and buffers) that layers create in it,
 * under the names PyTorch's state_dict uses, so checkpoints carry over.
 *
 *   vkg_module *net = vkg_module_new(&(vkg_module_desc){ .seed = 42 });
 *   vkg_linear *fc1 = vkg_linear_new(net, "fc1", &(vkg_linear_desc){ .in = 784, .out = 128 });
 *   vkg_linear *fc2 = vkg_linear_new(net, "fc2", &(vkg_linear_desc){ .in = 128, .out = 10 });
 *   vkg_scope_begin();                                               // one step
 *   vkg_tensor *logits = vkg_linear_forward(fc2, vkg_relu(vkg_linear_forward(fc1, x)));
 *   ...
 *   vkg_scope_end();
 *   const char *const *names; vkg_tensor *const *params;
 *   int n = vkg_module_params(net, &names, &params);                 // "fc1.weight", "fc1.bias", ...
 *   vkg_module_free(net);                                            // the layers and their tensors
 *
 * Parameters and buffers live outside every scope (made at scope level 0, whatever scope the
 * layer is created in) and are freed by vkg_module_free; parameters require grad. Layers are
 * owned by their module. Activations are the ops vkg_relu, vkg_tanh, vkg_gelu (tanh form).
 *
 * Initialisation is PyTorch's default for each layer, drawn from a seed so that it is
 * deterministic: parameter "<name>" draws the Philox stream of
 *     seed = vkg_module_param_seed(m, "<name>") = splitmix64(module seed ^ fnv1a64("<name>"))
 * from offset 0 (vkgrad/random.h), so each parameter's values depend only on the module's seed
 * and its own full name, not on the order in which layers are created. Uniform U(-b, b) is
 * vkg_rand's u in [0, 1) mapped to 2 b u - b. */
#ifndef VKGRAD_NN_H
#define VKGRAD_NN_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

/* ---- modules --------------------------------------------------------------------------------- */
typedef struct vkg_module vkg_module;

typedef struct vkg_module_desc {
    uint64_t seed;   /* initialisation seed of every parameter (see above) */
} vkg_module_desc;

vkg_module *vkg_module_new(const vkg_module_desc *desc);   /* NULL desc: seed 0 */
void vkg_module_free(vkg_module *m);                       /* layers, parameters, buffers */

/* Adds a tensor of your own as a parameter (requires grad) or a buffer (no grad, e.g. running
 * statistics), under a name unique in the module; the module takes it (moves it out of every
 * scope) and frees it. Returns t, or NULL with a message (t is then not taken). */
vkg_tensor *vkg_module_add_param(vkg_module *m, const char *name, vkg_tensor *t);
vkg_tensor *vkg_module_add_buffer(vkg_module *m, const char *name, vkg_tensor *t);

/* Parameters in creation order: *names and *tensors point at arrays owned by the module (valid
 * until the next add or the free). Returns the count. Buffers likewise. */
int vkg_module_params(const vkg_module *m, const char *const **names, vkg_tensor *const **tensors);
int vkg_module_buffers(const vkg_module *m, const char *const **names, vkg_tensor *const **tensors);
/* A parameter or buffer by full name, or NULL (no message). */
vkg_tensor *vkg_module_get(const vkg_module *m, const char *name);
int64_t vkg_module_numel(const vkg_module *m);             /* elements of all parameters */
void vkg_module_zero_grad(vkg_module *m);
/* Training mode (the default) or evaluation: dropout and batch norm read it. */
void vkg_module_train(vkg_module *m, bool training);
bool vkg_module_training(const vkg_module *m);
/* Mixed precision (off by default): the layers that multiply by weights (linear, conv2d, the
 * attention's projections, LSTM) use them rounded to f16 (each forward casts a weight to f16
 * and back), while the f32 parameters stay the master copies the optimizer updates; their
 * gradients flow through the rounding. Embeddings and norms stay f32. With a loss scaler
 * (vkgrad/optim.h, vkg_loss_scaler) this is the f32-master-weights half of mixed-precision
 * training; the compute is f32 (on lavapipe the casts make a step slower). */
void vkg_module_amp(vkg_module *m, bool on);
bool vkg_module_amp_enabled(const vkg_module *m);
uint64_t vkg_module_seed(const vkg_module *m);
/* The Philox seed parameter `name` is initialised from (see the top of this file). */
uint64_t vkg_module_param_seed(const vkg_module *m, const char *name);

/* ---- Linear: y = x W^T + b --------------------------------------------------------------------
 * "<name>.weight" (out, in) and "<name>.bias" (out), both U(-1/sqrt(in), 1/sqrt(in)): PyTorch's
 * kaiming_uniform_(a = sqrt(5)) for the weight, and its bias rule. x is (..., in). */
typedef struct vkg_linear_desc {
    int64_t in, out;
    bool no_bias;
} vkg_linear_desc;

typedef struct vkg_linear {
    vkg_module *module;
    vkg_tensor *weight;   /* (out, in)         */
    vkg_tensor *bias;     /* (out), or NULL    */
    int64_t in, out;
} vkg_linear;

vkg_linear *vkg_linear_new(vkg_module *m, const char *name, const vkg_linear_desc *desc);
vkg_tensor *vkg_linear_forward(const vkg_linear *l, vkg_tensor *x);   /* (..., out) */
/* relu(x W^T + b), the bias and the ReLU fused into the matmul kernel (vkg_matmul_bias_act):
 * the same values and gradients as vkg_relu(vkg_linear_forward(l, x)), with one pass over the
 * (..., out) output instead of three. vkg_linear_forward fuses the bias alone. */
vkg_tensor *vkg_linear_forward_relu(const vkg_linear *l, vkg_tensor *x);
/* gelu(x W^T + b) (vkg_gelu's tanh form), fused the same way: the same values and gradients as
 * vkg_gelu(vkg_linear_forward(l, x)); the kernel also stores x W^T + b for the backward. */
vkg_tensor *vkg_linear_forward_gelu(const vkg_linear *l, vkg_tensor *x);
/* r + (x W^T + b), r of the output's shape: a residual branch that ends in this layer, the sum
 * written by the matmul kernel (vkg_matmul_bias_act_residual); the same values and gradients
 * as vkg_add(r, vkg_linear_forward(l, x)). */
vkg_tensor *vkg_linear_forward_residual(const vkg_linear *l, vkg_tensor *x, vkg_tensor *r);


/* ---- LayerNorm over the last dim -------------------------------------------------------------
 * "<name>.weight" ones and "<name>.bias" zeros (dim); y = vkg_layer_norm(x, weight, bias, eps). */
typedef struct vkg_layer_norm_desc {
    int64_t dim;         /* the normalised (last) dim's size                    */
    float eps;           /* 0: 1e-5                                              */
    bool no_affine;      /* no weight and bias (elementwise_affine = false)      */
} vkg_layer_norm_desc;

typedef struct vkg_layer_norm_layer {
    vkg_module *module;
    vkg_tensor *weight, *bias;   /* (dim), or NULL without affine */
    int64_t dim;
    float eps;
} vkg_layer_norm_layer;

vkg_layer_norm_layer *vkg_layer_norm_new(vkg_module *m, const char *name, const vkg_layer_norm_desc *desc);
vkg_tensor *vkg_layer_norm_forward(const vkg_layer_norm_layer *l, vkg_tensor *x);

/* ---- Dropout ----------------------------------------------------------------------------------
 * In training mode (the module's) y = vkg_dropout(x, p, true, rng); in evaluation y = x. The
 * masks are deterministic: call k of the layer draws the Philox stream of
 * vkg_module_param_seed(m, "<name>") (no parameter has that name) from offset
 * sum of numel(x) over calls 0 .. k-1, so a run repeats exactly. vkg_dropout_layer_reset sets the
 * offset (to resume: the offset is the layer's `offset` field). */
typedef struct vkg_dropout_desc {
    float p;             /* drop probability in [0, 1); 0 is allowed (then y = x) */
} vkg_dropout_desc;

typedef struct vkg_dropout_layer {
    vkg_module *module;
    float p;
    uint64_t seed, offset;
} vkg_dropout_layer;

vkg_dropout_layer *vkg_dropout_new(vkg_module *m, const char *name, const vkg_dropout_desc *desc);
vkg_tensor *vkg_dropout_forward(vkg_dropout_layer *l, vkg_tensor *x);
void vkg_dropout_layer_reset(vkg_dropout_layer *l, uint64_t offset);

/* ---- Embedding --------------------------------------------------------------------------------
 * "<name>.weight" (num, dim) ~ N(0, 1) (PyTorch's default); index i32 of any shape ->
 * (*index.shape, dim). */
typedef struct vkg_embedding_desc {
    int64_t num, dim;
} vkg_embedding_desc;

typedef struct vkg_embedding_layer {
    vkg_module *module;
    vkg_tensor *weight;  /* (num, dim) */
    int64_t num, dim;
} vkg_embedding_layer;

vkg_embedding_layer *vkg_embedding_new(vkg_module *m, const char *name, const vkg_embedding_desc *desc);
vkg_tensor *vkg_embedding_forward(const vkg_embedding_layer *l, vkg_tensor *index);

/* ---- Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d (NCHW) --------------------------------------------
 * Conv2d: "<name>.weight" (out, in / groups, kh, kw) and "<name>.bias" (out), both
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in / groups * kh * kw (PyTorch's defaults). */
typedef struct vkg_conv2d_layer_desc {
    int64_t in, out;
    int kernel[2];           /* (kh, kw), required        */
    vkg_conv2d_desc conv;    /* stride, padding, dilation, groups (vkgrad/conv_ops.h) */
    bool no_bias;
} vkg_conv2d_layer_desc;

typedef struct vkg_conv2d_layer {
    vkg_module *module;
    vkg_tensor *weight, *bias;
    int64_t in, out;
    vkg_conv2d_desc conv;
} vkg_conv2d_layer;

vkg_conv2d_layer *vkg_conv2d_new(vkg_module *m, const char *name, const vkg_conv2d_layer_desc *desc);
vkg_tensor *vkg_conv2d_forward(const vkg_conv2d_layer *l, vkg_tensor *x);

/* Pooling layers hold no parameters; they are the ops with a fixed description. */
typedef struct vkg_pool2d_layer {
    vkg_module *module;
    vkg_pool2d_desc pool;
    bool max;
} vkg_pool2d_layer;

vkg_pool2d_layer *vkg_max_pool2d_new(vkg_module *m, const char *name, const vkg_pool2d_desc *desc);
vkg_pool2d_layer *vkg_avg_pool2d_new(vkg_module *m, const char *name, const vkg_pool2d_desc *desc);
vkg_tensor *vkg_pool2d_forward(const vkg_pool2d_layer *l, vkg_tensor *x);

/* BatchNorm2d: "<name>.weight" ones, "<name>.bias" zeros (parameters); buffers
 * "<name>.running_mean" zeros, "<name>.running_var" ones, "<name>.num_batches_tracked" (0-d i32,
 * read back once at the first training forward, so that a loaded count continues, then counted
 * on the host and written at each training forward). Training mode (the module's)
 * normalises with batch statistics and updates the running ones; evaluation uses them. */
typedef struct vkg_batch_norm2d_desc {
    int64_t channels;
    float eps;           /* 0: 1e-5 */
    float momentum;      /* 0: 0.1  */
    bool no_affine;
} vkg_batch_norm2d_desc;

typedef struct vkg_batch_norm2d_layer {
    vkg_module *module;
    vkg_tensor *weight, *bias;                   /* (C), or NULL without affine */
    vkg_tensor *running_mean, *running_var;      /* (C)                         */
    vkg_tensor *num_batches_tracked;             /* 0-d i32                      */
    int64_t channels;
    float eps, momentum;
    int32_t batches;                             /* the count, once read           */
    bool batches_read;
} vkg_batch_norm2d_layer;

vkg_batch_norm2d_layer *vkg_batch_norm2d_new(vkg_module *m, const char *name, const vkg_batch_norm2d_desc *desc);
vkg_tensor *vkg_batch_norm2d_forward(vkg_batch_norm2d_layer *l, vkg_tensor *x);

/* ---- LSTM (batch first) ---------------------------------------------------------------------------
 * Per layer k: "<name>.weight_ih_l<k>" (4H, in_k), "<name>.weight_hh_l<k>" (4H, H),
 * "<name>.bias_ih_l<k>" and "<name>.bias_hh_l<k>" (4H), all U(-1/sqrt(H), 1/sqrt(H)) (PyTorch's
 * default); in_0 = input, in_k = H. Each step is vkg_lstm_cell (gate order i, f, g, o). */
typedef struct vkg_lstm_desc {
    int64_t input, hidden;
    int layers;          /* 0: 1; at most 8 */
    bool no_bias;
} vkg_lstm_desc;

typedef struct vkg_lstm_layer {
    vkg_module *module;
    int64_t input, hidden;
    int layers;
    vkg_tensor *w_ih[8], *w_hh[8], *b_ih[8], *b_hh[8];
} vkg_lstm_layer;

/* x (B, T, input); h0, c0 (layers, B, H) or NULL (zeros). *out (B, T, H): the last layer's
 * hidden state at every step; *h_n, *c_n (layers, B, H): the last step's state (any of the
 * three may be NULL when not wanted). On failure the outputs are NULL. */
vkg_status vkg_lstm_forward(const vkg_lstm_layer *l, vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0, vkg_tensor **out,
                            vkg_tensor **h_n, vkg_tensor **c_n);
vkg_lstm_layer *vkg_lstm_new(vkg_module *m, const char *name, const vkg_lstm_desc *desc);

/* ---- MultiHeadAttention (batch first) ---------------------------------------------------------------
 * PyTorch's nn.MultiheadAttention parameters and names: "<name>.in_proj_weight" (3E, E), rows
 * q, k, v, xavier-uniform U(-sqrt(6 / 4E), +); "<name>.in_proj_bias" (3E) zeros;
 * "<name>.out_proj.weight" (E, E) U(-1/sqrt(E), 1/sqrt(E)); "<name>.out_proj.bias" (E) zeros.
 * y = out_proj(sdpa(split_heads(q W_q^T + b_q), ..k.., ..v.., causal, mask)). */
typedef struct vkg_mha_desc {
    int64_t embed;       /* E, divisible by heads */
    int heads;
    bool causal;         /* query t attends to keys s <= t */
    bool no_bias;
} vkg_mha_desc;

typedef struct vkg_mha_layer {
    vkg_module *module;
    vkg_tensor *in_proj_weight, *in_proj_bias;   /* (3E, E), (3E) or NULL */
    vkg_linear out_proj;
    int64_t embed;
    int heads;
    bool causal;
} vkg_mha_layer;

vkg_mha_layer *vkg_mha_new(vkg_module *m, const char *name, const vkg_mha_desc *desc);
/* query (B, T, E); key and value (B, S, E), or NULL for self-attention (the query); mask NULL
 * or f32 added to the scores, broadcastable to (B, heads, T, S). Returns (B, T, E). */
vkg_tensor *vkg_mha_forward(const vkg_mha_layer *l, vkg_tensor *query, vkg_tensor *key, vkg_tensor *value,
                            vkg_tensor *mask);
/* r + vkg_mha_forward(l, query, key, value, mask), r (B, T, E): the residual added by the output
 * projection's kernel (vkg_linear_forward_residual), as a pre-LN transformer block wants. */
vkg_tensor *vkg_mha_forward_residual(const vkg_mha_layer *l, vkg_tensor *query, vkg_tensor *key, vkg_tensor *value,
                                     vkg_tensor *mask, vkg_tensor *r);

#endif
