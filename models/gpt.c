/* Tiny GPT (pre-LayerNorm) on bytes: token and learned position embeddings, `layers` blocks of
 * causal self-attention (nn.MultiheadAttention) and a tanh-GELU MLP, each a residual branch
 * behind its LayerNorm, a final LayerNorm and a separate, bias-free output head. Names follow
 * the PyTorch module tree: "wte.weight", "wpe.weight", "blocks.0.ln1.weight",
 * "blocks.0.attn.in_proj_weight", "blocks.0.fc.weight", "blocks.0.proj.weight", "ln_f.weight",
 * "head.weight"; every layer has PyTorch's default initialisation. */
#include <stdio.h>
#include <stdlib.h>

#include "models.h"

#define GPT_MAX_LAYERS 16

typedef struct gpt_block {
    vkg_layer_norm_layer *ln1, *ln2;
    vkg_mha_layer *attn;
    vkg_linear *fc, *proj;
} gpt_block;

struct vkg_gpt_model {
    vkg_gpt_config cfg;
    vkg_embedding_layer *wte, *wpe;
    gpt_block blocks[GPT_MAX_LAYERS];
    vkg_layer_norm_layer *ln_f;
    vkg_linear *head;
};

vkg_gpt_config vkg_gpt_config_default(bool test) {
    if (test) return (vkg_gpt_config){ .vocab = 256, .context = 8, .width = 16, .layers = 2, .heads = 2, .mlp_mult = 4 };
    return (vkg_gpt_config){ .vocab = 256, .context = 64, .width = 128, .layers = 4, .heads = 4, .mlp_mult = 4 };
}

vkg_gpt_model *vkg_gpt_model_new(vkg_module *module, const vkg_gpt_config *cfg) {
    vkg_gpt_config d = vkg_gpt_config_default(false), c = cfg ? *cfg : d;
    if (!c.vocab) c.vocab = d.vocab;
    if (!c.context) c.context = d.context;
    if (!c.width) c.width = d.width;
    if (!c.layers) c.layers = d.layers;
    if (!c.heads) c.heads = d.heads;
    if (!c.mlp_mult) c.mlp_mult = d.mlp_mult;
    if (c.layers < 1 || c.layers > GPT_MAX_LAYERS) {
        fprintf(stderr, "vkg_gpt_model_new: layers %d must be in 1..%d\n", c.layers, GPT_MAX_LAYERS);
        return NULL;
    }
    vkg_gpt_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = c;
    int64_t E = c.width;
    bool ok = (m->wte = vkg_embedding_new(module, "wte", &(vkg_embedding_desc){ .num = c.vocab, .dim = E })) &&
              (m->wpe = vkg_embedding_new(module, "wpe", &(vkg_embedding_desc){ .num = c.context, .dim = E }));
    for (int i = 0; ok && i < c.layers; i++) {
        gpt_block *b = &m->blocks[i];
        char n[64];
#define GPT_NAME(leaf) (snprintf(n, sizeof n, "blocks.%d.%s", i, leaf), n)
        ok = (b->ln1 = vkg_layer_norm_new(module, GPT_NAME("ln1"), &(vkg_layer_norm_desc){ .dim = E })) &&
             (b->attn = vkg_mha_new(module, GPT_NAME("attn"), &(vkg_mha_desc){ .embed = E, .heads = c.heads, .causal = true })) &&
             (b->ln2 = vkg_layer_norm_new(module, GPT_NAME("ln2"), &(vkg_layer_norm_desc){ .dim = E })) &&
             (b->fc = vkg_linear_new(module, GPT_NAME("fc"), &(vkg_linear_desc){ .in = E, .out = c.mlp_mult * E })) &&
             (b->proj = vkg_linear_new(module, GPT_NAME("proj"), &(vkg_linear_desc){ .in = c.mlp_mult * E, .out = E }));
#undef GPT_NAME
    }
    ok = ok && (m->ln_f = vkg_layer_norm_new(module, "ln_f", &(vkg_layer_norm_desc){ .dim = E })) &&
         (m->head = vkg_linear_new(module, "head", &(vkg_linear_desc){ .in = E, .out = c.vocab, .no_bias = true }));
    if (!ok) {
        free(m);
        return NULL;
    }
    return m;
}

/* x (B, T) i32, T <= context -> logits (B, T, vocab) */
vkg_tensor *vkg_gpt_model_forward(const vkg_gpt_model *m, vkg_tensor *x) {
    if (!x) return NULL;
    int64_t T = vkg_dim(x, 1);
    vkg_tensor *pos = vkg_narrow(m->wpe->weight, 0, 0, T);                        // (T, E)
    vkg_tensor *h = vkg_add(vkg_embedding_forward(m->wte, x), pos);               // (B, T, E)
    for (int i = 0; i < m->cfg.layers; i++) {
        const gpt_block *b = &m->blocks[i];
        vkg_tensor *a = vkg_layer_norm_forward(b->ln1, h);
        h = vkg_mha_forward_residual(b->attn, a, NULL, NULL, NULL, h);            // h + attn(a)
        vkg_tensor *f = vkg_layer_norm_forward(b->ln2, h);
        h = vkg_linear_forward_residual(b->proj, vkg_linear_forward_gelu(b->fc, f), h); // h + mlp(f)
    }
    return vkg_linear_forward(m->head, vkg_layer_norm_forward(m->ln_f, h));       // (B, T, vocab)
}
