/* Tutorial 09: a tiny transformer. The same task as tutorial 08 — predict the next byte of the
 * fortunes — with token and position embeddings, causal self-attention, layer norm, an MLP and a
 * residual stream; then generation. README.md walks through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "vkgrad.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

enum { MAX_LAYERS = 4 };

typedef struct block {
    vkg_layer_norm_layer *ln1, *ln2;
    vkg_mha_layer *attn;
    vkg_linear *up, *down;
} block;

typedef struct gpt {
    vkg_embedding_layer *tokens, *positions;
    block blocks[MAX_LAYERS];
    int layers;
    vkg_layer_norm_layer *ln_f;
    vkg_linear *head;
} gpt;

static gpt build(vkg_module *m, int layers, int64_t E, int heads, int64_t T) {
    gpt g = { .layers = layers };
    g.tokens = vkg_embedding_new(m, "tok", &(vkg_embedding_desc){ .num = 256, .dim = E });
    g.positions = vkg_embedding_new(m, "pos", &(vkg_embedding_desc){ .num = T, .dim = E });
    for (int i = 0; i < layers; i++) {
        char n[32];
        block *b = &g.blocks[i];
        snprintf(n, sizeof n, "h%d.ln1", i);
        b->ln1 = vkg_layer_norm_new(m, n, &(vkg_layer_norm_desc){ .dim = E });
        snprintf(n, sizeof n, "h%d.attn", i);
        b->attn = vkg_mha_new(m, n, &(vkg_mha_desc){ .embed = E, .heads = heads, .causal = true });
        snprintf(n, sizeof n, "h%d.ln2", i);
        b->ln2 = vkg_layer_norm_new(m, n, &(vkg_layer_norm_desc){ .dim = E });
        snprintf(n, sizeof n, "h%d.up", i);
        b->up = vkg_linear_new(m, n, &(vkg_linear_desc){ .in = E, .out = 4 * E });
        snprintf(n, sizeof n, "h%d.down", i);
        b->down = vkg_linear_new(m, n, &(vkg_linear_desc){ .in = 4 * E, .out = E });
    }
    g.ln_f = vkg_layer_norm_new(m, "ln_f", &(vkg_layer_norm_desc){ .dim = E });
    g.head = vkg_linear_new(m, "head", &(vkg_linear_desc){ .in = E, .out = 256 });
    return g;
}

/* bytes (B, T) i32 -> logits (B, T, 256). */
static vkg_tensor *forward(const gpt *g, vkg_tensor *bytes) {
    int64_t T = vkg_dim(bytes, 1);
    int32_t pos[256];
    for (int t = 0; t < T; t++) pos[t] = t;
    vkg_tensor *where = vkg_from_data_dtype(VKG_SHAPE(1, T), VKG_I32, pos);
    /* the residual stream: what each position knows, (B, T, E) */
    vkg_tensor *x = vkg_add(vkg_embedding_forward(g->tokens, bytes), vkg_embedding_forward(g->positions, where));
    for (int i = 0; i < g->layers; i++) {
        const block *b = &g->blocks[i];
        /* attention: each position reads from the positions before it */
        x = vkg_add(x, vkg_mha_forward(b->attn, vkg_layer_norm_forward(b->ln1, x), NULL, NULL, NULL));
        /* the MLP: each position thinks on its own */
        vkg_tensor *h = vkg_gelu(vkg_linear_forward(b->up, vkg_layer_norm_forward(b->ln2, x)));
        x = vkg_add(x, vkg_linear_forward(b->down, h));
    }
    return vkg_linear_forward(g->head, vkg_layer_norm_forward(g->ln_f, x));
}

static int sample_byte(const float *logits, float temperature, uint64_t *rng) {
    double p[256], total = 0, mx = -1e30;
    for (int i = 0; i < 256; i++) mx = fmax(mx, logits[i] / temperature);
    for (int i = 0; i < 256; i++) total += p[i] = exp(logits[i] / temperature - mx);
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(*rng >> 11) / 9007199254740992.0 * total;
    for (int i = 0; i < 256; i++)
        if ((u -= p[i]) < 0) return i;
    return 255;
}

int main(int argc, char **argv) {
    bool test_mode = argc > 1 && strcmp(argv[1], "--test") == 0;
    int B = test_mode ? 8 : 32, T = test_mode ? 32 : 64, E = test_mode ? 64 : 128, layers = test_mode ? 2 : 4;
    int steps = test_mode ? 40 : 600, every = test_mode ? 10 : 100;
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_text text;
    if (vkg_text_load_dir(NULL, &text) != VKG_OK) {
        fprintf(stderr, "%s\n", vkg_last_error());
        return 1;
    }
    vkg_module *params = vkg_module_new(&(vkg_module_desc){ .seed = 7 });
    gpt g = build(params, layers, E, 4, T);
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 1e-3, .weight_decay = 0.1 });
    vkg_optim_add_module(opt, params);
    printf("parameters: %lld\n", (long long)vkg_module_numel(params));

    for (int step = 1; step <= steps; step++) {
        vkg_scope_begin();
        uint8_t bx[64 * 64], by[64 * 64];
        int32_t ix[64 * 64], iy[64 * 64];
        vkg_text_batch(&text, VKG_TEXT_TRAIN, 1, (uint64_t)step, B, T, bx, by);
        for (int k = 0; k < B * T; k++) {
            ix[k] = bx[k];
            iy[k] = by[k];
        }
        vkg_optim_zero_grad(opt);
        vkg_tensor *logits = forward(&g, vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, ix));
        vkg_tensor *loss = vkg_cross_entropy(vkg_reshape(logits, VKG_SHAPE(B * T, 256)),
                                             vkg_from_data_dtype(VKG_SHAPE(B * T), VKG_I32, iy), NULL);
        vkg_backward(loss);
        vkg_optim_step(opt);
        if (step % every == 0) printf("step %4d  loss %.3f nats/byte\n", step, vkg_item(loss));
        vkg_scope_end();
    }

    /* Generation: the whole context (its last T bytes) goes in, the last position's scores out. */
    char context[1024] = "The ";
    int len = test_mode ? 40 : 300, n = (int)strlen(context);
    uint64_t rng = 42;
    vkg_no_grad_begin();
    for (int i = 0; i < len; i++) {
        vkg_scope_begin();
        int start = n > T ? n - T : 0, ctx = n - start;
        int32_t in[256];
        for (int k = 0; k < ctx; k++) in[k] = (unsigned char)context[start + k];
        vkg_tensor *logits = forward(&g, vkg_from_data_dtype(VKG_SHAPE(1, ctx), VKG_I32, in));
        float last[256];
        vkg_tensor_read(vkg_narrow(logits, 1, ctx - 1, 1), last, sizeof last);
        vkg_scope_end();
        int next = sample_byte(last, 0.8f, &rng);
        context[n++] = (char)(next >= 32 && next < 127 ? next : (next == '\n' ? '\n' : '?'));
    }
    context[n] = '\0';
    vkg_no_grad_end();
    printf("sample (temperature 0.8): %s\nsampled %d bytes\n", context, len);

    vkg_optim_free(opt);
    vkg_module_free(params);
    vkg_text_free(&text);
    vkg_shutdown();
    return 0;
}
