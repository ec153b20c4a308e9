/* The four reference models behind one handle: construction from a kind and a configuration,
 * forward, the training loss, and byte sampling for the language models. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"
#include "text.h"

struct vkg_model {
    vkg_model_kind kind;
    vkg_module *module;
    void *impl;
    int64_t context, outputs;
};

static const char *const kind_names[VKG_MODEL_COUNT] = { "mlp", "cnn", "lstm", "gpt" };

const char *vkg_model_kind_name(vkg_model_kind kind) {
    return (unsigned)kind < VKG_MODEL_COUNT ? kind_names[kind] : "?";
}

int vkg_model_kind_parse(const char *name) {
    for (int i = 0; name && i < VKG_MODEL_COUNT; i++)
        if (!strcmp(name, kind_names[i])) return i;
    if (name && (!strcmp(name, "transformer") || !strcmp(name, "tiny-gpt"))) return VKG_MODEL_GPT;
    return -1;
}

vkg_model *vkg_model_new(vkg_model_kind kind, const void *config, uint64_t seed) {
    if ((unsigned)kind >= VKG_MODEL_COUNT) return NULL;
    vkg_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->kind = kind;
    m->module = vkg_module_new(&(vkg_module_desc){ .seed = seed });
    if (!m->module) {
        free(m);
        return NULL;
    }
    switch (kind) {
    case VKG_MODEL_MLP: m->impl = vkg_mlp_model_new(m->module, config); break;
    case VKG_MODEL_CNN: m->impl = vkg_cnn_model_new(m->module, config); break;
    case VKG_MODEL_LSTM: {
        vkg_lstm_config c = config ? *(const vkg_lstm_config *)config : vkg_lstm_config_default(false);
        m->impl = vkg_lstm_model_new(m->module, &c);
        m->context = c.context ? c.context : 64;
        m->outputs = c.vocab ? c.vocab : 256;
        break;
    }
    case VKG_MODEL_GPT: {
        vkg_gpt_config c = config ? *(const vkg_gpt_config *)config : vkg_gpt_config_default(false);
        m->impl = vkg_gpt_model_new(m->module, &c);
        m->context = c.context ? c.context : 64;
        m->outputs = c.vocab ? c.vocab : 256;
        break;
    }
    default: break;
    }
    if (kind == VKG_MODEL_MLP || kind == VKG_MODEL_CNN) {
        int64_t classes = kind == VKG_MODEL_MLP ? (config ? ((const vkg_mlp_config *)config)->classes : 0)
                                                : (config ? ((const vkg_cnn_config *)config)->classes : 0);
        m->outputs = classes ? classes : 10;
    }
    if (!m->impl) {
        vkg_model_free(m);
        return NULL;
    }
    return m;
}

void vkg_model_free(vkg_model *m) {
    if (!m) return;
    free(m->impl);   /* the model structs hold layer pointers only; the module owns the layers */
    vkg_module_free(m->module);
    free(m);
}

vkg_model_kind vkg_model_get_kind(const vkg_model *m) { return m->kind; }
vkg_module *vkg_model_module(const vkg_model *m) { return m ? m->module : NULL; }
bool vkg_model_is_lm(const vkg_model *m) { return m && (m->kind == VKG_MODEL_LSTM || m->kind == VKG_MODEL_GPT); }
int64_t vkg_model_context(const vkg_model *m) { return m ? m->context : 0; }
int64_t vkg_model_outputs(const vkg_model *m) { return m ? m->outputs : 0; }
vkg_mlp_model *vkg_model_mlp(const vkg_model *m) { return m && m->kind == VKG_MODEL_MLP ? m->impl : NULL; }
vkg_cnn_model *vkg_model_cnn(const vkg_model *m) { return m && m->kind == VKG_MODEL_CNN ? m->impl : NULL; }
vkg_lstm_model *vkg_model_lstm(const vkg_model *m) { return m && m->kind == VKG_MODEL_LSTM ? m->impl : NULL; }
vkg_gpt_model *vkg_model_gpt(const vkg_model *m) { return m && m->kind == VKG_MODEL_GPT ? m->impl : NULL; }

vkg_tensor *vkg_model_forward(vkg_model *m, vkg_tensor *x) {
    if (!m || !x) return NULL;
    switch (m->kind) {
    case VKG_MODEL_MLP: return vkg_mlp_model_forward(m->impl, x);
    case VKG_MODEL_CNN: return vkg_cnn_model_forward(m->impl, x);
    case VKG_MODEL_LSTM: return vkg_lstm_model_forward(m->impl, x, NULL, NULL, NULL, NULL);
    case VKG_MODEL_GPT: return vkg_gpt_model_forward(m->impl, x);
    default: return NULL;
    }
}

vkg_tensor *vkg_model_loss(vkg_model *m, vkg_tensor *x, vkg_tensor *y) {
    vkg_tensor *logits = vkg_model_forward(m, x);
    if (!logits || !y) return NULL;
    if (vkg_model_is_lm(m)) {   /* (B, T, V) against (B, T): one row per position */
        logits = vkg_reshape(logits, VKG_SHAPE(-1, m->outputs));
        y = vkg_reshape(y, VKG_SHAPE(-1));
    }
    return vkg_cross_entropy(logits, y, NULL);
}

/* ---- sampling --------------------------------------------------------------------------------- */
/* The next byte from one row of logits: greedy, or a draw from softmax(logits / temperature)
 * restricted to the top_k largest, with u in [0, 1) from the counter-based generator. */
static int pick(const float *logits, int V, float temperature, int top_k, uint64_t seed, uint64_t i) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature < 0.0f) return best;
    double p[512];
    int k = top_k > 0 && top_k < V ? top_k : V;
    /* the k-th largest value: a threshold (ties at it are all kept, as a stable choice) */
    float thr = -INFINITY;
    if (k < V) {
        float tmp[512];
        memcpy(tmp, logits, (size_t)V * sizeof *tmp);
        for (int j = 0; j < k; j++) {   /* partial selection: V is small */
            int mi = j;
            for (int v = j + 1; v < V; v++)
                if (tmp[v] > tmp[mi]) mi = v;
            float t = tmp[j];
            tmp[j] = tmp[mi];
            tmp[mi] = t;
        }
        thr = tmp[k - 1];
    }
    double sum = 0.0, mx = logits[best];
    for (int v = 0; v < V; v++) {
        p[v] = logits[v] >= thr ? exp(((double)logits[v] - mx) / temperature) : 0.0;
        sum += p[v];
    }
    double u = (double)(vkg_text_random(seed, i) >> 11) / 9007199254740992.0 * sum;
    for (int v = 0; v < V; v++) {
        if (u < p[v]) return v;
        u -= p[v];
    }
    return best;
}

vkg_status vkg_model_sample(vkg_model *m, const vkg_sample_desc *desc, char *out, size_t out_size) {
    if (!vkg_model_is_lm(m) || !out || out_size < 2 || m->outputs > 512) return VKG_ERR_INVALID;
    vkg_sample_desc d = desc ? *desc : (vkg_sample_desc){ 0 };
    const char *prompt = d.prompt && d.prompt[0] ? d.prompt : "\n";
    int length = d.length > 0 ? d.length : 200;
    float temperature = d.temperature != 0.0f ? d.temperature : 1.0f;
    size_t n = strlen(prompt);
    if (n >= out_size) n = out_size - 1;
    memcpy(out, prompt, n);
    out[n] = 0;
    int V = (int)m->outputs;
    float logits[512];
    vkg_status st = VKG_OK;
    vkg_no_grad_begin();
    vkg_tensor *h = NULL, *c = NULL;   /* LSTM state, kept between bytes (outside the scopes) */
    size_t fed = 0;                     /* LSTM: bytes of out already run through the model */
    for (int i = 0; i < length && n + 1 < out_size && st == VKG_OK; i++) {
        vkg_scope_begin();
        int64_t T;
        const char *start;
        if (m->kind == VKG_MODEL_LSTM) {   /* feed what the state has not seen yet */
            T = (int64_t)(n - fed);
            start = out + fed;
        } else {                            /* the last `context` bytes */
            T = (int64_t)n < m->context ? (int64_t)n : m->context;
            start = out + n - T;
        }
        int32_t *idx = malloc((size_t)T * sizeof *idx);
        if (!idx) {
            vkg_scope_end();
            st = VKG_ERR_OUT_OF_MEMORY;
            break;
        }
        for (int64_t t = 0; t < T; t++) idx[t] = (uint8_t)start[t];
        vkg_tensor *x = vkg_from_data_dtype(VKG_SHAPE(1, T), VKG_I32, idx);
        free(idx);
        vkg_tensor *y;
        if (m->kind == VKG_MODEL_LSTM) {
            vkg_tensor *h1 = NULL, *c1 = NULL;
            y = vkg_lstm_model_forward(m->impl, x, h, c, &h1, &c1);
            if (y) {
                if (h) vkg_free(h);
                if (c) vkg_free(c);
                h = vkg_keep(vkg_contiguous(h1));
                c = vkg_keep(vkg_contiguous(c1));
                fed = n;
            }
        } else {
            y = vkg_gpt_model_forward(m->impl, x);
        }
        vkg_tensor *last = y ? vkg_contiguous(vkg_narrow(vkg_reshape(y, VKG_SHAPE(T, V)), 0, T - 1, 1)) : NULL;
        st = last ? vkg_tensor_read(last, logits, (size_t)V * sizeof *logits) : vkg_last_status();
        vkg_scope_end();
        if (st != VKG_OK) break;
        out[n++] = (char)pick(logits, V, temperature, d.top_k, d.seed, (uint64_t)i);
        out[n] = 0;
    }
    if (h) vkg_free(h);
    if (c) vkg_free(c);
    vkg_no_grad_end();
    return st;
}
