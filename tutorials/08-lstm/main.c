/* Tutorial 08: an LSTM that writes. A byte-level language model on Debian's fortunes: an
 * embedding, an LSTM and a linear head predict each next byte; truncated back-propagation over
 * windows of T bytes; then text sampled from a prompt with a temperature. README.md walks
 * through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "vkgrad.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

typedef struct lm {
    vkg_embedding_layer *embed;
    vkg_lstm_layer *lstm;
    vkg_linear *head;
} lm;

/* bytes (B, T) i32 -> logits (B, T, 256); the state goes in through h0, c0 and out through h, c. */
static vkg_tensor *forward(const lm *m, vkg_tensor *bytes, vkg_tensor *h0, vkg_tensor *c0, vkg_tensor **h,
                           vkg_tensor **c) {
    vkg_tensor *x = vkg_embedding_forward(m->embed, bytes);          /* (B, T, E) */
    vkg_tensor *out = NULL;
    vkg_lstm_forward(m->lstm, x, h0, c0, &out, h, c);                /* (B, T, H) */
    return vkg_linear_forward(m->head, out);                         /* (B, T, 256) */
}

/* One batch of windows as device tensors: x (B, T) and its next bytes y (B*T,). */
static void batch(const vkg_text *text, vkg_text_split split, uint64_t seed, int64_t i, int B, int T, vkg_tensor **x,
                  vkg_tensor **y) {
    uint8_t bx[64 * 64], by[64 * 64];
    int32_t ix[64 * 64], iy[64 * 64];
    vkg_text_batch(text, split, seed, (uint64_t)i, B, T, bx, by);
    for (int k = 0; k < B * T; k++) {
        ix[k] = bx[k];
        iy[k] = by[k];
    }
    *x = vkg_from_data_dtype(VKG_SHAPE(B, T), VKG_I32, ix);
    *y = vkg_from_data_dtype(VKG_SHAPE(B * T), VKG_I32, iy);
}

/* Draws a byte from softmax(logits / temperature) with a seeded generator. */
static int sample_byte(const float *logits, float temperature, uint64_t *rng) {
    double p[256], total = 0, mx = -1e30;
    for (int i = 0; i < 256; i++) mx = fmax(mx, logits[i] / temperature);
    for (int i = 0; i < 256; i++) total += p[i] = exp(logits[i] / temperature - mx);
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull; /* a 64-bit LCG step */
    double u = (double)(*rng >> 11) / 9007199254740992.0 * total;
    for (int i = 0; i < 256; i++)
        if ((u -= p[i]) < 0) return i;
    return 255;
}

int main(int argc, char **argv) {
    bool test_mode = argc > 1 && strcmp(argv[1], "--test") == 0;
    int B = test_mode ? 8 : 32, T = test_mode ? 32 : 64, H = test_mode ? 64 : 256;
    int steps = test_mode ? 40 : 600, every = test_mode ? 10 : 100;
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_text text;
    if (vkg_text_load_dir(NULL, &text) != VKG_OK) { /* NULL: /usr/share/games/fortunes */
        fprintf(stderr, "%s\n", vkg_last_error());
        return 1;
    }
    printf("corpus: %zu bytes, %zu for training, %zu for validation\n", text.size, text.train_size, text.val_size);

    vkg_module *params = vkg_module_new(&(vkg_module_desc){ .seed = 7 });
    lm m = { vkg_embedding_new(params, "embed", &(vkg_embedding_desc){ .num = 256, .dim = 32 }),
             vkg_lstm_new(params, "lstm", &(vkg_lstm_desc){ .input = 32, .hidden = H }),
             vkg_linear_new(params, "head", &(vkg_linear_desc){ .in = H, .out = 256 }) };
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 2e-3, .weight_decay = VKG_OPTIM_ZERO });
    vkg_optim_add_module(opt, params);
    const char *const *names;
    vkg_tensor *const *weights;
    int nparams = vkg_module_params(params, &names, &weights);

    for (int step = 1; step <= steps; step++) {
        vkg_scope_begin();
        vkg_tensor *x, *y;
        batch(&text, VKG_TEXT_TRAIN, 1, step, B, T, &x, &y);
        vkg_optim_zero_grad(opt);
        /* every window starts from a zero state, and gradients flow back through its T steps only */
        vkg_tensor *logits = forward(&m, x, NULL, NULL, NULL, NULL);
        vkg_tensor *loss = vkg_cross_entropy(vkg_reshape(logits, VKG_SHAPE(B * T, 256)), y, NULL);
        vkg_backward(loss);
        vkg_clip_grad_norm(weights, nparams, 1.0f); /* an LSTM's gradients can spike */
        vkg_optim_step(opt);
        if (step % every == 0) printf("step %4d  loss %.3f nats/byte\n", step, vkg_item(loss));
        vkg_scope_end();
    }

    /* Sampling: feed the prompt, then one byte at a time, carrying the state (h, c) along. */
    const char *prompt = "The ";
    int len = test_mode ? 40 : 300;
    uint64_t rng = 42;
    vkg_no_grad_begin();
    vkg_tensor *h = NULL, *c = NULL;
    int32_t next = 0;
    printf("sample (temperature 0.8): %s", prompt);
    for (int i = 0; i < (int)strlen(prompt) + len - 1; i++) {
        vkg_scope_begin();
        int32_t byte = i < (int)strlen(prompt) ? (unsigned char)prompt[i] : next;
        vkg_tensor *hn, *cn;
        vkg_tensor *logits = forward(&m, vkg_from_data_dtype(VKG_SHAPE(1, 1), VKG_I32, &byte), h, c, &hn, &cn);
        float l[256];
        vkg_tensor_read(logits, l, sizeof l);
        vkg_free(h);
        vkg_free(c);
        h = vkg_keep(hn); /* the state outlives this step's scope */
        c = vkg_keep(cn);
        vkg_scope_end();
        if (i >= (int)strlen(prompt) - 1) {
            next = sample_byte(l, 0.8f, &rng);
            putchar(next >= 32 && next < 127 ? next : (next == '\n' ? '\n' : '?'));
        }
    }
    vkg_no_grad_end();
    printf("\nsampled %d bytes\n", len);

    vkg_free(h);
    vkg_free(c);
    vkg_optim_free(opt);
    vkg_module_free(params);
    vkg_text_free(&text);
    vkg_shutdown();
    return 0;
}
