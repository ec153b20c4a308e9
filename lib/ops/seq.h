/* Inside the library: the seq group's backward kernels, recorded by the rules in
 * lib/autograd/backward_seq.c (each returns new tensors, or NULL / a status with a message). */
#ifndef VKG_OPS_SEQ_H
#define VKG_OPS_SEQ_H

#include "ops/ops.h"

/* dL/dx of index_select / embedding / gather (op) for x of shape xs, given dy = g. */
vkg_tensor *vkg_index_grad(vkg_op op, vkg_shape xs, int axis, vkg_tensor *index, vkg_tensor *g);

/* vkg_scaled_dot_product_attention's result with the heads side by side, (B, T, H Dv): what
 * MultiheadAttention projects. On the matmul path the last product writes that layout directly
 * (no copy of the heads); the fused kernel's (B, H, T, Dv) is copied into it. */
vkg_tensor *vkg_sdpa_merged(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, const vkg_attention_desc *desc);
/* dq, dk, dv of scaled_dot_product_attention: o is the forward output, lse its saved
 * logsumexp per row (B, H, T), mask NULL or as the forward saw it. Any out may be NULL. */
vkg_status vkg_sdpa_grad(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v, vkg_tensor *mask, vkg_tensor *o,
                         vkg_tensor *lse, bool causal, float scale, vkg_tensor *g, vkg_tensor **dq,
                         vkg_tensor **dk, vkg_tensor **dv);

/* dL/dgates (B, 4Hd) and dL/dc (B, Hd) of the fused LSTM update, from its saved activated gates
 * (B, 4Hd), c (B, Hd) and g = dL/d[h'; c'] (2, B, Hd). */
vkg_status vkg_lstm_cell_grad(vkg_tensor *gates, vkg_tensor *c, vkg_tensor *g, vkg_tensor **dgates, vkg_tensor **dc);

/* Gradients of vkg_lstm (one layer over a sequence) from g = dL/dR, R = [out (B, T, Hd) | c_n
 * (B, Hd)] its flat result, and saved = [gates (B, T, 4Hd) | c (B, T, Hd) | h_prev (B, T, Hd)]
 * its saved state: dx (B, T, I), dh0 and dc0 (B, Hd), dw_ih (4Hd, I), dw_hh (4Hd, Hd) and db
 * (4Hd, the gradient of each bias). c0 is the forward's c0 or NULL. Any out may be NULL. */
vkg_status vkg_lstm_grad(vkg_tensor *x, vkg_tensor *w_ih, vkg_tensor *w_hh, vkg_tensor *c0, vkg_tensor *saved,
                         vkg_tensor *g, vkg_tensor **dx, vkg_tensor **dh0, vkg_tensor **dc0, vkg_tensor **dw_ih,
                         vkg_tensor **dw_hh, vkg_tensor **db);

/* Records the node of a concat (or stack) output y of inputs in[0..n) along axis; past
 * VKG_NODE_MAX_IN inputs, the last slot holds a view of y's remaining part with its own node. */
void vkg_concat_record(vkg_tensor *y, int op, vkg_tensor *const *in, int n, int axis);

#endif
