/* Modules: named parameters and buffers kept outside every scope, the layers that own them, and
 * the seeded initialisers (one Philox seed per parameter, derived from its name). */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

typedef struct entries {
    char **names;
    vkg_tensor **t;
    int n, cap;
} entries;

struct vkg_module {
    uint64_t seed;
    bool training;
    bool amp;
    entries params, buffers;
    void **layers;
    int nlayers, caplayers;
};

vkg_module *vkg_module_new(const vkg_module_desc *desc) {
    vkg_module *m = calloc(1, sizeof *m);
    if (!m) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "vkg_module_new: out of host memory");
    m->seed = desc ? desc->seed : 0;
    m->training = true;
    return m;
}

static void entries_free(entries *e) {
    for (int i = 0; i < e->n; i++) {
        vkg_free(e->t[i]);
        free(e->names[i]);
    }
    free(e->names);
    free(e->t);
}

void vkg_module_free(vkg_module *m) {
    if (!m) return;
    entries_free(&m->params);
    entries_free(&m->buffers);
    for (int i = 0; i < m->nlayers; i++) free(m->layers[i]);
    free(m->layers);
    free(m);
}

void *vkg_module_alloc_layer(vkg_module *m, size_t size) {
    if (m->nlayers == m->caplayers) {
        int cap = m->caplayers ? 2 * m->caplayers : 8;
        void **nl = realloc(m->layers, (size_t)cap * sizeof *nl);
        if (!nl) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "vkg_module: out of host memory");
        m->layers = nl;
        m->caplayers = cap;
    }
    void *l = calloc(1, size);
    if (!l) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "vkg_module: out of host memory");
    m->layers[m->nlayers++] = l;
    return l;
}

static int entries_find(const entries *e, const char *name) {
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], name) == 0) return i;
    return -1;
}

vkg_tensor *vkg_module_get(const vkg_module *m, const char *name) {
    if (!m || !name) return NULL;
    int i = entries_find(&m->params, name);
    if (i >= 0) return m->params.t[i];
    i = entries_find(&m->buffers, name);
    return i >= 0 ? m->buffers.t[i] : NULL;
}

/* Moves t out of every scope: it lives until the module frees it. */
static void persist(vkg_tensor *t) {
    while (t->scope > 0) vkg_keep(t);
}

static vkg_tensor *add(vkg_module *m, entries *e, const char *name, vkg_tensor *t, bool param, const char *op) {
    if (!t) return NULL; /* the maker's message stands */
    if (!m || !name || !*name) return vkg_fail_null(VKG_ERR_INVALID, "%s: the module or name is NULL or empty", op);
    char b[192];
    if (t->dead || t->scope < 0)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: \"%s\" is a freed tensor or one owned by another", op, name);
    if (vkg_module_get(m, name)) return vkg_fail_null(VKG_ERR_INVALID, "%s: the module already has \"%s\"", op, name);
    if (param && (t->dtype != VKG_F32 || t->node || !vkg_is_contiguous(t)))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: \"%s\" is %s%s; a parameter is a contiguous f32 leaf", op, name,
                             vkg_desc(t, b, sizeof b), t->node ? " computed from other tensors" : "");
    if (e->n == e->cap) {
        int cap = e->cap ? 2 * e->cap : 16;
        char **nn = realloc(e->names, (size_t)cap * sizeof *nn);
        if (!nn) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
        e->names = nn;
        vkg_tensor **nt = realloc(e->t, (size_t)cap * sizeof *nt);
        if (!nt) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
        e->t = nt;
        e->cap = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = malloc(len);
    if (!copy) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
    memcpy(copy, name, len);
    if (param && !vkg_requires_grad(t, true)) {
        free(copy);
        return NULL;
    }
    persist(t);
    e->names[e->n] = copy;
    e->t[e->n++] = t;
    return t;
}

vkg_tensor *vkg_module_add_param(vkg_module *m, const char *name, vkg_tensor *t) {
    return add(m, m ? &m->params : NULL, name, t, true, "vkg_module_add_param");
}

vkg_tensor *vkg_module_add_buffer(vkg_module *m, const char *name, vkg_tensor *t) {
    return add(m, m ? &m->buffers : NULL, name, t, false, "vkg_module_add_buffer");
}

int vkg_module_params(const vkg_module *m, const char *const **names, vkg_tensor *const **tensors) {
    if (names) *names = m ? (const char *const *)m->params.names : NULL;
    if (tensors) *tensors = m ? m->params.t : NULL;
    return m ? m->params.n : 0;
}

int vkg_module_buffers(const vkg_module *m, const char *const **names, vkg_tensor *const **tensors) {
    if (names) *names = m ? (const char *const *)m->buffers.names : NULL;
    if (tensors) *tensors = m ? m->buffers.t : NULL;
    return m ? m->buffers.n : 0;
}

int64_t vkg_module_numel(const vkg_module *m) {
    int64_t n = 0;
    for (int i = 0; m && i < m->params.n; i++) n += vkg_numel(m->params.t[i]);
    return n;
}

void vkg_module_zero_grad(vkg_module *m) {
    for (int i = 0; m && i < m->params.n; i++) vkg_zero_grad(m->params.t[i]);
}

void vkg_module_train(vkg_module *m, bool training) {
    if (m) m->training = training;
}
bool vkg_module_training(const vkg_module *m) { return m && m->training; }

void vkg_module_amp(vkg_module *m, bool on) {
    if (m) m->amp = on;
}
bool vkg_module_amp_enabled(const vkg_module *m) { return m && m->amp; }

vkg_tensor *vkg_nn_matmul_weight(const vkg_module *m, vkg_tensor *w) {
    if (!w || !vkg_module_amp_enabled(m)) return w;
    return vkg_to_dtype(vkg_to_dtype(w, VKG_F16), VKG_F32);
}
uint64_t vkg_module_seed(const vkg_module *m) { return m ? m->seed : 0; }

static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t vkg_module_param_seed(const vkg_module *m, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */
    for (const unsigned char *c = (const unsigned char *)(name ? name : ""); *c; c++) h = (h ^ *c) * 0x100000001b3ull;
    return splitmix64(vkg_module_seed(m) ^ h);
}

const char *vkg_nn_name(char *buf, size_t size, const char *prefix, const char *leaf) {
    if (prefix && *prefix) snprintf(buf, size, "%s.%s", prefix, leaf);
    else snprintf(buf, size, "%s", leaf);
    return buf;
}

bool vkg_nn_check_new(vkg_module *m, const char *name, const void *desc, const char *op) {
    if (!m || !desc) {
        vkg_fail(VKG_ERR_INVALID, "%s: the module or the description is NULL", op);
        return false;
    }
    if (!name) {
        vkg_fail(VKG_ERR_INVALID, "%s: the name is NULL (use \"\" for a top-level layer)", op);
        return false;
    }
    return vkg_ready(op);
}

/* Runs make in a scope of its own with grad off, and adds the result to m. */
static vkg_tensor *made(vkg_module *m, const char *name, vkg_tensor *t, bool param) {
    if (t) vkg_keep(t);
    vkg_scope_end();
    vkg_no_grad_end();
    vkg_tensor *r = param ? vkg_module_add_param(m, name, t) : vkg_module_add_buffer(m, name, t);
    if (!r) vkg_free(t);
    return r;
}

vkg_tensor *vkg_nn_param_uniform(vkg_module *m, const char *name, vkg_shape shape, float bound) {
    vkg_no_grad_begin();
    vkg_scope_begin();
    vkg_tensor *u = vkg_rand(shape, &(vkg_rand_desc){ .seed = vkg_module_param_seed(m, name) });
    return made(m, name, vkg_add_scalar(vkg_mul_scalar(u, 2.0f * bound), -bound), true);
}

vkg_tensor *vkg_nn_param_normal(vkg_module *m, const char *name, vkg_shape shape, float mean, float std) {
    vkg_no_grad_begin();
    vkg_scope_begin();
    return made(m, name,
                vkg_randn(shape, &(vkg_rand_desc){ .seed = vkg_module_param_seed(m, name), .mean = mean, .std = std }),
                true);
}

vkg_tensor *vkg_nn_param_const(vkg_module *m, const char *name, vkg_shape shape, float value) {
    vkg_no_grad_begin();
    vkg_scope_begin();
    return made(m, name, vkg_full(shape, value), true);
}

vkg_tensor *vkg_nn_buffer_const(vkg_module *m, const char *name, vkg_shape shape, float value) {
    vkg_no_grad_begin();
    vkg_scope_begin();
    return made(m, name, vkg_full(shape, value), false);
}
