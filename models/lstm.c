/* LSTM character model on bytes: Embedding(256, 64), one LSTM layer of 256 units (batch first),
 * Linear(256, 256) to next-byte logits; PyTorch's nn.Embedding, nn.LSTM and nn.Linear names
 * ("embed.weight", "lstm.weight_ih_l0", "head.weight") and default initialisation. */
#include <stdlib.h>

#include "models.h"

struct vkg_lstm_model {
    vkg_lstm_config cfg;
    vkg_embedding_layer *embed;
    vkg_lstm_layer *lstm;
    vkg_linear *head;
};

vkg_lstm_config vkg_lstm_config_default(bool test) {
    if (test) return (vkg_lstm_config){ .vocab = 256, .embed = 8, .hidden = 16, .context = 8 };
    return (vkg_lstm_config){ .vocab = 256, .embed = 64, .hidden = 256, .context = 64 };
}

vkg_lstm_model *vkg_lstm_model_new(vkg_module *module, const vkg_lstm_config *cfg) {
    vkg_lstm_config d = vkg_lstm_config_default(false), c = cfg ? *cfg : d;
    if (!c.vocab) c.vocab = d.vocab;
    if (!c.embed) c.embed = d.embed;
    if (!c.hidden) c.hidden = d.hidden;
    if (!c.context) c.context = d.context;
    vkg_lstm_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = c;
    m->embed = vkg_embedding_new(module, "embed", &(vkg_embedding_desc){ .num = c.vocab, .dim = c.embed });
    m->lstm = vkg_lstm_new(module, "lstm", &(vkg_lstm_desc){ .input = c.embed, .hidden = c.hidden });
    m->head = vkg_linear_new(module, "head", &(vkg_linear_desc){ .in = c.hidden, .out = c.vocab });
    if (!m->embed || !m->lstm || !m->head) {
        free(m);
        return NULL;
    }
    return m;
}

/* x (B, T) i32 -> logits (B, T, vocab) */
vkg_tensor *vkg_lstm_model_forward(const vkg_lstm_model *m, vkg_tensor *x, vkg_tensor *h0, vkg_tensor *c0,
                                   vkg_tensor **h_n, vkg_tensor **c_n) {
    if (!x) return NULL;
    vkg_tensor *e = vkg_embedding_forward(m->embed, x);                  // (B, T, embed)
    vkg_tensor *out = NULL;                                               // (B, T, hidden)
    if (!e || vkg_lstm_forward(m->lstm, e, h0, c0, &out, h_n, c_n) != VKG_OK) return NULL;
    return vkg_linear_forward(m->head, out);                              // (B, T, vocab)
}
