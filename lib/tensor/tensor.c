/* Tensors: shape, strides and offset over a shared, reference-counted storage; creation, read
 * back and write; and the scopes that own them (every tensor belongs to the scope that was
 * innermost when it was made, until vkg_keep moves it out or vkg_free frees it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "vkgrad/reference.h"

/* ---- shapes --------------------------------------------------------------------------------- */
size_t vkg_dtype_size(vkg_dtype dt) { return dt == VKG_U8 ? 1 : dt == VKG_F16 ? 2 : 4; }

const char *vkg_dtype_name(vkg_dtype dt) {
    switch (dt) {
    case VKG_F32: return "f32";
    case VKG_I32: return "i32";
    case VKG_U8: return "u8";
    case VKG_F16: return "f16";
    default: return "?";
    }
}

int64_t vkg_shape_numel(vkg_shape s) {
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) n *= s.d[i];
    return n;
}

const char *vkg_shape_str(vkg_shape s, char *buf, size_t size) {
    size_t k = 0;
    k += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s.ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)s.d[i]);
    if (k < size) snprintf(buf + k, size - k, s.ndim == 1 ? ",)" : ")");
    return buf;
}

bool vkg_shape_check(vkg_shape s, const char *op) {
    if (s.ndim < 0 || s.ndim > VKG_MAX_DIMS) {
        vkg_fail(VKG_ERR_INVALID, "%s: %d dimensions; a tensor has 0 to %d", op, s.ndim, VKG_MAX_DIMS);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++) {
        if (s.d[i] < 0) {
            char b[160];
            vkg_fail(VKG_ERR_INVALID, "%s: shape %s has a negative size at dim %d", op, vkg_shape_str(s, b, sizeof b), i);
            return false;
        }
        if (s.d[i] && n > INT64_MAX / s.d[i]) {
            vkg_fail(VKG_ERR_TOO_LARGE, "%s: the element count of that shape overflows", op);
            return false;
        }
        n *= s.d[i];
    }
    return true;
}

static void contiguous_strides(vkg_shape s, int64_t *strides) {
    int64_t st = 1;
    for (int i = s.ndim - 1; i >= 0; i--) {
        strides[i] = st;
        st *= s.d[i] ? s.d[i] : 1;
    }
}

/* ---- scopes --------------------------------------------------------------------------------- */
static bool scopes_reserve(int depth) {
    if (depth < vkg_ctx.capscopes) return true;
    int cap = vkg_ctx.capscopes ? 2 * vkg_ctx.capscopes : 16;
    while (cap <= depth) cap *= 2;
    vkg_tensor **nh = realloc(vkg_ctx.scope_heads, (size_t)cap * sizeof *nh);
    if (!nh) return false;
    for (int i = vkg_ctx.capscopes; i < cap; i++) nh[i] = NULL;
    vkg_ctx.scope_heads = nh;
    vkg_ctx.capscopes = cap;
    return true;
}

static void unlink_tensor(vkg_tensor *t) {
    if (t->scope < 0) return; /* owned by another tensor (a gradient), in no scope list */
    if (t->prev) t->prev->next = t->next;
    else if (vkg_ctx.scope_heads) vkg_ctx.scope_heads[t->scope] = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void link_tensor(vkg_tensor *t, int level) {
    t->scope = level;
    t->prev = NULL;
    t->next = vkg_ctx.scope_heads[level];
    if (t->next) t->next->prev = t;
    vkg_ctx.scope_heads[level] = t;
}

void vkg_scope_begin(void) {
    if (!vkg_ctx.initialized) return;
    if (!scopes_reserve(vkg_ctx.scope_depth + 1)) {
        vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_scope_begin: out of host memory");
        return;
    }
    vkg_ctx.scope_depth++;
    vkg_ctx.scope_heads[vkg_ctx.scope_depth] = NULL;
}

void vkg_tensor_unref(vkg_tensor *t) {
    if (t && --t->refs == 0) vkg_recycle(&vkg_spare_tensors, t);
}

/* The owner lets go: storage, gradient and graph node go now; the struct stays while a node
 * of another tensor still refers to it (it is dead: a backward that needs it is refused). */
static void destroy(vkg_tensor *t) {
    t->dead = true;
    if (t->grad) destroy(t->grad);
    t->grad = NULL;
    if (t->node) {
        vkg_node_release(t->node);
        vkg_recycle(&vkg_spare_nodes, t->node);
        t->node = NULL;
    }
    vkg_storage_release(t->storage);
    t->storage = NULL;
    vkg_tensor_unref(t);
}

void vkg_tensor_drop(vkg_tensor *t) {
    if (!t || t->dead) return;
    unlink_tensor(t);
    destroy(t);
}

void vkg_tensor_adopt(const vkg_tensor *owner, vkg_tensor *t) {
    (void)owner; /* the owner frees it (see destroy): no scope list holds it */
    unlink_tensor(t);
    t->scope = -1;
}

void vkg_scope_end(void) {
    if (!vkg_ctx.initialized || vkg_ctx.scope_depth == 0) return;
    vkg_tensor *t = vkg_ctx.scope_heads[vkg_ctx.scope_depth];
    while (t) {
        vkg_tensor *next = t->next;
        destroy(t);
        t = next;
    }
    vkg_ctx.scope_heads[vkg_ctx.scope_depth] = NULL;
    vkg_ctx.scope_depth--;
}

int vkg_scope_depth(void) { return vkg_ctx.scope_depth; }

vkg_tensor *vkg_keep(vkg_tensor *t) {
    if (!t) return NULL;
    if (t->scope > 0 && !t->dead) {
        unlink_tensor(t);
        link_tensor(t, t->scope - 1);
    }
    return t;
}

void vkg_free(vkg_tensor *t) {
    if (!t || !vkg_ctx.initialized || t->dead || t->scope < 0) return;
    unlink_tensor(t);
    destroy(t);
}

void vkg_tensors_free_all(void) {
    for (int level = vkg_ctx.scope_depth; level >= 0 && vkg_ctx.scope_heads; level--) {
        vkg_tensor *t = vkg_ctx.scope_heads[level];
        while (t) {
            vkg_tensor *next = t->next;
            destroy(t);
            t = next;
        }
    }
    free(vkg_ctx.scope_heads);
    vkg_ctx.scope_heads = NULL;
    vkg_ctx.scope_depth = vkg_ctx.capscopes = 0;
}

/* ---- creation ------------------------------------------------------------------------------- */
static vkg_tensor *tensor_struct(vkg_shape shape, vkg_dtype dtype, const char *op) {
    if (!scopes_reserve(vkg_ctx.scope_depth)) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
    vkg_tensor *t = vkg_recycled_calloc(&vkg_spare_tensors);
    if (!t) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", op);
    t->refs = 1;
    t->shape = shape;
    for (int i = shape.ndim; i < VKG_MAX_DIMS; i++) t->shape.d[i] = 0;
    t->dtype = dtype;
    return t;
}

vkg_tensor *vkg_tensor_alloc(vkg_shape shape, vkg_dtype dtype, bool host_write, const char *op) {
    if (!vkg_ready(op) || !vkg_shape_check(shape, op)) return NULL;
    if ((unsigned)dtype >= VKG_DTYPE_COUNT) return vkg_fail_null(VKG_ERR_INVALID, "%s: unknown dtype %d", op, (int)dtype);
    int64_t n = vkg_shape_numel(shape);
    size_t es = vkg_dtype_size(dtype);
    if (n > INT64_MAX / (int64_t)es) return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: tensor too large", op);
    vkg_storage *s = vkg_storage_new_tensor((VkDeviceSize)n * es, host_write, op, shape, dtype);
    if (!s) return NULL;
    vkg_tensor *t = tensor_struct(shape, dtype, op);
    if (!t) {
        vkg_storage_release(s);
        return NULL;
    }
    t->storage = s;
    contiguous_strides(shape, t->strides);
    link_tensor(t, vkg_ctx.scope_depth);
    return t;
}

vkg_tensor *vkg_tensor_view_of(vkg_tensor *base, vkg_shape shape, const int64_t *strides, int64_t offset) {
    vkg_tensor *t = tensor_struct(shape, base->dtype, "view");
    if (!t) return NULL;
    memcpy(t->strides, strides, sizeof t->strides);
    for (int i = shape.ndim; i < VKG_MAX_DIMS; i++) t->strides[i] = 0;
    t->offset = offset;
    t->storage = base->storage;
    t->storage->refs++;
    link_tensor(t, vkg_ctx.scope_depth);
    return t;
}

vkg_tensor *vkg_empty(vkg_shape shape) { return vkg_tensor_alloc(shape, VKG_F32, false, "vkg_empty"); }
vkg_tensor *vkg_empty_dtype(vkg_shape shape, vkg_dtype dtype) { return vkg_tensor_alloc(shape, dtype, false, "vkg_empty"); }

vkg_tensor *vkg_empty_like(const vkg_tensor *t) {
    if (!t) return NULL;
    return vkg_tensor_alloc(t->shape, t->dtype, false, "vkg_empty_like");
}

vkg_tensor *vkg_from_data_dtype(vkg_shape shape, vkg_dtype dtype, const void *data) {
    int64_t n = vkg_shape_numel(shape);
    if (!data && n > 0 && shape.ndim >= 0) return vkg_fail_null(VKG_ERR_INVALID, "vkg_from_data: data is NULL");
    vkg_tensor *t = vkg_tensor_alloc(shape, dtype, true, "vkg_from_data");
    if (!t) return NULL;
    if (vkg_stream_upload(t->storage, 0, data, (size_t)n * vkg_dtype_size(dtype)) != VKG_OK) {
        vkg_free(t);
        return NULL;
    }
    return t;
}

vkg_tensor *vkg_from_data(vkg_shape shape, const float *data) { return vkg_from_data_dtype(shape, VKG_F32, data); }
vkg_tensor *vkg_scalar(float value) { return vkg_from_data(VKG_SCALAR, &value); }

vkg_tensor *vkg_full(vkg_shape shape, float value) {
    return vkg_fill_(vkg_tensor_alloc(shape, VKG_F32, false, "vkg_full"), value);
}
vkg_tensor *vkg_zeros(vkg_shape shape) { return vkg_full(shape, 0.0f); }
vkg_tensor *vkg_ones(vkg_shape shape) { return vkg_full(shape, 1.0f); }

/* ---- queries -------------------------------------------------------------------------------- */
int vkg_ndim(const vkg_tensor *t) { return t ? t->shape.ndim : -1; }
vkg_shape vkg_tensor_shape(const vkg_tensor *t) { return t ? t->shape : (vkg_shape){ .ndim = -1 }; }
int64_t vkg_numel(const vkg_tensor *t) { return t ? vkg_shape_numel(t->shape) : 0; }
vkg_dtype vkg_tensor_dtype(const vkg_tensor *t) { return t ? t->dtype : VKG_F32; }
bool vkg_shares_storage(const vkg_tensor *a, const vkg_tensor *b) { return a && b && a->storage == b->storage; }

int64_t vkg_dim(const vkg_tensor *t, int axis) {
    if (!t) return -1;
    if (axis < 0) axis += t->shape.ndim;
    return (axis >= 0 && axis < t->shape.ndim) ? t->shape.d[axis] : -1;
}

int64_t vkg_stride(const vkg_tensor *t, int axis) {
    if (!t) return 0;
    if (axis < 0) axis += t->shape.ndim;
    return (axis >= 0 && axis < t->shape.ndim) ? t->strides[axis] : 0;
}

bool vkg_dense(const vkg_tensor *t, int64_t *numel) {
    bool dense = true;
    int64_t st = 1;
    for (int i = t->shape.ndim - 1; i >= 0; i--) {
        dense &= t->shape.d[i] == 1 || t->strides[i] == st;
        st *= t->shape.d[i];
    }
    *numel = st;
    return dense || st == 0; /* an empty tensor has no element to be out of place */
}

bool vkg_is_contiguous(const vkg_tensor *t) {
    int64_t n;
    return t && vkg_dense(t, &n);
}

/* ---- host transfers ------------------------------------------------------------------------- */
vkg_status vkg_tensor_read(const vkg_tensor *t, void *dst, size_t dst_bytes) {
    if (!t) return vkg_fail(VKG_ERR_INVALID, "vkg_tensor_read: tensor is NULL");
    if (!dst && vkg_numel(t) > 0) return vkg_fail(VKG_ERR_INVALID, "vkg_tensor_read: destination is NULL");
    if (!vkg_ready("vkg_tensor_read")) return vkg_last_status();
    size_t es = vkg_dtype_size(t->dtype);
    int64_t n = vkg_numel(t);
    char b[160];
    if (dst_bytes < (size_t)n * es)
        return vkg_fail(VKG_ERR_INVALID, "vkg_tensor_read: tensor %s %s needs %zu bytes, destination has %zu",
                        vkg_shape_str(t->shape, b, sizeof b), vkg_dtype_name(t->dtype), (size_t)n * es, dst_bytes);
    if (n == 0) return VKG_OK;
    if (vkg_is_contiguous(t))
        return vkg_stream_download(t->storage, (VkDeviceSize)t->offset * es, dst, (size_t)n * es);
    /* a view: bring back the span it covers, then gather on the host (no dispatch needed) */
    int64_t hi = t->offset;
    for (int i = 0; i < t->shape.ndim; i++) hi += (t->shape.d[i] - 1) * t->strides[i];
    size_t span = (size_t)(hi - t->offset + 1) * es;
    uint8_t *tmp = malloc(span);
    if (!tmp) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_tensor_read: out of host memory (%zu bytes)", span);
    vkg_status st = vkg_stream_download(t->storage, (VkDeviceSize)t->offset * es, tmp, span);
    if (st == VKG_OK) {
        int64_t idx[VKG_MAX_DIMS] = { 0 };
        uint8_t *out = dst;
        for (int64_t k = 0; k < n; k++) {
            int64_t off = 0;
            for (int i = 0; i < t->shape.ndim; i++) off += idx[i] * t->strides[i];
            memcpy(out + (size_t)k * es, tmp + (size_t)off * es, es);
            for (int i = t->shape.ndim - 1; i >= 0; i--) {
                if (++idx[i] < t->shape.d[i]) break;
                idx[i] = 0;
            }
        }
    }
    free(tmp);
    return st;
}

vkg_status vkg_tensor_write(vkg_tensor *t, const void *src, size_t src_bytes) {
    if (!t) return vkg_fail(VKG_ERR_INVALID, "vkg_tensor_write: tensor is NULL");
    if (!vkg_ready("vkg_tensor_write")) return vkg_last_status();
    size_t es = vkg_dtype_size(t->dtype);
    size_t need = (size_t)vkg_numel(t) * es;
    char b[160];
    if (!vkg_is_contiguous(t))
        return vkg_fail(VKG_ERR_INVALID, "vkg_tensor_write: tensor %s is a non-contiguous view",
                        vkg_shape_str(t->shape, b, sizeof b));
    if (src_bytes != need || (!src && need))
        return vkg_fail(VKG_ERR_INVALID, "vkg_tensor_write: tensor %s %s needs %zu bytes, source has %zu",
                        vkg_shape_str(t->shape, b, sizeof b), vkg_dtype_name(t->dtype), need, src ? src_bytes : 0);
    return vkg_stream_upload(t->storage, (VkDeviceSize)t->offset * es, src, need);
}

float vkg_item(const vkg_tensor *t) {
    if (!t) return NAN;
    char b[160];
    if (vkg_numel(t) != 1) {
        vkg_fail(VKG_ERR_INVALID, "vkg_item: tensor %s has %lld elements, not 1", vkg_shape_str(t->shape, b, sizeof b),
                 (long long)vkg_numel(t));
        return NAN;
    }
    union { float f; int32_t i; uint8_t u; uint16_t h; } v = { 0 };
    if (vkg_tensor_read(t, &v, vkg_dtype_size(t->dtype)) != VKG_OK) return NAN;
    switch (t->dtype) {
    case VKG_F32: return v.f;
    case VKG_I32: return (float)v.i;
    case VKG_F16: return vkg_ref_f16_to_f32(v.h);
    default: return (float)v.u;
    }
}
