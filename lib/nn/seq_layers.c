/* Embedding, LSTM and MultiHeadAttention over the seq ops (vkgrad/seq_ops.h), with PyTorch's
 * parameter names and initialisation. The LSTM runs vkg_lstm (one whole-sequence op) per layer;
 * attention projects with views of one packed in_proj_weight, as nn.MultiheadAttention does. */
#include <math.h>
#include <stdlib.h>

#include "nn/nn_internal.h"
#include "ops/seq.h"

vkg_embedding_layer *vkg_embedding_new(vkg_module *m, const char *name, const vkg_embedding_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_embedding_new")) return NULL;
    if (desc->num <= 0 || desc->dim <= 0)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_embedding_new: \"%s\" has num %lld, dim %lld; both must be > 0", name,
                             (long long)desc->num, (long long)desc->dim);
    vkg_embedding_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_embedding_layer){ .module = m, .num = desc->num, .dim = desc->dim };
    char b[256];
    l->weight = vkg_nn_param_normal(m, vkg_nn_name(b, sizeof b, name, "weight"), VKG_SHAPE(desc->num, desc->dim), 0.0f,
                                    1.0f);
    return l->weight ? l : NULL;
}

vkg_tensor *vkg_embedding_forward(const vkg_embedding_layer *l, vkg_tensor *index) {
    if (!index) return NULL;
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_embedding_forward: the layer is NULL");
    return vkg_embedding(l->weight, index);
}

/* ---- LSTM ------------------------------------------------------------------------------------- */
#define LSTM_MAX_LAYERS 8

vkg_lstm_layer *vkg_lstm_new(vkg_module *m, const char *name, const vkg_lstm_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_lstm_new")) return NULL;
    int layers = desc->layers ? desc->layers : 1;
    if (desc->input <= 0 || desc->hidden <= 0 || layers < 1 || layers > LSTM_MAX_LAYERS)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_lstm_new: \"%s\" has input %lld, hidden %lld, layers %d; sizes must be "
                                              "> 0 and layers in 1..%d",
                             name, (long long)desc->input, (long long)desc->hidden, layers, LSTM_MAX_LAYERS);
    vkg_lstm_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    *l = (vkg_lstm_layer){ .module = m, .input = desc->input, .hidden = desc->hidden, .layers = layers };
    int64_t H = desc->hidden;
    float bound = (float)(1.0 / sqrt((double)H));
    char b[256], leaf[64];
    for (int k = 0; k < layers; k++) {
        int64_t in = k == 0 ? desc->input : H;
        snprintf(leaf, sizeof leaf, "weight_ih_l%d", k);
        l->w_ih[k] = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, leaf), VKG_SHAPE(4 * H, in), bound);
        snprintf(leaf, sizeof leaf, "weight_hh_l%d", k);
        l->w_hh[k] = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, leaf), VKG_SHAPE(4 * H, H), bound);
        if (!l->w_ih[k] || !l->w_hh[k]) return NULL;
        if (desc->no_bias) continue;
        snprintf(leaf, sizeof leaf, "bias_ih_l%d", k);
        l->b_ih[k] = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, leaf), VKG_SHAPE(4 * H), bound);
        snprintf(leaf, sizeof leaf, "bias_hh_l%d", k);
        l->b_hh[k] = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, leaf), VKG_SHAPE(4 * H), bound);
        if (!l->b_ih[k] || !l->b_hh[k]) return NULL;
    }
    return l;
}

/* State k of a (layers, B, H) tensor, as a (B, H) view; NULL (zeros) when s is NULL. */
static vkg_tensor *state_of(vkg_tensor *s, int k) {
    return s ? vkg_squeeze(vkg_narrow(s, 0, k, 1), 0) : NULL;
}

vkg_status vkg_lstm_forward(const vkg_lstm_layer *l, vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0, vkg_tensor **out,
                            vkg_tensor **h_n, vkg_tensor **c_n) {
    if (out) *out = NULL;
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    if (!l) return vkg_fail(VKG_ERR_INVALID, "vkg_lstm_forward: the layer is NULL");
    if (!x) return vkg_last_status() != VKG_OK ? vkg_last_status() : vkg_fail(VKG_ERR_INVALID, "vkg_lstm_forward: x is NULL");
    char s[160], s2[160];
    if (x->shape.ndim != 3 || x->shape.d[2] != l->input || x->shape.d[1] < 1)
        return vkg_fail(VKG_ERR_INVALID, "vkg_lstm_forward: x is %s but the layer takes (B, T >= 1, %lld) (batch first)",
                        vkg_shape_str(x->shape, s, sizeof s), (long long)l->input);
    int64_t B = x->shape.d[0], H = l->hidden, L = l->layers;
    vkg_shape want = VKG_SHAPE(L, B, H);
    vkg_tensor *st[2] = { h0, c0 };
    for (int i = 0; i < 2; i++)
        if (st[i] && (st[i]->shape.ndim != 3 || st[i]->shape.d[0] != L || st[i]->shape.d[1] != B || st[i]->shape.d[2] != H))
            return vkg_fail(VKG_ERR_INVALID, "vkg_lstm_forward: %s is %s but must be %s (layers, B, H)", i ? "c0" : "h0",
                            vkg_shape_str(st[i]->shape, s, sizeof s), vkg_shape_str(want, s2, sizeof s2));
    /* one whole-sequence op per layer (vkg_lstm): its output is the next layer's input */
    vkg_tensor *hl[LSTM_MAX_LAYERS], *cl[LSTM_MAX_LAYERS];
    vkg_tensor *input = x;
    for (int k = 0; k < L; k++) {
        vkg_tensor *hk = state_of(h0, k), *ck = state_of(c0, k), *y;
        if ((h0 && !hk) || (c0 && !ck)) return vkg_last_status();
        vkg_status status = vkg_lstm(input, hk, ck, vkg_nn_matmul_weight(l->module, l->w_ih[k]),
                                     vkg_nn_matmul_weight(l->module, l->w_hh[k]), l->b_ih[k], l->b_hh[k], &y, &hl[k], &cl[k]);
        if (status != VKG_OK) return status;
        input = y;                                                           /* (B, T, H) */
    }
    if (h_n) *h_n = vkg_stack(hl, L, 0);
    if (c_n) *c_n = vkg_stack(cl, L, 0);
    if ((h_n && !*h_n) || (c_n && !*c_n)) {
        if (h_n) *h_n = NULL;
        if (c_n) *c_n = NULL;
        return vkg_last_status();
    }
    if (out) *out = input;
    return VKG_OK;
}

/* ---- MultiHeadAttention ------------------------------------------------------------------------ */
vkg_mha_layer *vkg_mha_new(vkg_module *m, const char *name, const vkg_mha_desc *desc) {
    if (!vkg_nn_check_new(m, name, desc, "vkg_mha_new")) return NULL;
    if (desc->embed <= 0 || desc->heads <= 0 || desc->embed % desc->heads)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_mha_new: \"%s\" has embed %lld, heads %d; embed must be a positive "
                                              "multiple of heads",
                             name, (long long)desc->embed, desc->heads);
    vkg_mha_layer *l = vkg_module_alloc_layer(m, sizeof *l);
    if (!l) return NULL;
    int64_t E = desc->embed;
    *l = (vkg_mha_layer){ .module = m, .embed = E, .heads = desc->heads, .causal = desc->causal };
    char b[256];
    /* xavier_uniform_ on (3E, E): bound sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (E + 3E)) */
    l->in_proj_weight = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, "in_proj_weight"), VKG_SHAPE(3 * E, E),
                                             (float)sqrt(6.0 / (4.0 * (double)E)));
    if (!l->in_proj_weight) return NULL;
    if (!desc->no_bias) {
        l->in_proj_bias = vkg_nn_param_const(m, vkg_nn_name(b, sizeof b, name, "in_proj_bias"), VKG_SHAPE(3 * E), 0.0f);
        if (!l->in_proj_bias) return NULL;
    }
    l->out_proj = (vkg_linear){ .module = m, .in = E, .out = E };
    l->out_proj.weight = vkg_nn_param_uniform(m, vkg_nn_name(b, sizeof b, name, "out_proj.weight"), VKG_SHAPE(E, E),
                                              (float)(1.0 / sqrt((double)E)));
    if (!l->out_proj.weight) return NULL;
    if (!desc->no_bias) {
        l->out_proj.bias = vkg_nn_param_const(m, vkg_nn_name(b, sizeof b, name, "out_proj.bias"), VKG_SHAPE(E), 0.0f);
        if (!l->out_proj.bias) return NULL;
    }
    return l;
}

/* x (B, T, E) projected by rows [i E, (i + 1) E) of in_proj and split into heads: (B, h, T, Dh),
 * a view. The heads are not copied out: the attention's batched matmuls read them in place
 * (strided batch dims) and the fused kernel gathers them itself. */
static vkg_tensor *project(const vkg_mha_layer *l, vkg_tensor *x, int i) {
    int64_t E = l->embed, Dh = E / l->heads;
    vkg_tensor *w = vkg_nn_matmul_weight(l->module, vkg_narrow(l->in_proj_weight, 0, i * E, E)); /* this third only */
    vkg_tensor *bias = l->in_proj_bias ? vkg_narrow(l->in_proj_bias, 0, i * E, E) : NULL;
    vkg_tensor *y = vkg_matmul_bias_act(x, vkg_transpose(w, 0, 1), bias, VKG_ACTIVATION_NONE);
    if (!y) return NULL;
    y = vkg_reshape(y, VKG_SHAPE(x->shape.d[0], x->shape.d[1], l->heads, Dh));
    return vkg_transpose(y, 1, 2);
}

/* vkg_mha_forward, plus r where r is given (vkg_mha_forward_residual) */
static vkg_tensor *mha_forward(const vkg_mha_layer *l, vkg_tensor *query, vkg_tensor *key, vkg_tensor *value,
                               vkg_tensor *mask, vkg_tensor *r) {
    if (!l) return vkg_fail_null(VKG_ERR_INVALID, "vkg_mha_forward: the layer is NULL");
    if (!key) key = query;
    if (!value) value = key;
    if (!query || !key || !value) return NULL;
    char s[160], s2[160], s3[160];
    int64_t E = l->embed;
    const vkg_tensor *in[3] = { query, key, value };
    bool ok = true;
    for (int i = 0; i < 3; i++) ok &= in[i]->shape.ndim == 3 && in[i]->shape.d[2] == E && in[i]->shape.d[0] == query->shape.d[0];
    if (ok) ok = key->shape.d[1] == value->shape.d[1];
    if (!ok)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_mha_forward: query %s, key %s, value %s; the layer takes (B, T, %lld), "
                                              "(B, S, %lld), (B, S, %lld)",
                             vkg_shape_str(query->shape, s, sizeof s), vkg_shape_str(key->shape, s2, sizeof s2),
                             vkg_shape_str(value->shape, s3, sizeof s3), (long long)E, (long long)E, (long long)E);
    vkg_tensor *q, *k, *v;
    if (key == query && value == query) { /* self-attention: one matmul for q, k and v */
        int64_t Dh = E / l->heads;
        vkg_tensor *qkv = vkg_matmul_bias_act(query, vkg_transpose(vkg_nn_matmul_weight(l->module, l->in_proj_weight), 0, 1),
                                              l->in_proj_bias, VKG_ACTIVATION_NONE);      /* (B, T, 3E) */
        /* the heads are split out of (B, T, 3, h, Dh) views, so that every step back is a view
         * too: each piece's gradient, a transposed (B, T, 1, h, Dh) view, is written into its
         * place of qkv's gradient once. (Three narrows added each into a zeroed full-size
         * gradient; a split before the reshape copied each to reshape it.) */
        vkg_tensor *part[3], *heads = vkg_reshape(qkv, VKG_SHAPE(query->shape.d[0], query->shape.d[1], 3, l->heads, Dh));
        if (vkg_split(heads, (const int64_t[]){ 1, 1, 1 }, 3, 2, part) != VKG_OK) return NULL;
        for (int i = 0; i < 3; i++) part[i] = vkg_transpose(vkg_squeeze(part[i], 2), 1, 2); /* (B, h, T, Dh) */
        q = part[0], k = part[1], v = part[2];
    } else {
        q = project(l, query, 0), k = project(l, key, 1), v = project(l, value, 2);
    }
    /* (B, T, E), the heads side by side */
    vkg_tensor *o = vkg_sdpa_merged(q, k, v, &(vkg_attention_desc){ .causal = l->causal, .mask = mask });
    return r ? vkg_linear_forward_residual(&l->out_proj, o, r) : vkg_linear_forward(&l->out_proj, o);
}

vkg_tensor *vkg_mha_forward(const vkg_mha_layer *l, vkg_tensor *query, vkg_tensor *key, vkg_tensor *value,
                            vkg_tensor *mask) {
    return mha_forward(l, query, key, value, mask, NULL);
}

vkg_tensor *vkg_mha_forward_residual(const vkg_mha_layer *l, vkg_tensor *query, vkg_tensor *key, vkg_tensor *value,
                                     vkg_tensor *mask, vkg_tensor *r) {
    if (!r) return NULL;
    return mha_forward(l, query, key, value, mask, r);
}
