/* index_select, gather and embedding (shaders/index.comp), and their backward: a scatter-add
 * done as a gather so that every gradient element is summed in a fixed order (no float
 * atomics: bitwise reproducible). index_select and embedding first invert the index into
 * CSR rows (shaders/index_inverse.comp); gather walks the index line of each element. */
#include <string.h>

#include "ops/seq.h"

/* Mirrors the Push block of shaders/index.comp: change both. */
typedef struct vkg_index_push {
    uint32_t n, ndim, axis, x_off;
    uint32_t idx_off, out_off, N, pad;
    uint32_t shape[8];
    int32_t xst[8];
} vkg_index_push;

/* Mirrors the Push block of shaders/index_inverse.comp: change both. */
typedef struct vkg_inverse_push {
    uint32_t M, N, idx_off, off_off;
    uint32_t list_off, phase, lo, hi;
} vkg_inverse_push;

/* Mirrors the Push block of shaders/index_backward.comp: change both. */
typedef struct vkg_index_bw_push {
    uint32_t n, ndim, axis, M;
    uint32_t N, inner, dy_off, a_off;
    uint32_t list_off, dx_off, k0, klen;
    uint32_t xs[8];
    uint32_t is[8];
} vkg_index_bw_push;

_Static_assert(sizeof(vkg_index_push) <= VKG_PUSH_SIZE, "push constants too large");
_Static_assert(sizeof(vkg_index_bw_push) <= VKG_PUSH_SIZE, "push constants too large");

#define LOCAL 128

static bool require_index(const vkg_tensor *t, const char *op) {
    if (t->dtype == VKG_I32) return true;
    char b[192];
    vkg_fail(VKG_ERR_INVALID, "%s: index is %s; indices are i32", op, vkg_desc(t, b, sizeof b));
    return false;
}

/* y (contiguous, shape ys) = x read through index along axis; x is seen with shape xs. */
static vkg_tensor *index_read(vkg_op op, vkg_tensor *x, vkg_shape xs, const int64_t *xst, int axis, vkg_tensor *index,
                              vkg_shape ys, vkg_shape ds, const char *name) {
    vkg_tensor *ic = vkg_contiguous(index);
    if (!ic) return NULL;
    vkg_tensor *y = vkg_tensor_alloc(ys, VKG_F32, false, name);
    int64_t n = vkg_numel(y);
    if (y && n > 0) {
        vkg_index_push pc = { .n = (uint32_t)n, .ndim = (uint32_t)ds.ndim, .axis = (uint32_t)axis,
                              .x_off = (uint32_t)x->offset, .idx_off = (uint32_t)ic->offset,
                              .out_off = (uint32_t)y->offset, .N = (uint32_t)xs.d[axis] };
        for (int i = 0; i < 8; i++) {
            pc.shape[i] = i < ds.ndim ? (uint32_t)ds.d[i] : 1;
            pc.xst[i] = i < ds.ndim ? (int32_t)xst[i] : 0;
        }
        /* whole vec4 rows picked along axis 0 of a 2-D result: shaders/index.comp's ROWS */
        bool rows = op != VKG_OP_GATHER && axis == 0 && ds.ndim == 2 &&
                    vkg_vec4_rows(ds.d[1], xst[0], xst[1], x->offset) && y->offset % 4 == 0;
        vkg_dispatch_desc d = { .shader = "index", .op = op, .name = name,
                                .spec = { vkg_op_table[op].code, rows }, .nspec = 2, .local_size = LOCAL,
                                .groups = { vkg_groups_for((uint64_t)(rows ? n / 4 : n), LOCAL) },
                                .bind = { y, x, ic }, .nout = 1, .push = &pc, .push_size = sizeof pc };
        if (vkg_texel_bind(&d, 2u, rows ? 0u : 2u)) { /* x through a texel view */
            d.shader = "index_tex";
            vkg_texel_rebase(&d, 1, (uint32_t *[]){ &pc.x_off }, 1);
        }
        if (vkg_dispatch(&d) != VKG_OK) {
            vkg_free(y);
            y = NULL;
        }
    }
    if (ic != index) vkg_free(ic);
    return y;
}

vkg_tensor *vkg_index_select(vkg_tensor *x, int axis, vkg_tensor *index) {
    const char *op = "vkg_index_select";
    if (!x || !index) return NULL;
    if (!vkg_require_f32(x, op, "x") || !require_index(index, op)) return NULL;
    char a[160], b[160];
    if (index->shape.ndim > 1)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: index is %s; it must be 1-D (x is %s)", op,
                             vkg_shape_str(index->shape, a, sizeof a), vkg_shape_str(x->shape, b, sizeof b));
    if (!vkg_norm_axis(&axis, x->shape.ndim, op, x->shape)) return NULL;
    vkg_shape ys = x->shape;
    ys.d[axis] = vkg_numel(index);
    vkg_tensor *y = index_read(VKG_OP_INDEX_SELECT, x, x->shape, x->strides, axis, index, ys, ys, op);
    vkg_node *n = vkg_node_record(y, VKG_OP_INDEX_SELECT, (vkg_tensor *[]){ x, index }, 2);
    if (n) n->axis = axis;
    return y;
}

vkg_tensor *vkg_gather(vkg_tensor *x, int axis, vkg_tensor *index) {
    const char *op = "vkg_gather";
    if (!x || !index) return NULL;
    if (!vkg_require_f32(x, op, "x") || !require_index(index, op)) return NULL;
    char a[160], b[160];
    if (!vkg_norm_axis(&axis, x->shape.ndim, op, x->shape)) return NULL;
    if (index->shape.ndim != x->shape.ndim)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: index is %s but x is %s: they must have the same number of dims", op,
                             vkg_shape_str(index->shape, a, sizeof a), vkg_shape_str(x->shape, b, sizeof b));
    for (int d = 0; d < x->shape.ndim; d++)
        if (d != axis && index->shape.d[d] > x->shape.d[d])
            return vkg_fail_null(VKG_ERR_INVALID, "%s: index is %s but x is %s: dim %d of index (%lld) exceeds x's (%lld)",
                                 op, vkg_shape_str(index->shape, a, sizeof a), vkg_shape_str(x->shape, b, sizeof b), d,
                                 (long long)index->shape.d[d], (long long)x->shape.d[d]);
    vkg_tensor *y = index_read(VKG_OP_GATHER, x, x->shape, x->strides, axis, index, index->shape, index->shape, op);
    vkg_node *n = vkg_node_record(y, VKG_OP_GATHER, (vkg_tensor *[]){ x, index }, 2);
    if (n) n->axis = axis;
    return y;
}

vkg_tensor *vkg_embedding(vkg_tensor *weight, vkg_tensor *index) {
    const char *op = "vkg_embedding";
    if (!weight || !index) return NULL;
    if (!vkg_require_f32(weight, op, "weight") || !require_index(index, op)) return NULL;
    char a[160], b[160];
    if (weight->shape.ndim != 2)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: weight is %s; it must be (V, D)", op,
                             vkg_shape_str(weight->shape, a, sizeof a));
    if (index->shape.ndim >= VKG_MAX_DIMS)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: index is %s; the result would have more than %d dims", op,
                             vkg_shape_str(index->shape, b, sizeof b), VKG_MAX_DIMS);
    vkg_shape ys = index->shape;
    ys.d[ys.ndim++] = weight->shape.d[1];
    vkg_shape ds = VKG_SHAPE(vkg_numel(index), weight->shape.d[1]);
    vkg_tensor *y = index_read(VKG_OP_EMBEDDING, weight, weight->shape, weight->strides, 0, index, ys, ds, op);
    vkg_node *n = vkg_node_record(y, VKG_OP_EMBEDDING, (vkg_tensor *[]){ weight, index }, 2);
    if (n) n->axis = 0;
    return y;
}

/* The CSR inverse of a 1-D index (shaders/index_inverse.comp): one dispatch when the whole
 * counting sort fits one invocation's loop budget, else each of its steps cut into ranges. */
static vkg_status inverse(vkg_op op, const char *name, const vkg_tensor *ic, const vkg_tensor *off,
                          const vkg_tensor *list, int64_t M, int64_t N) {
    vkg_inverse_push ip = { (uint32_t)M, (uint32_t)N, (uint32_t)ic->offset, (uint32_t)off->offset,
                            (uint32_t)list->offset, 0, 0, 0 };
    vkg_dispatch_desc d = { .shader = "index_inverse", .op = op, .name = name, .local_size = 1, .groups = { 1 },
                            .bind = { off, list, ic }, .nout = 2, .push = &ip, .push_size = sizeof ip };
    uint64_t budget = vkg_loop_budget(), step = budget / 2;
    if (3 * (uint64_t)(N + 1) + 2 * (uint64_t)M + 8 <= budget) return vkg_dispatch(&d);
    const uint64_t len[6] = { 0, (uint64_t)N + 1, (uint64_t)M, (uint64_t)N, (uint64_t)M, (uint64_t)N };
    for (uint32_t phase = 1; phase <= 5; phase++) {
        ip.phase = phase;
        for (uint64_t r = 0; r < len[phase]; r += step) {
            /* phase 5 walks down: its ranges are taken from the top */
            uint64_t lo = phase == 5 ? (len[5] > r + step ? len[5] - r - step : 0) : r;
            uint64_t hi = phase == 5 ? len[5] - r : (r + step < len[phase] ? r + step : len[phase]);
            ip.lo = (uint32_t)lo;
            ip.hi = (uint32_t)hi;
            if (vkg_dispatch(&d) != VKG_OK) return vkg_last_status();
        }
        if (phase == 5 && len[5] == 0 && vkg_dispatch(&d) != VKG_OK) return vkg_last_status();
    }
    return VKG_OK;
}

vkg_tensor *vkg_index_grad(vkg_op op, vkg_shape xs, int axis, vkg_tensor *index, vkg_tensor *g) {
    const char *name = vkg_op_table[op].name;
    vkg_tensor *gc = vkg_contiguous(g), *ic = vkg_contiguous(index);
    vkg_tensor *dx = (gc && ic) ? vkg_tensor_alloc(xs, VKG_F32, false, name) : NULL;
    vkg_tensor *off = NULL, *list = NULL;
    int64_t n = dx ? vkg_numel(dx) : 0;
    if (!dx || n == 0) goto done;
    vkg_index_bw_push pc = { .n = (uint32_t)n, .ndim = (uint32_t)xs.ndim, .axis = (uint32_t)axis,
                             .dy_off = (uint32_t)gc->offset, .dx_off = (uint32_t)dx->offset };
    vkg_tensor *a = ic, *l = ic;
    if (op != VKG_OP_GATHER) {
        int64_t outer = 1, inner = 1, N = xs.d[axis], M = vkg_numel(ic);
        for (int i = 0; i < xs.ndim; i++) {
            if (i < axis) outer *= xs.d[i];
            else if (i > axis) inner *= xs.d[i];
        }
        off = vkg_tensor_alloc(VKG_SHAPE(N + 1), VKG_I32, false, name);
        list = vkg_tensor_alloc(VKG_SHAPE(M > 0 ? M : 1), VKG_I32, false, name);
        if (!off || !list) goto fail;
        if (inverse(op, name, ic, off, list, M, N) != VKG_OK) goto fail;
        pc.M = (uint32_t)M;
        pc.N = (uint32_t)N;
        pc.inner = (uint32_t)inner;
        pc.a_off = (uint32_t)off->offset;
        pc.list_off = (uint32_t)list->offset;
        a = off;
        l = list;
        (void)outer;
    } else {
        pc.a_off = (uint32_t)ic->offset;
        for (int i = 0; i < 8; i++) {
            pc.xs[i] = i < xs.ndim ? (uint32_t)xs.d[i] : 1;
            pc.is[i] = i < xs.ndim ? (uint32_t)ic->shape.d[i] : 1;
        }
    }
    /* A row's entries: up to M (index_select, embedding), or the index's length along axis
     * (gather). Rows with more entries than one invocation may loop over are summed in passes,
     * each adding the next klen entries in order to what the last pass left. */
    uint64_t entries = op == VKG_OP_GATHER ? (uint64_t)ic->shape.d[axis] : pc.M, budget = vkg_loop_budget();
    uint64_t klen = entries + 4 <= budget / 2 ? entries : budget / 2;
    if (op == VKG_OP_GATHER && vkg_loop_check(entries + 16, name, "one element's line of the index") != VKG_OK)
        goto fail;
    for (uint64_t k0 = 0; k0 == 0 || k0 < entries; k0 += klen) {
        pc.k0 = (uint32_t)k0;
        pc.klen = klen == entries ? 0u : (uint32_t)klen;
        vkg_index_bw_push p = pc;
        vkg_dispatch_desc d = { .shader = "index_backward", .op = op, .name = name,
                                .spec = { vkg_op_table[op].code }, .nspec = 1, .local_size = LOCAL,
                                .groups = { vkg_groups_for_cost((uint64_t)n, LOCAL,
                                                                (op == VKG_OP_GATHER ? entries : klen) + 16) },
                                .bind = { dx, gc, a, l }, .nout = 1, .push = &p, .push_size = sizeof p };
        if (vkg_texel_bind(&d, 2u, 2u)) { /* dy through a texel view */
            d.shader = "index_backward_tex";
            vkg_texel_rebase(&d, 1, (uint32_t *[]){ &p.dy_off }, 1);
        }
        if (vkg_dispatch(&d) != VKG_OK) goto fail;
        if (op == VKG_OP_GATHER || klen == entries) break;
    }
    goto done;
fail:
    vkg_free(dx);
    dx = NULL;
done:
    vkg_free(off);
    vkg_free(list);
    if (gc != g) vkg_free(gc);
    if (ic != index) vkg_free(ic);
    return dx;
}
