/* Views: new shape, strides and offset over the same storage, no copy and no dispatch.
 * reshape falls back to a copy only where no strides can express the new shape. */
#include <string.h>

#include "runtime/runtime.h"

static bool norm_axis(int *axis, int ndim, const char *op, vkg_shape s) {
    int a = *axis;
    if (a < -ndim || a >= ndim || ndim == 0) {
        char b[160];
        vkg_fail(VKG_ERR_INVALID, "%s: axis %d is out of range for shape %s (%d dims)", op, a,
                 vkg_shape_str(s, b, sizeof b), ndim);
        return false;
    }
    *axis = a < 0 ? a + ndim : a;
    return true;
}

/* Every view records its node (for gradients) through here. */
static vkg_tensor *recorded(vkg_tensor *v, int op, vkg_tensor *base) {
    vkg_node_record(v, op, &base, 1);
    return v;
}

/* Resolves one -1 and checks the element count. */
static bool resolve_shape(const vkg_tensor *t, vkg_shape *shape, const char *op) {
    char a[160], b[160];
    if (shape->ndim < 0 || shape->ndim > VKG_MAX_DIMS)
        return vkg_fail(VKG_ERR_INVALID, "%s: %d dimensions; a tensor has 0 to %d", op, shape->ndim, VKG_MAX_DIMS), false;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < shape->ndim; i++) {
        if (shape->d[i] == -1) {
            if (infer >= 0) return vkg_fail(VKG_ERR_INVALID, "%s: only one dimension can be -1", op), false;
            infer = i;
        } else if (shape->d[i] < 0) {
            return vkg_fail(VKG_ERR_INVALID, "%s: negative size in %s", op, vkg_shape_str(*shape, a, sizeof a)), false;
        } else {
            known *= shape->d[i];
        }
    }
    int64_t n = vkg_numel(t);
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            return vkg_fail(VKG_ERR_INVALID, "%s: cannot infer -1 in %s for a tensor %s of %lld elements", op,
                            vkg_shape_str(*shape, a, sizeof a), vkg_shape_str(t->shape, b, sizeof b), (long long)n),
                   false;
        shape->d[infer] = n / known;
        known = n;
    }
    if (known != n)
        return vkg_fail(VKG_ERR_INVALID, "%s: shape %s (%lld elements) does not fit tensor %s (%lld elements)", op,
                        vkg_shape_str(*shape, a, sizeof a), (long long)known, vkg_shape_str(t->shape, b, sizeof b),
                        (long long)n),
               false;
    return true;
}

/* Strides that give `shape` over t's elements in row-major order without moving them, if any:
 * each run of old dims that is contiguous in memory can be split and merged freely. */
static bool view_strides(const vkg_tensor *t, vkg_shape shape, int64_t *out) {
    if (vkg_numel(t) == 0 || t->shape.ndim == 0 || vkg_is_contiguous(t)) {
        int64_t st = 1;
        for (int i = shape.ndim - 1; i >= 0; i--) {
            out[i] = st;
            st *= shape.d[i] ? shape.d[i] : 1;
        }
        return true;
    }
    int nd = shape.ndim - 1;
    int64_t base = t->strides[t->shape.ndim - 1], old_n = 1, new_n = 1;
    for (int od = t->shape.ndim - 1; od >= 0; od--) {
        old_n *= t->shape.d[od];
        bool run_ends = od == 0 || (t->shape.d[od - 1] != 1 && t->strides[od - 1] != old_n * base);
        if (!run_ends) continue;
        while (nd >= 0 && (new_n < old_n || shape.d[nd] == 1)) {
            out[nd] = new_n * base;
            new_n *= shape.d[nd];
            nd--;
        }
        if (new_n != old_n) return false;
        if (od > 0) {
            base = t->strides[od - 1];
            old_n = new_n = 1;
        }
    }
    return nd == -1;
}

vkg_tensor *vkg_view(vkg_tensor *t, vkg_shape shape) {
    if (!t || !resolve_shape(t, &shape, "vkg_view")) return NULL;
    int64_t st[VKG_MAX_DIMS] = { 0 };
    if (!view_strides(t, shape, st)) {
        char a[160], b[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_view: tensor %s with these strides cannot be viewed as %s without a "
                                              "copy (use vkg_reshape)",
                             vkg_shape_str(t->shape, a, sizeof a), vkg_shape_str(shape, b, sizeof b));
    }
    return recorded(vkg_tensor_view_of(t, shape, st, t->offset), VKG_NODE_RESHAPE, t);
}

vkg_tensor *vkg_reshape(vkg_tensor *t, vkg_shape shape) {
    if (!t || !resolve_shape(t, &shape, "vkg_reshape")) return NULL;
    int64_t st[VKG_MAX_DIMS] = { 0 };
    if (view_strides(t, shape, st)) return recorded(vkg_tensor_view_of(t, shape, st, t->offset), VKG_NODE_RESHAPE, t);
    vkg_tensor *c = vkg_copy(t);
    return c ? vkg_view(c, shape) : NULL;
}

vkg_tensor *vkg_flatten(vkg_tensor *t) { return vkg_reshape(t, VKG_SHAPE(-1)); }

vkg_tensor *vkg_permute(vkg_tensor *t, const int *perm) {
    if (!t) return NULL;
    if (!perm) return vkg_fail_null(VKG_ERR_INVALID, "vkg_permute: perm is NULL");
    int nd = t->shape.ndim;
    bool seen[VKG_MAX_DIMS] = { false };
    vkg_shape s = { .ndim = nd };
    int64_t st[VKG_MAX_DIMS] = { 0 };
    for (int i = 0; i < nd; i++) {
        int a = perm[i];
        if (!norm_axis(&a, nd, "vkg_permute", t->shape)) return NULL;
        if (seen[a]) return vkg_fail_null(VKG_ERR_INVALID, "vkg_permute: axis %d appears twice in the permutation", a);
        seen[a] = true;
        s.d[i] = t->shape.d[a];
        st[i] = t->strides[a];
    }
    vkg_tensor *v = vkg_tensor_view_of(t, s, st, t->offset);
    vkg_node *n = vkg_node_record(v, VKG_NODE_PERMUTE, &t, 1);
    for (int i = 0; n && i < nd; i++) n->ip[i] = perm[i] < 0 ? perm[i] + nd : perm[i];
    return v;
}

vkg_tensor *vkg_transpose(vkg_tensor *t, int a, int b) {
    if (!t) return NULL;
    int nd = t->shape.ndim;
    if (!norm_axis(&a, nd, "vkg_transpose", t->shape) || !norm_axis(&b, nd, "vkg_transpose", t->shape)) return NULL;
    int perm[VKG_MAX_DIMS];
    for (int i = 0; i < nd; i++) perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return vkg_permute(t, perm);
}

vkg_tensor *vkg_slice(vkg_tensor *t, int axis, int64_t start, int64_t stop, int64_t step) {
    if (!t) return NULL;
    if (!norm_axis(&axis, t->shape.ndim, "vkg_slice", t->shape)) return NULL;
    if (step <= 0) return vkg_fail_null(VKG_ERR_INVALID, "vkg_slice: step %lld must be positive", (long long)step);
    int64_t n = t->shape.d[axis];
    /* Python rules: negatives count from the end, then clamp into [0, n] */
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    if (start < 0) start = 0;
    if (start > n) start = n;
    if (stop > n) stop = n;
    if (stop < start) stop = start;
    vkg_shape s = t->shape;
    int64_t st[VKG_MAX_DIMS];
    memcpy(st, t->strides, sizeof st);
    s.d[axis] = (stop - start + step - 1) / step;
    st[axis] *= step;
    vkg_tensor *v = vkg_tensor_view_of(t, s, st, t->offset + start * t->strides[axis]);
    vkg_node *node = vkg_node_record(v, VKG_NODE_SLICE, &t, 1);
    if (node) {
        node->axis = axis;
        node->ip[0] = start;
        node->ip[1] = step;
    }
    return v;
}

vkg_tensor *vkg_narrow(vkg_tensor *t, int axis, int64_t start, int64_t length) {
    if (!t) return NULL;
    if (!norm_axis(&axis, t->shape.ndim, "vkg_narrow", t->shape)) return NULL;
    int64_t n = t->shape.d[axis];
    if (start < 0) start += n;
    if (start < 0 || length < 0 || start > n || length > n - start) {
        char b[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_narrow: [%lld, %lld) is outside dim %d of size %lld in %s",
                             (long long)start, (long long)(start + length), axis, (long long)n,
                             vkg_shape_str(t->shape, b, sizeof b));
    }
    return vkg_slice(t, axis, start, start + length, 1);
}

vkg_tensor *vkg_expand(vkg_tensor *t, vkg_shape shape) {
    if (!t) return NULL;
    char a[160], b[160];
    if (shape.ndim < t->shape.ndim || shape.ndim > VKG_MAX_DIMS)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_expand: cannot expand %s to %s (fewer dims)",
                             vkg_shape_str(t->shape, a, sizeof a), vkg_shape_str(shape, b, sizeof b));
    int lead = shape.ndim - t->shape.ndim;
    int64_t st[VKG_MAX_DIMS] = { 0 };
    for (int i = 0; i < shape.ndim; i++) {
        int j = i - lead;
        int64_t want = shape.d[i];
        if (j < 0) {
            if (want < 0) goto bad;
            st[i] = 0;
            continue;
        }
        int64_t have = t->shape.d[j];
        if (want == -1) want = shape.d[i] = have;
        if (want == have) st[i] = t->strides[j];
        else if (have == 1 && want >= 0) st[i] = 0;
        else goto bad;
    }
    return recorded(vkg_tensor_view_of(t, shape, st, t->offset), VKG_NODE_EXPAND, t);
bad:
    return vkg_fail_null(VKG_ERR_INVALID, "vkg_expand: cannot expand %s to %s (only size-1 dims can grow)",
                         vkg_shape_str(t->shape, a, sizeof a), vkg_shape_str(shape, b, sizeof b));
}

vkg_tensor *vkg_squeeze(vkg_tensor *t, int axis) {
    if (!t) return NULL;
    if (!norm_axis(&axis, t->shape.ndim, "vkg_squeeze", t->shape)) return NULL;
    if (t->shape.d[axis] != 1) {
        char b[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_squeeze: dim %d of %s has size %lld, not 1", axis,
                             vkg_shape_str(t->shape, b, sizeof b), (long long)t->shape.d[axis]);
    }
    vkg_shape s = { .ndim = t->shape.ndim - 1 };
    int64_t st[VKG_MAX_DIMS] = { 0 };
    for (int i = 0, k = 0; i < t->shape.ndim; i++)
        if (i != axis) {
            s.d[k] = t->shape.d[i];
            st[k++] = t->strides[i];
        }
    return recorded(vkg_tensor_view_of(t, s, st, t->offset), VKG_NODE_RESHAPE, t);
}

vkg_tensor *vkg_unsqueeze(vkg_tensor *t, int axis) {
    if (!t) return NULL;
    int nd = t->shape.ndim;
    if (nd >= VKG_MAX_DIMS) return vkg_fail_null(VKG_ERR_INVALID, "vkg_unsqueeze: tensor already has %d dims", nd);
    if (axis < -(nd + 1) || axis > nd)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_unsqueeze: axis %d is out of range for %d dims", axis, nd);
    if (axis < 0) axis += nd + 1;
    vkg_shape s = { .ndim = nd + 1 };
    int64_t st[VKG_MAX_DIMS] = { 0 };
    for (int i = 0, k = 0; i <= nd; i++) {
        if (i == axis) {
            s.d[i] = 1;
            st[i] = (i < nd) ? t->strides[k] * t->shape.d[k] : 1;
        } else {
            s.d[i] = t->shape.d[k];
            st[i] = t->strides[k++];
        }
    }
    return recorded(vkg_tensor_view_of(t, s, st, t->offset), VKG_NODE_RESHAPE, t);
}
