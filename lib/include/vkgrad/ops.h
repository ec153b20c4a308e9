/* vkgrad ops: the op table and the functions that record each op.
 *
 *   vkg_tensor *h = vkg_relu(vkg_add(vkg_matmul(x, w), b));   // b broadcasts over rows
 *   vkg_tensor *m = vkg_mean(h, 1, true);                      // (B, 1)
 *
 * Every op is one row of VKG_OP_LIST: its shader (one SPIR-V module per shader file, the op
 * picked by a specialization constant), its C function here, and its C reference in
 * vkgrad/reference.h. Tests, vkgrad-info --ops, the profiler and the benchmarks all walk the
 * table, so an op cannot be added without being tested. */
#ifndef VKGRAD_OPS_H
#define VKGRAD_OPS_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

/* Kinds decide the shader, the push constants and how the generic tests drive an op. */
typedef enum vkg_op_kind {
    VKG_KIND_UNARY,     /* y = f(x[, scalar])                     shaders/unary.comp   */
    VKG_KIND_BINARY,    /* y = f(a, b), broadcasting              shaders/binary.comp  */
    VKG_KIND_TERNARY,   /* y = f(c, a, b), broadcasting           shaders/binary.comp  */
    VKG_KIND_REDUCE,    /* over one axis or all                   shaders/reduce.comp  */
    VKG_KIND_MATMUL,    /*                                        shaders/matmul.comp  */
    VKG_KIND_COPY,      /* strided gather into a contiguous tensor shaders/copy.comp   */
    VKG_KIND_FILL,      /* fill, arange                           shaders/fill.comp    */
    VKG_KIND_RANDOM,    /* Philox streams, no tensor input        shaders/random.comp  */
    VKG_KIND_NN,        /* softmax, losses, norms, dropout, clamp vkgrad/nn_ops.h      */
    VKG_KIND_CONV,      /* conv2d, pooling, batch norm            vkgrad/conv_ops.h    */
    VKG_KIND_SEQ,       /* concat, gather, embedding, attention, LSTM  vkgrad/seq_ops.h */
} vkg_op_kind;

/* X(NAME, name, kind, code, has_backward): code is the shader's OP specialization constant
 * and must match the #defines in the shader (shaders/ops.glsl mirrors it: change both).
 * has_backward is what the autograd layer provides for the op. */
#define VKG_OP_LIST_CORE(X)                              \
    X(NEG,      neg,      VKG_KIND_UNARY,   0, true)    \
    X(ABS,      abs,      VKG_KIND_UNARY,   1, true)    \
    X(EXP,      exp,      VKG_KIND_UNARY,   2, true)    \
    X(LOG,      log,      VKG_KIND_UNARY,   3, true)    \
    X(SQRT,     sqrt,     VKG_KIND_UNARY,   4, true)    \
    X(RSQRT,    rsqrt,    VKG_KIND_UNARY,   5, true)    \
    X(TANH,     tanh,     VKG_KIND_UNARY,   6, true)    \
    X(SIGMOID,  sigmoid,  VKG_KIND_UNARY,   7, true)    \
    X(RELU,     relu,     VKG_KIND_UNARY,   8, true)    \
    X(GELU,     gelu,     VKG_KIND_UNARY,   9, true)    \
    X(SILU,     silu,     VKG_KIND_UNARY,  10, true)    \
    X(POW,      pow,      VKG_KIND_UNARY,  11, true)    \
    X(ADD,      add,      VKG_KIND_BINARY,  0, true)    \
    X(SUB,      sub,      VKG_KIND_BINARY,  1, true)    \
    X(MUL,      mul,      VKG_KIND_BINARY,  2, true)    \
    X(DIV,      div,      VKG_KIND_BINARY,  3, true)    \
    X(MAXIMUM,  maximum,  VKG_KIND_BINARY,  4, true)    \
    X(MINIMUM,  minimum,  VKG_KIND_BINARY,  5, true)    \
    X(LT,       lt,       VKG_KIND_BINARY,  6, false)    \
    X(GT,       gt,       VKG_KIND_BINARY,  7, false)    \
    X(EQ,       eq,       VKG_KIND_BINARY,  8, false)    \
    X(WHERE,    where,    VKG_KIND_TERNARY, 9, true)    \
    X(SUM,      sum,      VKG_KIND_REDUCE,  0, true)    \
    X(MEAN,     mean,     VKG_KIND_REDUCE,  1, true)    \
    X(MAX,      max,      VKG_KIND_REDUCE,  2, true)    \
    X(MIN,      min,      VKG_KIND_REDUCE,  3, true)    \
    X(ARGMAX,   argmax,   VKG_KIND_REDUCE,  4, false)    \
    X(MATMUL,   matmul,   VKG_KIND_MATMUL,  0, true)    \
    X(COPY,     copy,     VKG_KIND_COPY,    0, true)    \
    X(FILL,     fill,     VKG_KIND_FILL,    0, false)    \
    X(ARANGE,   arange,   VKG_KIND_FILL,    1, false)    \
    X(RAND,     rand,     VKG_KIND_RANDOM,  0, false)    \
    X(RANDN,    randn,    VKG_KIND_RANDOM,  1, false)    \
    X(RANDINT,  randint,  VKG_KIND_RANDOM,  2, false)    \
    X(BERNOULLI, bernoulli, VKG_KIND_RANDOM, 3, false) \
    X(TO_DTYPE, to_dtype, VKG_KIND_COPY,    1, true)

/* Each group of ops keeps its rows in its own file, so that groups grow independently. */
#include "vkgrad/op_list_nn.h"   /* VKG_OP_LIST_NN   */
#include "vkgrad/op_list_conv.h" /* VKG_OP_LIST_CONV */
#include "vkgrad/op_list_seq.h"  /* VKG_OP_LIST_SEQ  */
/* Fused ops: one kernel doing the work of several rows above, with its own reference and
 * backward. matmul_bias_act is the matmul kernels with an epilogue (code unused, as matmul's). */
#define VKG_OP_LIST_FUSED(X)                                                      \
    X(MATMUL_BIAS_ACT, matmul_bias_act, VKG_KIND_MATMUL, 0, true)
#define VKG_OP_LIST(X) \
    VKG_OP_LIST_CORE(X) VKG_OP_LIST_NN(X) VKG_OP_LIST_CONV(X) VKG_OP_LIST_SEQ(X) VKG_OP_LIST_FUSED(X)

typedef enum vkg_op {
#define VKG_OP_ENUM_(NAME, name, kind, code, bw) VKG_OP_##NAME,
    VKG_OP_LIST(VKG_OP_ENUM_)
#undef VKG_OP_ENUM_
    VKG_OP_COUNT
} vkg_op;

typedef struct vkg_op_info {
    vkg_op op;
    const char *name;       /* "relu" */
    vkg_op_kind kind;
    uint32_t code;          /* the shader's OP specialization constant */
    bool has_backward;
    bool has_reference;     /* a C reference exists in vkgrad/reference.h */
} vkg_op_info;

extern const vkg_op_info vkg_op_table[VKG_OP_COUNT];
const vkg_op_info *vkg_op_find(const char *name);   /* NULL if unknown */

/* ---- elementwise ---------------------------------------------------------------------------- */
vkg_tensor *vkg_unary(vkg_op op, vkg_tensor *x);            /* any VKG_KIND_UNARY op but POW */
vkg_tensor *vkg_neg(vkg_tensor *x);
vkg_tensor *vkg_abs(vkg_tensor *x);
vkg_tensor *vkg_exp(vkg_tensor *x);
vkg_tensor *vkg_log(vkg_tensor *x);
vkg_tensor *vkg_sqrt(vkg_tensor *x);
vkg_tensor *vkg_rsqrt(vkg_tensor *x);
vkg_tensor *vkg_tanh(vkg_tensor *x);
vkg_tensor *vkg_sigmoid(vkg_tensor *x);
vkg_tensor *vkg_relu(vkg_tensor *x);
vkg_tensor *vkg_gelu(vkg_tensor *x);                        /* tanh approximation */
vkg_tensor *vkg_silu(vkg_tensor *x);
vkg_tensor *vkg_pow(vkg_tensor *x, float exponent);

vkg_tensor *vkg_binary(vkg_op op, vkg_tensor *a, vkg_tensor *b);   /* any VKG_KIND_BINARY op */
vkg_tensor *vkg_add(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_sub(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_mul(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_div(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_maximum(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_minimum(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_lt(vkg_tensor *a, vkg_tensor *b);           /* 1.0 where a < b, else 0.0 */
vkg_tensor *vkg_gt(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_eq(vkg_tensor *a, vkg_tensor *b);
vkg_tensor *vkg_where(vkg_tensor *cond, vkg_tensor *a, vkg_tensor *b);  /* cond != 0 ? a : b */

/* Scalar forms: the scalar is the second operand (a - s, a / s, ...); no tensor is made for it. */
vkg_tensor *vkg_binary_scalar(vkg_op op, vkg_tensor *a, float s);
vkg_tensor *vkg_add_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_sub_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_mul_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_div_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_maximum_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_minimum_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_lt_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_gt_scalar(vkg_tensor *a, float s);
vkg_tensor *vkg_eq_scalar(vkg_tensor *a, float s);

/* The broadcast shape of a and b (NumPy rules); false if they do not broadcast. */
bool vkg_broadcast_shape(vkg_shape a, vkg_shape b, vkg_shape *out);

/* ---- reductions: over one axis (negative counts from the end), or over all (a 0-d result) -- */
vkg_tensor *vkg_reduce(vkg_op op, vkg_tensor *x, int axis, bool keepdim);
vkg_tensor *vkg_sum(vkg_tensor *x, int axis, bool keepdim);
vkg_tensor *vkg_mean(vkg_tensor *x, int axis, bool keepdim);
vkg_tensor *vkg_max(vkg_tensor *x, int axis, bool keepdim);
vkg_tensor *vkg_min(vkg_tensor *x, int axis, bool keepdim);
vkg_tensor *vkg_argmax(vkg_tensor *x, int axis, bool keepdim);   /* i32; first of ties */
vkg_tensor *vkg_reduce_all(vkg_op op, vkg_tensor *x);
vkg_tensor *vkg_sum_all(vkg_tensor *x);
vkg_tensor *vkg_mean_all(vkg_tensor *x);
vkg_tensor *vkg_max_all(vkg_tensor *x);
vkg_tensor *vkg_min_all(vkg_tensor *x);
vkg_tensor *vkg_argmax_all(vkg_tensor *x);                       /* index into the flattened x */

/* ---- matmul, with PyTorch's semantics: 1-D operands are promoted and the added dim dropped;
 * batch dims broadcast; transposed views are read in place. ------------------------------- */
/* f32 or f16 operands; the product is f32 either way, summed in f32 (f16 @ f16 on the tensor
 * cores where the device has them, vkgrad.h's VKG_F16). */
vkg_tensor *vkg_matmul(vkg_tensor *a, vkg_tensor *b);
/* The kernel the last vkg_matmul recorded: "general" (any strides), "reg" (register-blocked,
 * vec4, CPU-like devices), "reg_sg" (reg sharing A by subgroup shuffles), "tiled" (shared
 * memory, GPUs); "fill" for K = 0, "none" for an empty result or before the first call.
 * VKG_MATMUL_VARIANT=name forces one wherever it applies (reg and reg_sg need vec4-readable
 * operands; elsewhere general runs). VKG_TUNE: unset or auto (default) times a shape class's
 * candidates on its first use and keeps the fastest in the tuning file beside the pipeline
 * cache, which later calls and processes read without timing; off the fixed rule; cached the
 * file's choice, never timing; full times every class again (lib/ops/matmul.c, bench/MATMUL.md).
 * For bench reports and the profiler. */
const char *vkg_matmul_variant_last(void);

/* matmul with an epilogue, in the same kernels: y = act(a @ b + bias).
 *
 *   vkg_tensor *h = vkg_matmul_bias_act(x, vkg_transpose(w, 0, 1), b, VKG_ACTIVATION_RELU);
 *
 * bias is (N), N the last dim of b (1 for a 1-D b), added to every row of the product (every
 * batch too), or NULL for none; act is VKG_ACTIVATION_NONE, VKG_ACTIVATION_RELU or
 * VKG_ACTIVATION_GELU (vkg_gelu's tanh form; other activations: apply the op after). The bias
 * and the activation are applied as the kernel stores the product, so no (..., M, N) temporary
 * is written and read again; where the product is a sum of partial products (split-K, K slices
 * for lavapipe's loop limit), they run after the sum as vkg_add and vkg_relu or vkg_gelu. The
 * same float operations as vkg_relu(vkg_add(vkg_matmul(a, b), bias)) (vkg_gelu likewise), so
 * the same values, bit for bit. For its backward, relu saves nothing but the output y, whose
 * sign is the mask; gelu has the kernel store z = a @ b + bias beside y (in y's buffer), which
 * the backward's gelu'(z) reads. With neither bias nor act it is vkg_matmul. */
typedef enum vkg_activation { VKG_ACTIVATION_NONE = 0, VKG_ACTIVATION_RELU, VKG_ACTIVATION_GELU } vkg_activation;
vkg_tensor *vkg_matmul_bias_act(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias, vkg_activation act);
/* r + (a @ b + bias), r of the product's shape, bias (N) or NULL: a residual branch's end
 *
 *   x = vkg_matmul_bias_act_residual(h, vkg_transpose(w, 0, 1), b, x);   // x + (h w^T + b)
 *
 * with r added as the kernel stores the product, so the sum is written once (not the product,
 * then read with r and the sum written). The same values as vkg_add(r, vkg_matmul_bias_act(a,
 * b, bias, VKG_ACTIVATION_NONE)), bit for bit; r's gradient is the output's. */
vkg_tensor *vkg_matmul_bias_act_residual(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias, vkg_tensor *r);

/* ---- dtype conversion ------------------------------------------------------------------------
 * t itself when it already has dtype dt, else a new contiguous tensor: f32 <-> f16 (IEEE
 * binary16, round to nearest even, overflow to inf, subnormals kept, NaN quieted: exactly
 * vkg_ref_f32_to_f16 / vkg_ref_f16_to_f32 in vkgrad/reference.h, on every device). Any view is
 * read in place. Differentiable: the gradient is the upstream gradient cast back to t's dtype.
 * f16 here is storage: the shader converts with integer ops and every op that computes takes
 * f32, so a mixed-precision step stores in f16 and computes in f32 (vkgrad/optim.h). */
vkg_tensor *vkg_to_dtype(vkg_tensor *t, vkg_dtype dt);

/* ---- fill ----------------------------------------------------------------------------------- */
vkg_tensor *vkg_fill_(vkg_tensor *t, float value);  /* in place on a contiguous tensor; returns t */

#endif
