/* Dtype conversion, vkg_to_dtype (f32 <-> f16), and the device copy of f16 tensors: both run
 * shaders/cast.comp, a strided gather into a new contiguous tensor that converts on the way.
 * The gradient of a cast is the upstream gradient cast back (lib/autograd/backward.c). */
#include "ops/ops.h"

/* Mirrors the Push block of shaders/cast.comp: change both. */
typedef struct vkg_cast_push {
    uint32_t n, ndim, in_off, pad;
    uint32_t shape[8];
    int32_t st[8];
} vkg_cast_push;
_Static_assert(sizeof(vkg_cast_push) <= VKG_PUSH_SIZE, "push constants too large");

#define LOCAL 128

static bool castable(vkg_dtype dt) { return dt == VKG_F32 || dt == VKG_F16; }

vkg_status vkg_cast_into(vkg_tensor *y, const vkg_tensor *x, vkg_op op, const char *name) {
    int64_t n = vkg_numel(y);
    if (n == 0) return VKG_OK;
    if (n > UINT32_MAX - 1 || x->offset > UINT32_MAX)
        return vkg_fail(VKG_ERR_TOO_LARGE, "%s: %lld elements are too many for one dispatch", name, (long long)n);
    vkg_cast_push pc = { .n = (uint32_t)n, .ndim = (uint32_t)x->shape.ndim, .in_off = (uint32_t)x->offset };
    for (int i = 0; i < VKG_MAX_DIMS; i++) {
        bool used = i < x->shape.ndim;
        pc.shape[i] = used ? (uint32_t)x->shape.d[i] : 1;
        pc.st[i] = used ? (int32_t)x->strides[i] : 0;
    }
    if (x->shape.ndim == 0) { /* a 0-d tensor is one element */
        pc.ndim = 1;
        pc.shape[0] = 1;
    }
    bool dst16 = y->dtype == VKG_F16;
    uint64_t items = dst16 ? ((uint64_t)n + 1) / 2 : (uint64_t)n; /* an f16 output: a word (2 elements) each */
    double bytes = (double)n * (double)(vkg_dtype_size(x->dtype) + vkg_dtype_size(y->dtype));
    return vkg_dispatch(&(vkg_dispatch_desc){ .shader = "cast", .op = op, .name = name, .local_size = LOCAL,
                                              .spec = { x->dtype == VKG_F16, dst16 }, .nspec = 2,
                                              .groups = { vkg_groups_for(items, LOCAL) }, .bind = { y, x }, .nout = 1,
                                              .push = &pc, .push_size = sizeof pc, .bytes = bytes });
}

vkg_tensor *vkg_to_dtype(vkg_tensor *t, vkg_dtype dt) {
    static const char *const name = "vkg_to_dtype";
    if (!t) return NULL;
    if ((unsigned)dt >= VKG_DTYPE_COUNT) return vkg_fail_null(VKG_ERR_INVALID, "%s: unknown dtype %d", name, (int)dt);
    if (t->dtype == dt) return t;
    char b[192];
    if (!castable(t->dtype) || !castable(dt))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: %s to %s is not supported (f32 <-> f16 only)", name,
                             vkg_desc(t, b, sizeof b), vkg_dtype_name(dt));
    vkg_tensor *y = vkg_tensor_alloc(t->shape, dt, false, name);
    if (!y) return NULL;
    if (vkg_cast_into(y, t, VKG_OP_TO_DTYPE, name) != VKG_OK) {
        vkg_free(y);
        return NULL;
    }
    vkg_node_record(y, VKG_OP_TO_DTYPE, &t, 1);
    return y;
}
