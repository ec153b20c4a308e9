/* Reductions (sum, mean, max, min, argmax) over one axis or over all elements. The input is
 * seen as a contiguous (outer, R, inner) block; the order of accumulation is fixed, so results
 * are bitwise reproducible on a device. Few long rows get a workgroup each, many rows an
 * invocation each. */
#include "ops/ops.h"

/* Mirrors the Push block of shaders/reduce.comp: change both. */
typedef struct vkg_reduce_push {
    uint32_t outer, R, inner, in_off;
    uint32_t out_off;
    uint32_t chunk, nchunk;
    uint32_t idx_off;
} vkg_reduce_push;

#define LOCAL 128

enum { PER_INVOCATION = 0, PER_WORKGROUP = 1, SPLIT = 2, MERGE = 3, COLUMNS = 4 }; /* shaders/reduce.comp's variants */

/* The shader's VEC4: sums and means over contiguous rows of whole vec4s, or over columns four
 * at a time (COLUMNS, whole vec4s across) */
static bool cols_vec4(vkg_op op, uint32_t variant, const vkg_reduce_push *pc) {
    return variant == COLUMNS && (op == VKG_OP_SUM || op == VKG_OP_MEAN) && pc->inner % 4 == 0 && pc->in_off % 4 == 0;
}

static vkg_status reduce_dispatch(vkg_op op, const char *name, uint32_t variant, const vkg_reduce_push *pc,
                                  uint32_t groups, const vkg_tensor *y, const vkg_tensor *x, const vkg_tensor *yi,
                                  const vkg_tensor *xi) {
    bool vec4 = cols_vec4(op, variant, pc) ||
                (variant == PER_INVOCATION && (op == VKG_OP_SUM || op == VKG_OP_MEAN) && pc->inner == 1 &&
                 pc->R % 4 == 0 && pc->R > 0 && pc->in_off % 4 == 0);
    /* reduce_tex where the device reads texel views faster: X through an RGBA32F view for the
     * vec4 forms, else R32F, its offset counted from its block's start */
    vkg_reduce_push p = *pc;
    vkg_dispatch_desc d = { .shader = "reduce", .op = op, .name = name,
                            .spec = { vkg_op_table[op].code, variant, vec4 }, .nspec = 3,
                            .local_size = LOCAL, .groups = { groups }, .bind = { y, x, yi, xi },
                            .nout = 1, .push = &p, .push_size = sizeof p };
    if (vkg_texel_bind(&d, 2u, vec4 ? 0u : 2u)) {
        d.shader = "reduce_tex";
        vkg_texel_rebase(&d, 1, (uint32_t *[]){ &p.in_off }, 1);
    }
    return vkg_dispatch(&d);
}

/* On GPUs long rows are split into chunks of this many elements, 64 per lane, so that a few
 * outputs still give every multiprocessor work (the mean of 1024 x 1024 took 0.36 ms on an H100
 * in one workgroup, 0.012 ms in 128). lavapipe splits only rows too long for its loop budget:
 * there the chunks' extra barrier trees cost more than the second core gains (the same mean
 * 10-25% slower split, measured side by side with the other core busy). */
#define SPLIT_CHUNK ((uint64_t)LOCAL * 64)
/* COLUMNS: about this many invocations in the first pass, a few workgroups per core */
#define SPLIT_INVOCATIONS_CPU 2048

/* Rows split in chunks: a first pass reduces each chunk (a workgroup each, or for COLUMNS an
 * invocation each) to a (value, index) pair, a second combines them in chunk order. */
static vkg_status reduce_split(vkg_op op, const char *name, vkg_reduce_push pc, const vkg_tensor *y,
                               const vkg_tensor *x, uint64_t nout, uint64_t chunk, uint32_t first) {
    uint64_t nchunk = (pc.R + chunk - 1) / chunk;
    vkg_tensor *pv = vkg_tensor_alloc(VKG_SHAPE((int64_t)(nout * nchunk)), VKG_F32, false, name);
    vkg_tensor *pi = pv ? vkg_tensor_alloc(VKG_SHAPE((int64_t)(nout * nchunk)), VKG_I32, false, name) : NULL;
    vkg_status st = pi ? VKG_OK : vkg_last_status();
    if (st == VKG_OK) {
        vkg_reduce_push p1 = pc;
        p1.chunk = (uint32_t)chunk;
        p1.nchunk = (uint32_t)nchunk;
        p1.out_off = (uint32_t)pv->offset;
        p1.idx_off = (uint32_t)pi->offset;
        uint64_t lanes = cols_vec4(op, first, &p1) ? nout / 4 : nout; /* COLUMNS: invocations per chunk */
        uint32_t groups = first == SPLIT ? vkg_groups_for_cost(nout * nchunk, 1, chunk / LOCAL + 16)
                                         : vkg_groups_for_cost(lanes * nchunk, LOCAL, chunk + 4);
        st = reduce_dispatch(op, name, first, &p1, groups, pv, x, pi, pv);
    }
    if (st == VKG_OK) {
        vkg_reduce_push p2 = pc;
        p2.nchunk = (uint32_t)nchunk;
        p2.in_off = (uint32_t)pv->offset;
        p2.idx_off = (uint32_t)pi->offset;
        st = reduce_dispatch(op, name, MERGE, &p2, vkg_groups_for_cost(nout, LOCAL, nchunk + 4), y, pv, y, pi);
    }
    vkg_free(pv);
    vkg_free(pi);
    return st;
}

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
        vkg_reduce_push pc = { (uint32_t)outer, (uint32_t)R, (uint32_t)inner, (uint32_t)xc->offset, (uint32_t)y->offset, 0, 0, 0 };
        /* A workgroup per output pays off when outputs are too few to fill the device, and on
         * GPUs for contiguous rows (vkg_rows_by_workgroup); it is also needed for long rows:
         * lavapipe ends an invocation's loops after 65535 iterations, so one invocation must not
         * walk a long row alone (a workgroup splits it 128 ways); rows longer than 128 times
         * that, and on GPUs rows of 4 chunks or more, are split across workgroups. */
        uint64_t budget = vkg_loop_budget(), per_lane = ((uint64_t)R + LOCAL - 1) / LOCAL + 16;
        uint64_t long_row = budget / 2 < 32768 ? budget / 2 : 32768;
        uint32_t variant = (vkg_rows_by_workgroup((uint64_t)nout, (uint64_t)R, inner) || (uint64_t)R > long_row)
                               ? PER_WORKGROUP : PER_INVOCATION;
        bool gpu = vkg_ctx.info.type != VKG_DEVICE_CPU, over = per_lane > budget / 2;
        bool split = over || (gpu && (uint64_t)R >= 4 * SPLIT_CHUNK);
        uint64_t chunk = over ? (uint64_t)LOCAL * (budget / 2) : SPLIT_CHUNK;
        /* CPU devices: few outputs side by side (inner > 1) go in chunks of rows, an invocation
         * per (output, chunk), so that both cores work without barrier trees: the bias gradients
         * of the transformer, (2048, 128) -> (128), ran 1.2 ms in a workgroup per output */
        uint64_t lanes = cols_vec4(op, COLUMNS, &pc) ? (uint64_t)nout / 4 : (uint64_t)nout;
        uint64_t col_chunks = (SPLIT_INVOCATIONS_CPU + lanes - 1) / lanes;
        if (col_chunks > (uint64_t)R / 16) col_chunks = (uint64_t)R / 16;
        uint64_t col_chunk = col_chunks > 1 ? ((uint64_t)R + col_chunks - 1) / col_chunks : 0;
        /* (columns shorter than 256: the second pass costs more than the split saves) */
        bool columns = !gpu && inner > 1 && R >= 256 && col_chunk > 0 && col_chunk + 4 <= budget;
        /* CPU devices, many columns of short reductions (the CNN's per-image weight gradients
         * summed over a batch of 128): four columns an invocation, one vec4 load per row, in one
         * chunk that writes the final values (the split above always makes two chunks or more) */
        bool cols4 = !gpu && !columns && variant == PER_INVOCATION && inner > 1 && cols_vec4(op, COLUMNS, &pc);
        vkg_status st;
        if (cols4) {
            vkg_reduce_push p4 = pc;
            p4.chunk = (uint32_t)R, p4.nchunk = 1;
            uint32_t groups = vkg_groups_for_cost((uint64_t)nout / 4, LOCAL, (uint64_t)R + 4);
            st = reduce_dispatch(op, name, COLUMNS, &p4, groups, y, xc, y, y);
        } else if (columns)
            st = reduce_split(op, name, pc, y, xc, (uint64_t)nout, col_chunk, COLUMNS);
        else if (variant == PER_WORKGROUP && split)
            st = reduce_split(op, name, pc, y, xc, (uint64_t)nout, chunk, SPLIT);
        else if (variant == PER_WORKGROUP)
            st = reduce_dispatch(op, name, variant, &pc, vkg_groups_for_cost((uint64_t)nout, 1, per_lane), y, xc, y, y);
        else
            st = reduce_dispatch(op, name, variant, &pc, vkg_groups_for_cost((uint64_t)nout, LOCAL, (uint64_t)R + 2), y,
                                 xc, y, y);
        if (st != VKG_OK) {
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
