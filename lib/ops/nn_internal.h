/* Inside the nn group: the kernels its ops and their backward rules (lib/autograd/backward_nn.c)
 * share. Each records one dispatch (or a few) and returns a new contiguous tensor, records no
 * autograd node, and fails with a message naming `name`. */
#ifndef VKG_NN_INTERNAL_H
#define VKG_NN_INTERNAL_H

#include <string.h>

#include "ops/ops.h"
#include "vkgrad/nn_ops.h"

/* Codes of shaders/nn_pointwise.comp beyond the table's forward ones (change both). */
enum {
    NN_PW_CLAMP = 0,
    NN_PW_CLAMP_BACKWARD = 1,
    NN_PW_MASKED_FILL = 2,
    NN_PW_SCALE_MASK = 3,      /* dropout, both ways */
    NN_PW_MSE = 4,
    NN_PW_MSE_BACKWARD = 5,
    NN_PW_BCE = 6,
    NN_PW_BCE_BACKWARD_X = 7,
    NN_PW_BCE_BACKWARD_T = 8,
};

/* y (shape out) = f(a, b, c): b and c may be NULL; every input broadcasts to out. */
vkg_tensor *vkg_nn_pointwise(uint32_t code, vkg_op op, const char *name, vkg_shape out, vkg_tensor *a,
                             vkg_tensor *b, vkg_tensor *c, float s0, float s1);

/* t seen as (outer, R, inner) around axis with one stride per part, when its dims merge so. */
typedef struct vkg_nn_rows {
    int64_t outer, R, inner;
    int64_t so, sr, si;
} vkg_nn_rows;
bool vkg_nn_rows_of(const vkg_tensor *t, int axis, vkg_nn_rows *r);

/* Backward of a softmax-family or var/std node over axis (shaders/nn_rows_backward.comp):
 * a is y (softmax, log_softmax) or x (the others), dy the output's gradient, aux the output
 * (logsumexp, std) or NULL; denom max(R - correction, 0); scale the forward's (softmax family,
 * else 1). dx has a's shape. */
vkg_tensor *vkg_nn_rows_backward(vkg_op op, vkg_tensor *a, int axis, vkg_tensor *dy, vkg_tensor *aux, float denom,
                                 float scale);

/* softmax(x scale) over the last dim, and with causal the entries past the query's own (column
 * s > row t of each (T, S) matrix, top-left aligned) -inf first: attention's scores in one
 * pass, where a scale, a mask add and a softmax took three (and their backward). A softmax
 * node: its backward is softmax's times scale. */
vkg_tensor *vkg_nn_softmax_scaled(vkg_tensor *x, float scale, bool causal);

/* Backward of cross_entropy / nll_loss: dx (N, C). count: the mean's divisor (mean only). */
vkg_tensor *vkg_nn_class_loss_backward(vkg_op op, vkg_tensor *x, vkg_tensor *target, vkg_tensor *g,
                                       vkg_tensor *count, vkg_reduction reduction, int32_t ignore_index);

/* Backward of layer_norm from its saved stats (rows, 2): dx (x's shape), dw and db (D); dx, or
 * dw and db together, may be NULL when not wanted. acc (NULL: none), contiguous in x's shape,
 * is added to dx as it is stored: dx = acc + the layer's own gradient. */
vkg_status vkg_nn_layer_norm_backward(vkg_tensor *x, vkg_tensor *w, vkg_tensor *stats, vkg_tensor *dy, vkg_tensor *acc,
                                      vkg_tensor **dx, vkg_tensor **dw, vkg_tensor **db);

/* A float kept bit for bit in a node's int64 parameter. */
static inline int64_t vkg_nn_fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (int64_t)u;
}
static inline float vkg_nn_bitsf(int64_t v) {
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
