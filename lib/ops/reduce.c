/* Reductions (sum, mean, max, min, argmax) over one axis or over all elements. The input is
 * seen as a contiguous (outer, R, inner) block; the order of accumulation is fixed, so results
 * are bitwise reproducible on a device. Few long rows get a workgroup each, many rows an
 * invocation each. */
#include "ops/ops.h"

/* Mirrors the Push block of shaders/reduce.comp: change both. */
typedef struct vkg_reduce_push {
    uint32_t outer, R, inner, in_off;
    uint32_t out_off;
} vkg_reduce_push;

#define LOCAL 128

static vkg_tensor *reduce(vkg_op op, vkg_tensor *x, int axis, bool keepdim, bool all) {
    if (!x) return NULL;
    if ((unsigned)op >= VKG_OP_COUNT || vkg_op_table[op].kind != VKG_KIND_REDUCE)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_reduce: op %d is not a reduction", (int)op);
    const char *name = vkg_op_table[op].name;
    if (!vkg_require_f32(x, name, "x")) return NULL;
    int nd = x->shape.ndim;
    int64_t outer = 1, R = 1, inner = 1;
    vkg_shape out = { .ndim = 0 };
    if (all) {
        R = vkg_numel(x);
    } else {
        if (!vkg_norm_axis(&axis, nd, name, x->shape)) return NULL;
        for (int i = 0; i < nd; i++) {
            if (i < axis) outer *= x->shape.d[i];
            else if (i > axis) inner *= x->shape.d[i];
            if (i != axis) out.d[out.ndim++] = x->shape.d[i];
            else if (keepdim) out.d[out.ndim++] = 1;
        }
        R = x->shape.d[axis];
    }
    if (R == 0 && op != VKG_OP_SUM && op != VKG_OP_MEAN) {
        char b[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_%s: cannot reduce over an empty axis of %s", name,
                             vkg_shape_str(x->shape, b, sizeof b));
    }
    vkg_tensor *xc = vkg_contiguous(x);
    if (!xc) return NULL;
    vkg_tensor *y = vkg_tensor_alloc(out, op == VKG_OP_ARGMAX ? VKG_I32 : VKG_F32, false, name);
    int64_t nout = outer * inner;
    if (y && nout > 0) {
        vkg_reduce_push pc = { (uint32_t)outer, (uint32_t)R, (uint32_t)inner, (uint32_t)xc->offset, (uint32_t)y->offset };
        /* A workgroup per output pays off when outputs are too few to fill the device; it is
         * also needed for rows past 32768: lavapipe ends any shader loop after 65535 iterations,
         * so one invocation must not walk a long row alone (a workgroup splits it 128 ways). */
        uint32_t variant = ((nout < 256 && R >= 512) || R > 32768) ? 1 : 0;
        uint32_t groups = variant ? vkg_groups_for((uint64_t)nout, 1) : vkg_groups_for((uint64_t)nout, LOCAL);
        if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "reduce", .op = op, .name = name,
                                               .spec = { vkg_op_table[op].code, variant }, .nspec = 2,
                                               .local_size = LOCAL, .groups = { groups },
                                               .bind = { y, xc, y }, .nout = 1, .push = &pc,
                                               .push_size = sizeof pc }) != VKG_OK) {
            vkg_free(y);
            y = NULL;
        }
    }
    if (xc != x) vkg_free(xc);
    vkg_node *n = op != VKG_OP_ARGMAX ? vkg_node_record(y, op, &x, 1) : NULL;
    if (n) {
        n->axis = all ? VKG_AXIS_ALL : axis;
        n->keepdim = keepdim;
    }
    return y;
}

vkg_tensor *vkg_reduce(vkg_op op, vkg_tensor *x, int axis, bool keepdim) { return reduce(op, x, axis, keepdim, false); }
vkg_tensor *vkg_reduce_all(vkg_op op, vkg_tensor *x) { return reduce(op, x, 0, false, true); }

vkg_tensor *vkg_sum(vkg_tensor *x, int axis, bool keepdim) { return reduce(VKG_OP_SUM, x, axis, keepdim, false); }
vkg_tensor *vkg_mean(vkg_tensor *x, int axis, bool keepdim) { return reduce(VKG_OP_MEAN, x, axis, keepdim, false); }
vkg_tensor *vkg_max(vkg_tensor *x, int axis, bool keepdim) { return reduce(VKG_OP_MAX, x, axis, keepdim, false); }
vkg_tensor *vkg_min(vkg_tensor *x, int axis, bool keepdim) { return reduce(VKG_OP_MIN, x, axis, keepdim, false); }
vkg_tensor *vkg_argmax(vkg_tensor *x, int axis, bool keepdim) { return reduce(VKG_OP_ARGMAX, x, axis, keepdim, false); }
vkg_tensor *vkg_sum_all(vkg_tensor *x) { return reduce(VKG_OP_SUM, x, 0, false, true); }
vkg_tensor *vkg_mean_all(vkg_tensor *x) { return reduce(VKG_OP_MEAN, x, 0, false, true); }
vkg_tensor *vkg_max_all(vkg_tensor *x) { return reduce(VKG_OP_MAX, x, 0, false, true); }
vkg_tensor *vkg_min_all(vkg_tensor *x) { return reduce(VKG_OP_MIN, x, 0, false, true); }
vkg_tensor *vkg_argmax_all(vkg_tensor *x) { return reduce(VKG_OP_ARGMAX, x, 0, false, true); }
