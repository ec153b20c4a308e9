/* Checkpoints (vkgrad/checkpoint.h): device tensors read back and written through the
 * safetensors writer (atomic: temp file, fsync, rename), the training position as metadata
 * strings; loading checks the whole list against the file before it writes any tensor. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "vkgrad/checkpoint.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

#define MAX_LISTED 4   /* names listed in a message about missing or unexpected tensors */

static const struct {
    const char *key;
    size_t off;
    bool is_signed;
} POSITION_KEYS[] = {
    { "vkgrad.step", offsetof(vkg_checkpoint_position, step), true },
    { "vkgrad.epoch", offsetof(vkg_checkpoint_position, epoch), true },
    { "vkgrad.batch", offsetof(vkg_checkpoint_position, batch), true },
    { "vkgrad.seed", offsetof(vkg_checkpoint_position, seed), false },
    { "vkgrad.rng_offset", offsetof(vkg_checkpoint_position, rng_offset), false },
};
#define NPOS ((int)(sizeof POSITION_KEYS / sizeof POSITION_KEYS[0]))

static bool dtype_to_st(vkg_dtype dt, vkg_st_dtype *out) {
    switch (dt) {
    case VKG_F32: *out = VKG_ST_F32; return true;
    case VKG_I32: *out = VKG_ST_I32; return true;
    case VKG_U8: *out = VKG_ST_U8; return true;
    case VKG_F16: *out = VKG_ST_F16; return true;
    default: return false;
    }
}

/* The list itself: names present, unique and not reserved, tensors not NULL. */
static vkg_status check_list(const char *who, const char *path, const vkg_named_tensor *ts, int count) {
    if (count < 0 || (count > 0 && !ts))
        return vkg_fail(VKG_ERR_INVALID, "%s: %s: %d tensors at %p", who, path, count, (const void *)ts);
    for (int i = 0; i < count; i++) {
        if (!ts[i].name || !ts[i].name[0] || strcmp(ts[i].name, "__metadata__") == 0)
            return vkg_fail(VKG_ERR_INVALID, "%s: %s: tensor %d has %s name", who, path, i,
                            ts[i].name && ts[i].name[0] ? "the reserved" : "no");
        if (!ts[i].tensor)
            return vkg_fail(VKG_ERR_INVALID, "%s: %s: tensor \"%s\" is NULL", who, path, ts[i].name);
        for (int j = 0; j < i; j++)
            if (strcmp(ts[i].name, ts[j].name) == 0)
                return vkg_fail(VKG_ERR_INVALID, "%s: %s: the name \"%s\" is given twice (tensors %d and %d)", who,
                                path, ts[i].name, j, i);
    }
    return VKG_OK;
}

vkg_status vkg_checkpoint_save(const char *path, const vkg_named_tensor *tensors, int count,
                               const vkg_checkpoint_desc *desc) {
    static const char *const WHO = "vkg_checkpoint_save";
    vkg_checkpoint_desc d = desc ? *desc : (vkg_checkpoint_desc){ 0 };
    if (!path || !path[0]) return vkg_fail(VKG_ERR_INVALID, "%s: no path", WHO);
    vkg_status st = check_list(WHO, path, tensors, count);
    if (st != VKG_OK) return st;
    if (d.metadata_count < 0 || (d.metadata_count > 0 && !d.metadata) || d.int_count < 0 ||
        (d.int_count > 0 && (!d.int_keys || !d.int_values)))
        return vkg_fail(VKG_ERR_INVALID, "%s: %s: bad metadata lists", WHO, path);
    for (int i = 0; i < 2 * d.metadata_count; i++)
        if (!d.metadata[i]) return vkg_fail(VKG_ERR_INVALID, "%s: %s: metadata string %d is NULL", WHO, path, i);
    for (int i = 0; i < d.int_count; i++)
        if (!d.int_keys[i]) return vkg_fail(VKG_ERR_INVALID, "%s: %s: integer key %d is NULL", WHO, path, i);

    vkg_st_tensor *st_ts = calloc((size_t)(count ? count : 1), sizeof *st_ts);
    int nmeta = NPOS + d.int_count + d.metadata_count + 1;
    const char **kv = calloc((size_t)nmeta * 2, sizeof *kv);
    char (*num)[24] = calloc((size_t)(NPOS + d.int_count), sizeof *num);
    if (!st_ts || !kv || !num) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: %s: out of host memory", WHO, path);
        goto done;
    }
    for (int i = 0; i < count; i++) {
        const vkg_tensor *t = tensors[i].tensor;
        vkg_st_tensor *s = &st_ts[i];
        if (!dtype_to_st(vkg_tensor_dtype(t), &s->dtype)) {
            st = vkg_fail(VKG_ERR_INVALID, "%s: %s: tensor \"%s\" has dtype %s, which has no safetensors dtype", WHO,
                          path, tensors[i].name, vkg_dtype_name(vkg_tensor_dtype(t)));
            goto done;
        }
        vkg_shape sh = vkg_tensor_shape(t);
        s->name = tensors[i].name;
        s->ndim = sh.ndim;
        for (int k = 0; k < sh.ndim; k++) s->shape[k] = sh.d[k];
        s->nbytes = (size_t)vkg_numel(t) * vkg_dtype_size(vkg_tensor_dtype(t));
        void *buf = malloc(s->nbytes ? s->nbytes : 1);
        if (!buf) {
            st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: %s: out of host memory for \"%s\" (%zu bytes)", WHO, path,
                          s->name, s->nbytes);
            goto done;
        }
        s->data = buf;
        if ((st = vkg_tensor_read(t, buf, s->nbytes)) != VKG_OK) goto done;
    }

    int m = 0;
    bool has_format = false;
    for (int i = 0; i < d.metadata_count; i++) has_format |= strcmp(d.metadata[2 * i], "format") == 0;
    if (!has_format) {
        kv[2 * m] = "format";
        kv[2 * m + 1] = "pt";
        m++;
    }
    for (int i = 0; i < NPOS; i++) {
        const char *p = (const char *)&d.position + POSITION_KEYS[i].off;
        if (POSITION_KEYS[i].is_signed) snprintf(num[i], sizeof num[i], "%" PRId64, *(const int64_t *)(const void *)p);
        else snprintf(num[i], sizeof num[i], "%" PRIu64, *(const uint64_t *)(const void *)p);
        kv[2 * m] = POSITION_KEYS[i].key;
        kv[2 * m + 1] = num[i];
        m++;
    }
    for (int i = 0; i < d.int_count; i++) {
        snprintf(num[NPOS + i], sizeof num[0], "%" PRId64, d.int_values[i]);
        kv[2 * m] = d.int_keys[i];
        kv[2 * m + 1] = num[NPOS + i];
        m++;
    }
    for (int i = 0; i < d.metadata_count; i++) {
        kv[2 * m] = d.metadata[2 * i];
        kv[2 * m + 1] = d.metadata[2 * i + 1];
        m++;
    }
    st = vkg_safetensors_write(path, st_ts, count, kv, m);
done:
    if (st_ts)
        for (int i = 0; i < count; i++) free((void *)st_ts[i].data);
    free(st_ts);
    free(kv);
    free(num);
    return st;
}

/* Parses a whole decimal integer; false on anything else (sign only where allowed). */
static bool parse_int(const char *s, bool is_signed, int64_t *si, uint64_t *ui) {
    if (!s || !*s || (*s == '-' && !is_signed) || *s == '+' || *s == ' ') return false;
    char *end;
    errno = 0;
    if (is_signed) *si = strtoll(s, &end, 10);
    else *ui = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' && end != s;
}

vkg_status vkg_checkpoint_open(const char *path, vkg_checkpoint *ck) {
    if (!ck) return vkg_fail(VKG_ERR_INVALID, "vkg_checkpoint_open: checkpoint is NULL");
    memset(ck, 0, sizeof *ck);
    if (!path || !path[0]) return vkg_fail(VKG_ERR_INVALID, "vkg_checkpoint_open: no path");
    vkg_status st = vkg_safetensors_read(path, &ck->file);
    if (st != VKG_OK) return st;
    snprintf(ck->path, sizeof ck->path, "%s", path);
    for (int i = 0; i < NPOS; i++) {
        const char *v = vkg_safetensors_metadata(&ck->file, POSITION_KEYS[i].key);
        if (!v) continue;
        char *p = (char *)&ck->position + POSITION_KEYS[i].off;
        int64_t si = 0;
        uint64_t ui = 0;
        if (!parse_int(v, POSITION_KEYS[i].is_signed, &si, &ui)) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\", not a%s integer", path, POSITION_KEYS[i].key,
                          v, POSITION_KEYS[i].is_signed ? "n" : " non-negative");
            vkg_checkpoint_close(ck);
            return st;
        }
        if (POSITION_KEYS[i].is_signed) memcpy(p, &si, sizeof si);
        else memcpy(p, &ui, sizeof ui);
    }
    return VKG_OK;
}

void vkg_checkpoint_close(vkg_checkpoint *ck) {
    if (!ck) return;
    vkg_safetensors_free(&ck->file);
    memset(ck, 0, sizeof *ck);
}

const char *vkg_checkpoint_get(const vkg_checkpoint *ck, const char *key) {
    return ck && key ? vkg_safetensors_metadata(&ck->file, key) : NULL;
}

vkg_status vkg_checkpoint_get_int(const vkg_checkpoint *ck, const char *key, int64_t *out) {
    if (!ck || !key || !out) return vkg_fail(VKG_ERR_INVALID, "vkg_checkpoint_get_int: NULL argument");
    const char *v = vkg_checkpoint_get(ck, key);
    if (!v) return vkg_fail(VKG_ERR_FORMAT, "%s: no metadata \"%s\"", ck->path, key);
    uint64_t unused;
    if (!parse_int(v, true, out, &unused))
        return vkg_fail(VKG_ERR_FORMAT, "%s: metadata \"%s\" is \"%s\", not an integer", ck->path, key, v);
    return VKG_OK;
}

/* Appends ", name" (or "name") to a list of at most MAX_LISTED names, then "...". */
static void list_name(char *buf, size_t size, int *n, const char *name) {
    size_t k = strlen(buf);
    if (*n < MAX_LISTED) snprintf(buf + k, size - k, "%s\"%s\"", *n ? ", " : "", name);
    else if (*n == MAX_LISTED) snprintf(buf + k, size - k, ", ...");
    (*n)++;
}

vkg_status vkg_checkpoint_restore(const vkg_checkpoint *ck, const vkg_named_tensor *tensors, int count,
                                  const vkg_checkpoint_load_desc *desc) {
    static const char *const WHO = "vkg_checkpoint_load";
    if (!ck) return vkg_fail(VKG_ERR_INVALID, "%s: checkpoint is NULL", WHO);
    vkg_checkpoint_load_desc d = desc ? *desc : (vkg_checkpoint_load_desc){ 0 };
    const char *path = ck->path;
    vkg_status st = check_list(WHO, path, tensors, count);
    if (st != VKG_OK) return st;
    char names[512] = "";
    int nmissing = 0, nunexpected = 0;
    /* missing, then for those present: dtype, shape, contiguity */
    for (int i = 0; i < count; i++) {
        const vkg_st_tensor *f = vkg_safetensors_find(&ck->file, tensors[i].name);
        if (!f) {
            if (!d.allow_missing) list_name(names, sizeof names, &nmissing, tensors[i].name);
            continue;
        }
        const vkg_tensor *t = tensors[i].tensor;
        vkg_st_dtype want;
        vkg_dtype dt = vkg_tensor_dtype(t);
        if (!dtype_to_st(dt, &want))
            return vkg_fail(VKG_ERR_INVALID, "%s: %s: tensor \"%s\" has dtype %s, which has no safetensors dtype", WHO,
                            path, tensors[i].name, vkg_dtype_name(dt));
        if (f->dtype != want)
            return vkg_fail(VKG_ERR_FORMAT, "%s: %s: tensor \"%s\" is %s in the file but %s (%s) in the list", WHO,
                            path, tensors[i].name, vkg_st_dtype_name(f->dtype), vkg_dtype_name(dt),
                            vkg_st_dtype_name(want));
        vkg_shape sh = vkg_tensor_shape(t), fs = { .ndim = f->ndim };
        bool same = sh.ndim == f->ndim;
        for (int k = 0; k < f->ndim; k++) {
            fs.d[k] = f->shape[k];
            if (same && sh.d[k] != f->shape[k]) same = false;
        }
        if (!same) {
            char a[160], b[160];
            return vkg_fail(VKG_ERR_FORMAT, "%s: %s: tensor \"%s\" has shape %s in the file but %s in the list", WHO,
                            path, tensors[i].name, vkg_shape_str(fs, a, sizeof a), vkg_shape_str(sh, b, sizeof b));
        }
        if (!vkg_is_contiguous(t))
            return vkg_fail(VKG_ERR_INVALID, "%s: %s: tensor \"%s\" is a non-contiguous view; load into a contiguous "
                            "tensor", WHO, path, tensors[i].name);
    }
    if (nmissing)
        return vkg_fail(VKG_ERR_FORMAT, "%s: %s: %d tensor%s of the list %s missing from the file: %s", WHO, path,
                        nmissing, nmissing == 1 ? "" : "s", nmissing == 1 ? "is" : "are", names);
    if (!d.allow_unexpected) {
        for (int j = 0; j < ck->file.count; j++) {
            bool found = false;
            for (int i = 0; i < count && !found; i++) found = strcmp(ck->file.tensors[j].name, tensors[i].name) == 0;
            if (!found) list_name(names, sizeof names, &nunexpected, ck->file.tensors[j].name);
        }
        if (nunexpected)
            return vkg_fail(VKG_ERR_FORMAT, "%s: %s: %d tensor%s of the file %s not in the list (unexpected): %s", WHO,
                            path, nunexpected, nunexpected == 1 ? "" : "s", nunexpected == 1 ? "is" : "are", names);
    }
    /* everything matches: write */
    for (int i = 0; i < count; i++) {
        const vkg_st_tensor *f = vkg_safetensors_find(&ck->file, tensors[i].name);
        if (!f) continue;
        if ((st = vkg_tensor_write(tensors[i].tensor, f->data, f->nbytes)) != VKG_OK) return st;
    }
    return VKG_OK;
}

vkg_status vkg_checkpoint_load(const char *path, const vkg_named_tensor *tensors, int count,
                               const vkg_checkpoint_load_desc *desc, vkg_checkpoint_position *position) {
    vkg_checkpoint ck;
    vkg_status st = vkg_checkpoint_open(path, &ck);
    if (st != VKG_OK) return st;
    st = vkg_checkpoint_restore(&ck, tensors, count, desc);
    if (st == VKG_OK && position) *position = ck.position;
    vkg_checkpoint_close(&ck);
    return st;
}

/* ---- modules and optimizers ----------------------------------------------------------------- */
typedef struct named_list {
    vkg_named_tensor *items;
    char **owned;             /* names made here ("optim.<p>.<s>"), freed with the list */
    int count, cap;
    const char **int_keys;    /* "optim.<p>.step" (owned) and the step counts */
    int64_t *int_values;
    int int_count;
} named_list;

static void list_free(named_list *l) {
    for (int i = 0; i < l->count; i++) free(l->owned[i]);
    for (int i = 0; i < l->int_count; i++) free((void *)l->int_keys[i]);
    free(l->owned);
    free(l->items);
    free(l->int_keys);
    free(l->int_values);
    memset(l, 0, sizeof *l);
}

static bool list_push(named_list *l, const char *name, char *owned, vkg_tensor *t) {
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        vkg_named_tensor *ni = realloc(l->items, (size_t)cap * sizeof *ni);
        if (ni) l->items = ni;
        char **no = realloc(l->owned, (size_t)cap * sizeof *no);
        if (no) l->owned = no;
        if (!ni || !no) return false;
        l->cap = cap;
    }
    l->items[l->count] = (vkg_named_tensor){ name, t };
    l->owned[l->count] = owned;
    l->count++;
    return true;
}

static char *joined(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* The state tensors an optimizer keeps per parameter, by its kind and options (optim.h). */
static int optim_state_names(const vkg_optim *opt, const char *names[3]) {
    vkg_optim_desc d = vkg_optim_get_desc(opt);
    int n = 0;
    switch (d.kind) {
    case VKG_OPTIM_SGD:
        if (d.momentum != 0.0) names[n++] = "momentum_buffer";
        break;
    case VKG_OPTIM_ADAM:
    case VKG_OPTIM_ADAMW:
        names[n++] = "exp_avg";
        names[n++] = "exp_avg_sq";
        if (d.amsgrad) names[n++] = "max_exp_avg_sq";
        break;
    case VKG_OPTIM_RMSPROP:
        names[n++] = "square_avg";
        if (d.momentum > 0.0) names[n++] = "momentum_buffer";
        if (d.centered) names[n++] = "grad_avg";
        break;
    }
    return n;
}

static vkg_status build_list(const char *who, const char *path, const vkg_module *m, const vkg_optim *opt,
                             named_list *l, bool with_steps) {
    memset(l, 0, sizeof *l);
    if (!m) return vkg_fail(VKG_ERR_INVALID, "%s: %s: module is NULL", who, path);
    const char *const *names;
    vkg_tensor *const *ts;
    int n = vkg_module_params(m, &names, &ts);
    for (int i = 0; i < n; i++)
        if (!list_push(l, names[i], NULL, ts[i])) goto oom;
    n = vkg_module_buffers(m, &names, &ts);
    for (int i = 0; i < n; i++)
        if (!list_push(l, names[i], NULL, ts[i])) goto oom;
    if (!opt) return VKG_OK;
    const char *states[3];
    int ns = optim_state_names(opt, states), np = vkg_optim_param_count(opt);
    l->int_keys = calloc((size_t)(np ? np : 1), sizeof *l->int_keys);
    l->int_values = calloc((size_t)(np ? np : 1), sizeof *l->int_values);
    if (!l->int_keys || !l->int_values) goto oom;
    for (int i = 0; i < np; i++) {
        const char *p = vkg_optim_param_name(opt, i);
        for (int k = 0; k < ns; k++) {
            vkg_tensor *t = vkg_optim_state(opt, p, states[k]);
            if (!t) {
                list_free(l);
                return vkg_last_status();
            }
            char *name = joined("optim.", p, "");
            char *full = name ? joined(name, ".", states[k]) : NULL;
            free(name);
            if (!full || !list_push(l, full, full, t)) {
                free(full);
                goto oom;
            }
        }
        if (with_steps) {
            char *key = joined("optim.", p, ".step");
            if (!key) goto oom;
            l->int_keys[l->int_count] = key;
            l->int_values[l->int_count] = vkg_optim_step_count(opt, p);
            l->int_count++;
        }
    }
    return VKG_OK;
oom:
    list_free(l);
    return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: %s: out of host memory", who, path);
}

vkg_status vkg_checkpoint_save_module(const char *path, const vkg_module *m, const vkg_optim *opt,
                                      const vkg_checkpoint_desc *desc) {
    static const char *const WHO = "vkg_checkpoint_save_module";
    named_list l;
    vkg_status st = build_list(WHO, path ? path : "(no path)", m, opt, &l, true);
    if (st != VKG_OK) return st;
    vkg_checkpoint_desc d = desc ? *desc : (vkg_checkpoint_desc){ 0 };
    int ni = d.int_count + l.int_count;
    const char **keys = calloc((size_t)(ni ? ni : 1), sizeof *keys);
    int64_t *vals = calloc((size_t)(ni ? ni : 1), sizeof *vals);
    if (!keys || !vals || d.int_count < 0 || (d.int_count > 0 && (!d.int_keys || !d.int_values))) {
        st = !keys || !vals ? vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", WHO)
                            : vkg_fail(VKG_ERR_INVALID, "%s: bad integer list", WHO);
    } else {
        for (int i = 0; i < d.int_count; i++) {
            keys[i] = d.int_keys[i];
            vals[i] = d.int_values[i];
        }
        for (int i = 0; i < l.int_count; i++) {
            keys[d.int_count + i] = l.int_keys[i];
            vals[d.int_count + i] = l.int_values[i];
        }
        d.int_keys = keys;
        d.int_values = vals;
        d.int_count = ni;
        st = vkg_checkpoint_save(path, l.items, l.count, &d);
    }
    free(keys);
    free(vals);
    list_free(&l);
    return st;
}

vkg_status vkg_checkpoint_load_module(const char *path, vkg_module *m, vkg_optim *opt,
                                      const vkg_checkpoint_load_desc *desc, vkg_checkpoint_position *position) {
    static const char *const WHO = "vkg_checkpoint_load_module";
    named_list l;
    vkg_status st = build_list(WHO, path ? path : "(no path)", m, opt, &l, false);
    if (st != VKG_OK) return st;
    vkg_checkpoint ck;
    st = vkg_checkpoint_open(path, &ck);
    if (st != VKG_OK) {
        list_free(&l);
        return st;
    }
    /* the step counts first, so that a file without them is refused before any tensor is written */
    int np = opt ? vkg_optim_param_count(opt) : 0;
    int64_t *steps = calloc((size_t)(np ? np : 1), sizeof *steps);
    if (!steps) st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", WHO);
    for (int i = 0; i < np && st == VKG_OK; i++) {
        char *key = joined("optim.", vkg_optim_param_name(opt, i), ".step");
        if (!key) st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", WHO);
        else if (!vkg_checkpoint_get(&ck, key) && desc && desc->allow_missing) steps[i] = -1;
        else st = vkg_checkpoint_get_int(&ck, key, &steps[i]);
        free(key);
    }
    if (st == VKG_OK) st = vkg_checkpoint_restore(&ck, l.items, l.count, desc);
    for (int i = 0; i < np && st == VKG_OK; i++)
        if (steps[i] >= 0) st = vkg_optim_set_step_count(opt, vkg_optim_param_name(opt, i), steps[i]);
    if (st == VKG_OK && position) *position = ck.position;
    free(steps);
    vkg_checkpoint_close(&ck);
    list_free(&l);
    return st;
}
