/* vkgrad seq ops: joining and cutting tensors, indexing, embedding lookup, attention, LSTM cell
 * and LSTM over a sequence.
 *
 *   vkg_tensor *e = vkg_embedding(wte, tokens);                  // (B, T) i32 -> (B, T, D)
 *   vkg_tensor *y = vkg_scaled_dot_product_attention(q, k, v, &(vkg_attention_desc){ .causal = true });
 *   vkg_tensor *h1, *c1;
 *   vkg_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, &h1, &c1);      // PyTorch's gate order i, f, g, o
 *   vkg_tensor *out, *h_n, *c_n;                                  // x (B, T, I) -> out (B, T, Hd)
 *   vkg_lstm(x, NULL, NULL, w_ih, w_hh, b_ih, b_hh, &out, &h_n, &c_n);
 *
 * PyTorch semantics throughout. Index tensors are i32. Gradients that scatter (index_select,
 * gather, embedding) are summed in a fixed order, never with float atomics, so a backward is
 * bitwise reproducible on a device. An index outside its axis reads as NaN in the forward (so
 * that VKG_SYNC=1 and any loss show it) and gets no gradient. */
#ifndef VKGRAD_SEQ_OPS_H
#define VKGRAD_SEQ_OPS_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- joining and cutting -------------------------------------------------------------------- */
/* The n tensors (same dtype, f32 or i32; same shape but along axis) joined along axis. */
vkg_tensor *vkg_concat(vkg_tensor *const *tensors, int n, int axis);
/* n tensors of one shape stacked along a new axis (0..ndim). */
vkg_tensor *vkg_stack(vkg_tensor *const *tensors, int n, int axis);
/* out[i] = the i-th piece of x along axis, sizes[i] long (the sizes sum to x's dim): views of x,
 * no copy. The pieces' gradients are written side by side into one gradient of x (a concat),
 * pieces that get none leave zeros. On failure every out[i] is NULL; a NULL x fails with no
 * new message (VKG_ERR_INVALID, or the status of the failure that made it NULL). */
vkg_status vkg_split(vkg_tensor *x, const int64_t *sizes, int n, int axis, vkg_tensor **out);

/* ---- indexing --------------------------------------------------------------------------------- */
/* x's entries at index (1-D i32) along axis: x's shape with dim axis = len(index). */
vkg_tensor *vkg_index_select(vkg_tensor *x, int axis, vkg_tensor *index);
/* y[i][j][k] = x[i][index[i][j][k]][k] for axis 1, and so on: index (i32) has x's ndim, each of
 * its dims but axis at most x's; y has index's shape. */
vkg_tensor *vkg_gather(vkg_tensor *x, int axis, vkg_tensor *index);
/* weight (V, D) rows at index (i32, any shape): (*index.shape, D). */
vkg_tensor *vkg_embedding(vkg_tensor *weight, vkg_tensor *index);

/* ---- attention -------------------------------------------------------------------------------- */
typedef struct vkg_attention_desc {
    bool causal;       /* query t sees keys s <= t (top-left aligned, like PyTorch's is_causal)    */
    vkg_tensor *mask;  /* optional f32, added to the scores, broadcastable to (B, H, T, S); it
                        * gets no gradient (one that requires grad is refused)                   */
    float scale;       /* 0: 1/sqrt(Dh)                                                            */
} vkg_attention_desc;
/* softmax(q k^T * scale + mask) v, one fused kernel per query row (online softmax) that keeps
 * the row's logsumexp for the backward. q (B, H, T, Dh), k (B, H, S, Dh), v (B, H, S, Dv) ->
 * (B, H, T, Dv). desc may be NULL. A row whose every key is masked out (-inf) gives zeros. */
vkg_tensor *vkg_scaled_dot_product_attention(vkg_tensor *q, vkg_tensor *k, vkg_tensor *v,
                                             const vkg_attention_desc *desc);

/* ---- LSTM cell -------------------------------------------------------------------------------- */
/* gates = x w_ih^T + b_ih + h w_hh^T + b_hh (B, 4Hd), in PyTorch's order i, f, g, o;
 * c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c'). The two matmuls go through
 * vkg_matmul, the biases, nonlinearities and state update through one fused shader. Both outputs
 * are (B, Hd) contiguous views of one (2, B, Hd) result [h'; c'] that carries the node, so
 * gradients flow whether h', c' or both are used downstream. x (B, I), h and c (B, Hd), w_ih
 * (4Hd, I), w_hh (4Hd, Hd), b_ih and b_hh (4Hd) or NULL. On failure both outputs are NULL. */
vkg_status vkg_lstm_cell(vkg_tensor *x, vkg_tensor *h, vkg_tensor *c, vkg_tensor *w_ih, vkg_tensor *w_hh,
                         vkg_tensor *b_ih, vkg_tensor *b_hh, vkg_tensor **h_out, vkg_tensor **c_out);

/* ---- LSTM over a sequence -------------------------------------------------------------------- */
/* One LSTM layer over a whole sequence, batch first (PyTorch's nn.LSTM with batch_first, one
 * layer): x (B, T >= 1, I), h0 and c0 (B, Hd) or NULL (zeros), weights and biases as for
 * vkg_lstm_cell. out (B, T, Hd) holds h_t of every step; h_n (a view of out's last step) and c_n
 * (B, Hd) the last state; h_n and c_n may be NULL (not wanted). One op with one backward: x W_ih^T
 * is one matmul over all B*T rows, each step one h W_hh^T matmul plus a fused kernel, and the
 * backward (through time) computes the weight and bias gradients once per sequence. x may be
 * a strided view. On failure every output is NULL. */
vkg_status vkg_lstm(vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0, vkg_tensor *w_ih, vkg_tensor *w_hh,
                    vkg_tensor *b_ih, vkg_tensor *b_hh, vkg_tensor **out, vkg_tensor **h_n, vkg_tensor **c_n);

/* ---- C reference (lib/ops/seq_reference.c): float vkg_ref_x and double vkg_ref_x_f64 ---------
 * Arrays are contiguous and row-major; backward functions add into their outputs (NULL: not
 * wanted). Indices outside their axis read as NaN and get no gradient, like the device. */
#define VKG_REF_SEQ_DECLARE_(REAL, NAME)                                                                \
    /* y: the concat of x[i] (shape xs[i]) along axis */                                               \
    void NAME(concat)(REAL * y, const REAL *const *x, const vkg_shape *xs, int n, int axis);            \
    void NAME(concat_backward)(REAL *const *dx, const vkg_shape *xs, int n, int axis, const REAL *dy);  \
    void NAME(split)(REAL *const *y, const int64_t *sizes, int n, const REAL *x, vkg_shape xs, int axis); \
    /* dy[i] NULL: piece i has no gradient */                                                          \
    void NAME(split_backward)(REAL * dx, vkg_shape xs, int axis, const int64_t *sizes, int n,           \
                              const REAL *const *dy);                                                   \
    /* every x[i] has shape xs; axis in 0..xs.ndim */                                                  \
    void NAME(stack)(REAL * y, const REAL *const *x, vkg_shape xs, int n, int axis);                    \
    void NAME(stack_backward)(REAL *const *dx, vkg_shape xs, int n, int axis, const REAL *dy);          \
    void NAME(index_select)(REAL * y, const REAL *x, vkg_shape xs, int axis, const int32_t *index,      \
                            int64_t m);                                                                 \
    void NAME(index_select_backward)(REAL * dx, vkg_shape xs, int axis, const int32_t *index, int64_t m, \
                                     const REAL *dy);                                                   \
    /* y and index have shape is */                                                                    \
    void NAME(gather)(REAL * y, const REAL *x, vkg_shape xs, int axis, const int32_t *index, vkg_shape is); \
    void NAME(gather_backward)(REAL * dx, vkg_shape xs, int axis, const int32_t *index, vkg_shape is,    \
                               const REAL *dy);                                                         \
    /* y (m, D) from weight (V, D) */                                                                  \
    void NAME(embedding)(REAL * y, const REAL *weight, int64_t V, int64_t D, const int32_t *index,      \
                         int64_t m);                                                                    \
    void NAME(embedding_backward)(REAL * dweight, int64_t V, int64_t D, const int32_t *index, int64_t m, \
                                  const REAL *dy);                                                      \
    /* o (B,H,T,Dv) and lse (B,H,T, or NULL) from q (B,H,T,Dh), k (B,H,S,Dh), v (B,H,S,Dv), mask of  \
     * shape ms broadcast to (B,H,T,S) or NULL; scale already resolved */                              \
    void NAME(sdpa)(REAL * o, REAL * lse, const REAL *q, const REAL *k, const REAL *v, const REAL *mask, \
                    vkg_shape ms, int64_t B, int64_t H, int64_t T, int64_t S, int64_t Dh, int64_t Dv,   \
                    bool causal, REAL scale);                                                           \
    void NAME(sdpa_backward)(REAL * dq, REAL * dk, REAL * dv, const REAL *q, const REAL *k, const REAL *v, \
                             const REAL *mask, vkg_shape ms, int64_t B, int64_t H, int64_t T, int64_t S, \
                             int64_t Dh, int64_t Dv, bool causal, REAL scale, const REAL *dout);         \
    /* h1, c1 (B, Hd); b_ih, b_hh may be NULL */                                                      \
    void NAME(lstm_cell)(REAL * h1, REAL * c1, const REAL *x, const REAL *h, const REAL *c,             \
                         const REAL *w_ih, const REAL *w_hh, const REAL *b_ih, const REAL *b_hh,        \
                         int64_t B, int64_t In, int64_t Hd);                                             \
    /* dh1, dc1: gradients of h1 and c1 (either NULL: zero) */                                         \
    void NAME(lstm_cell_backward)(REAL * dx, REAL * dh, REAL * dc, REAL * dw_ih, REAL * dw_hh,           \
                                  REAL * db_ih, REAL * db_hh, const REAL *x, const REAL *h, const REAL *c, \
                                  const REAL *w_ih, const REAL *w_hh, const REAL *b_ih,                 \
                                  const REAL *b_hh, int64_t B, int64_t In, int64_t Hd, const REAL *dh1,  \
                                  const REAL *dc1);                                                     \
    /* out (B, T, Hd), h_n and c_n (B, Hd) (either NULL: not wanted) from x (B, T, In); h0, c0, b_ih, \
     * b_hh may be NULL */                                                                            \
    void NAME(lstm)(REAL * out, REAL * h_n, REAL * c_n, const REAL *x, const REAL *h0, const REAL *c0,  \
                    const REAL *w_ih, const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, int64_t B,    \
                    int64_t T, int64_t In, int64_t Hd);                                                  \
    /* dout (B, T, Hd), dh_n, dc_n (B, Hd): gradients of the outputs (any NULL: zero) */              \
    void NAME(lstm_backward)(REAL * dx, REAL * dh0, REAL * dc0, REAL * dw_ih, REAL * dw_hh, REAL * db_ih, \
                             REAL * db_hh, const REAL *x, const REAL *h0, const REAL *c0, const REAL *w_ih, \
                             const REAL *w_hh, const REAL *b_ih, const REAL *b_hh, int64_t B, int64_t T,  \
                             int64_t In, int64_t Hd, const REAL *dout, const REAL *dh_n, const REAL *dc_n);
#define VKG_REF_SEQ_F32_(x) vkg_ref_##x
#define VKG_REF_SEQ_F64_(x) vkg_ref_##x##_f64
VKG_REF_SEQ_DECLARE_(float, VKG_REF_SEQ_F32_)
VKG_REF_SEQ_DECLARE_(double, VKG_REF_SEQ_F64_)

#ifdef __cplusplus
}
#endif
#endif
