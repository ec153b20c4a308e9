/* Elementwise ops (unary, binary with NumPy broadcasting, where, scalar forms), copy/contiguous,
 * fill and arange. Inputs are read in place through strides: the dims of the output and every
 * input are coalesced to at most 4, and only a view that cannot be coalesced that far is first
 * gathered by the 8-dim copy shader. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

/* Mirrors the Push block of shaders/elementwise.glsl: change both. */
typedef struct vkg_elementwise_push {
    uint32_t n, out_off, unused, pad;
    uint32_t shape[4];
    int32_t st[3][4];
    uint32_t off[4];
    float s[4];
} vkg_elementwise_push;

/* Mirrors the Push block of shaders/copy.comp: change both. */
typedef struct vkg_copy_push {
    uint32_t n, ndim, in_off, out_off;
    uint32_t shape[8];
    int32_t st[8];
    int32_t ost[8];
} vkg_copy_push;

/* Mirrors the Push block of shaders/fill.comp: change both. */
typedef struct vkg_fill_push {
    uint32_t n, out_off;
    float value, step;
} vkg_fill_push;

_Static_assert(sizeof(vkg_elementwise_push) <= VKG_PUSH_SIZE, "push constants too large");
_Static_assert(sizeof(vkg_copy_push) <= VKG_PUSH_SIZE, "push constants too large");

#define LOCAL 128

/* ---- shared checks ---------------------------------------------------------------------------- */
const char *vkg_desc(const vkg_tensor *t, char *buf, size_t size) {
    char s[160];
    snprintf(buf, size, "%s %s", vkg_shape_str(t->shape, s, sizeof s), vkg_dtype_name(t->dtype));
    return buf;
}

bool vkg_require_f32(const vkg_tensor *t, const char *op, const char *arg) {
    if (t->dtype == VKG_F32) return true;
    char b[192];
    vkg_fail(VKG_ERR_INVALID, "%s: %s is %s; this op takes f32", op, arg, vkg_desc(t, b, sizeof b));
    return false;
}

bool vkg_norm_axis(int *axis, int ndim, const char *op, vkg_shape s) {
    int a = *axis;
    if (ndim == 0 || a < -ndim || a >= ndim) {
        char b[160];
        vkg_fail(VKG_ERR_INVALID, "%s: axis %d is out of range for shape %s (%d dims)", op, a,
                 vkg_shape_str(s, b, sizeof b), ndim);
        return false;
    }
    *axis = a < 0 ? a + ndim : a;
    return true;
}

bool vkg_broadcast_shape(vkg_shape a, vkg_shape b, vkg_shape *out) {
    int nd = a.ndim > b.ndim ? a.ndim : b.ndim;
    vkg_shape r = { .ndim = nd };
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a.ndim), ib = i - (nd - b.ndim);
        int64_t da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
        if (da != db && da != 1 && db != 1) return false;
        r.d[i] = da == 1 ? db : da;
    }
    if (out) *out = r;
    return true;
}

/* ---- copy ------------------------------------------------------------------------------------ */
/* Records dst[...] = src[...] elementwise for two views of one shape (copy.comp). Size-1 dims
 * are dropped and dims contiguous with each other in both views merged, so the shader walks as
 * few dims as it can; views whose innermost dims run together in whole vec4 go four words at a
 * time (copy_vec4). */
static vkg_status copy_views(vkg_tensor *dst, vkg_tensor *src, const char *name) {
    int64_t n = vkg_numel(dst);
    if (n == 0) return VKG_OK;
    vkg_copy_push pc = { .n = (uint32_t)n, .in_off = (uint32_t)src->offset, .out_off = (uint32_t)dst->offset };
    int nd = 0;
    for (int i = 0; i < src->shape.ndim; i++) {
        int64_t size = src->shape.d[i], st = src->strides[i], ost = dst->strides[i];
        if (size == 1) continue;
        if (nd > 0 && pc.st[nd - 1] == st * size && pc.ost[nd - 1] == ost * size) {
            pc.shape[nd - 1] *= (uint32_t)size;
            pc.st[nd - 1] = (int32_t)st;
            pc.ost[nd - 1] = (int32_t)ost;
            continue;
        }
        pc.shape[nd] = (uint32_t)size;
        pc.st[nd] = (int32_t)st;
        pc.ost[nd] = (int32_t)ost;
        nd++;
    }
    if (nd == 0) { /* one element */
        pc.shape[0] = 1;
        pc.st[0] = pc.ost[0] = 1;
        nd = 1;
    }
    for (int i = nd; i < VKG_MAX_DIMS; i++) pc.shape[i] = 1;
    pc.ndim = (uint32_t)nd;
    /* copy_vec4: the innermost dim runs in both views, in whole vec4 (or is the only dim) */
    int last = nd - 1;
    bool vec4 = pc.st[last] == 1 && pc.ost[last] == 1 && (nd == 1 || pc.shape[last] % 4 == 0) && pc.in_off % 4 == 0 &&
                pc.out_off % 4 == 0 && n >= 4;
    for (int i = 0; i < last; i++)
        if (pc.st[i] % 4 != 0 || pc.ost[i] % 4 != 0) vec4 = false;
    uint64_t items = vec4 ? (uint64_t)n / 4 : (uint64_t)n;
    return vkg_dispatch(&(vkg_dispatch_desc){ .shader = vec4 ? "copy_vec4" : "copy", .op = VKG_OP_COPY, .name = name,
                                              .local_size = LOCAL, .groups = { vkg_groups_for(items, LOCAL) },
                                              .bind = { dst, src }, .nout = 1, .push = &pc, .push_size = sizeof pc });
}

vkg_tensor *vkg_copy(vkg_tensor *t) {
    if (!t) return NULL;
    if (t->dtype == VKG_U8)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_copy: u8 tensors cannot be copied on the device yet");
    vkg_tensor *y = vkg_tensor_alloc(t->shape, t->dtype, false, "vkg_copy");
    if (!y) return NULL;
    /* f16: cast.comp gathers halves (a word of output per invocation); copy.comp moves words */
    vkg_status st = t->dtype == VKG_F16 ? vkg_cast_into(y, t, VKG_OP_COPY, "vkg_copy") : copy_views(y, t, "vkg_copy");
    if (st != VKG_OK) {
        vkg_free(y);
        return NULL;
    }
    vkg_node_record(y, VKG_OP_COPY, &t, 1);
    return y;
}

vkg_status vkg_copy_into(vkg_tensor *dst, vkg_tensor *src) {
    char a[192], b[192];
    if (dst->dtype != src->dtype || dst->shape.ndim != src->shape.ndim || vkg_numel(dst) != vkg_numel(src))
        return vkg_fail(VKG_ERR_INVALID, "vkg_copy_into: destination %s and source %s differ", vkg_desc(dst, a, sizeof a),
                        vkg_desc(src, b, sizeof b));
    /* copy.comp moves 32-bit words: an f16 (or u8) view is not one element a word, and a strided
     * f16 destination would have two invocations writing halves of one word */
    if (vkg_dtype_size(dst->dtype) != 4)
        return vkg_fail(VKG_ERR_INVALID, "vkg_copy_into: %s tensors cannot be written into a view",
                        vkg_dtype_name(dst->dtype));
    return copy_views(dst, src, "vkg_copy_into");
}

vkg_tensor *vkg_contiguous(vkg_tensor *t) {
    if (!t) return NULL;
    return vkg_is_contiguous(t) ? t : vkg_copy(t);
}

/* ---- fill, arange -------------------------------------------------------------------------- */
static vkg_tensor *fill(vkg_tensor *t, uint32_t code, float value, float step, const char *op) {
    if (!t) return NULL;
    if (!vkg_require_f32(t, op, "the tensor")) return NULL;
    if (!vkg_is_contiguous(t)) return vkg_fail_null(VKG_ERR_INVALID, "%s: the tensor is a non-contiguous view", op);
    int64_t n = vkg_numel(t);
    if (n == 0) return t;
    vkg_fill_push pc = { (uint32_t)n, (uint32_t)t->offset, value, step };
    bool vec4 = t->offset % 4 == 0 && n >= 4; /* fill_vec4: four elements a store */
    uint64_t items = vec4 ? (uint64_t)n / 4 : (uint64_t)n;
    if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = vec4 ? "fill_vec4" : "fill", .op = code ? VKG_OP_ARANGE : VKG_OP_FILL,
                                           .name = op, .spec = { code }, .nspec = 1, .local_size = LOCAL,
                                           .groups = { vkg_groups_for(items, LOCAL) }, .bind = { t }, .nout = 1,
                                           .push = &pc, .push_size = sizeof pc }) != VKG_OK)
        return NULL;
    return t;
}

vkg_tensor *vkg_fill_(vkg_tensor *t, float value) { return fill(t, 0, value, 0.0f, "vkg_fill_"); }

vkg_tensor *vkg_arange(float start, float stop, float step) {
    if (step == 0.0f || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_arange: start %g, stop %g, step %g do not make a range", start, stop,
                             step);
    double count = ceil(((double)stop - start) / step);
    if (count < 0) count = 0;
    if (count > 1e9) return vkg_fail_null(VKG_ERR_TOO_LARGE, "vkg_arange: %.0f elements is too many", count);
    vkg_tensor *t = vkg_tensor_alloc(VKG_SHAPE((int64_t)count), VKG_F32, false, "vkg_arange");
    vkg_tensor *r = fill(t, 1, start, step, "vkg_arange");
    if (!r) vkg_free(t);
    return r;
}

/* ---- the elementwise engine ------------------------------------------------------------------ */
typedef struct operands {
    int nin;
    vkg_tensor *in[3];
    vkg_shape out;
    int nd;                      /* coalesced dims                                     */
    int64_t shape[VKG_MAX_DIMS]; /* coalesced output shape                             */
    int64_t st[3][VKG_MAX_DIMS]; /* coalesced input strides (0 where broadcast)        */
} operands;

/* Broadcast strides of every input against out, then drop size-1 dims and merge dims that
 * are contiguous with each other in every input. */
static void coalesce(operands *o) {
    int nd = o->out.ndim;
    bool dense = nd > 0;
    for (int j = 0; j < o->nin && dense; j++) dense = vkg_shape_eq(&o->in[j]->shape, &o->out) && vkg_is_contiguous(o->in[j]);
    int64_t n = vkg_shape_numel(o->out);
    if (dense && n > 1) { /* the common case, every input laid out as the output: one run */
        o->nd = 1;
        o->shape[0] = n;
        for (int j = 0; j < o->nin; j++) o->st[j][0] = 1;
        return;
    }
    int64_t shape[VKG_MAX_DIMS], st[3][VKG_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < nd; i++) {
        if (o->out.d[i] == 1) continue;
        shape[k] = o->out.d[i];
        for (int j = 0; j < o->nin; j++) {
            const vkg_tensor *t = o->in[j];
            int ti = i - (nd - t->shape.ndim);
            st[j][k] = (ti < 0 || t->shape.d[ti] == 1) ? 0 : t->strides[ti];
        }
        k++;
    }
    /* merge from the innermost dim outwards */
    int m = 0;
    for (int i = 0; i < k; i++) {
        if (m > 0) {
            bool merge = true;
            for (int j = 0; j < o->nin; j++)
                if (o->st[j][m - 1] != st[j][i] * shape[i]) merge = false;
            if (merge) {
                o->shape[m - 1] *= shape[i];
                for (int j = 0; j < o->nin; j++) o->st[j][m - 1] = st[j][i];
                continue;
            }
        }
        o->shape[m] = shape[i];
        for (int j = 0; j < o->nin; j++) o->st[j][m] = st[j][i];
        m++;
    }
    o->nd = m;
}

/* A shader's modules (shaders/elementwise.glsl): an element or (vec4) four an item, reading
 * storage buffers or (tex) texel views. */
typedef struct kernel {
    const char *one, *vec4, *one_tex, *vec4_tex;
} kernel;
static const kernel UNARY = { "unary", "unary_vec4", "unary_tex", "unary_vec4_tex" },
                    BINARY = { "binary", "binary_vec4", "binary_tex", "binary_vec4_tex" },
                    UNARY_BACKWARD = { "unary_backward", "unary_backward_vec4", "unary_backward_tex",
                                       "unary_backward_vec4_tex" };

/* Whether each item of the vec4 modules can be 4 elements of one innermost run: the conditions
 * of shaders/elementwise.glsl, on the coalesced operands and an output at offset out_off. */
static bool vec4_items(const operands *o, int64_t n, int64_t out_off) {
    int last = o->nd - 1;
    if (n < 4 || last < 0 || out_off % 4 != 0) return false;
    if (last > 0 && o->shape[last] % 4 != 0) return false; /* one dim: the tail loop takes n % 4 */
    for (int j = 0; j < o->nin; j++) {
        if (o->st[j][last] == 0) continue; /* constant along the run: one float, repeated */
        if (o->st[j][last] != 1 || o->in[j]->offset % 4 != 0) return false;
        for (int d = 0; d < last; d++)
            if (o->st[j][d] % 4 != 0) return false;
    }
    return true;
}

static vkg_tensor *run_elementwise(kernel k, vkg_op op, const char *name, operands *o, uint32_t flags, float s0) {
    coalesce(o);
    /* Temporaries are freed right after the dispatch is recorded: the stream orders any later
     * reuse of their bytes after it (DESIGN.md, stream-ordered reuse). */
    vkg_tensor *tmp[3] = { NULL, NULL, NULL };
    vkg_tensor *y = NULL;
    if (o->nd > 4) {
        /* a view too tangled for 4 strided dims: gather each input into the output's shape */
        for (int j = 0; j < o->nin; j++) {
            vkg_tensor *e = vkg_expand(o->in[j], o->out);
            tmp[j] = e ? vkg_copy(e) : NULL;
            vkg_free(e);
            if (!tmp[j]) goto done;
            o->in[j] = tmp[j];
        }
        coalesce(o);
    }
    y = vkg_tensor_alloc(o->out, VKG_F32, false, name);
    int64_t n = vkg_numel(y);
    if (!y || n == 0) goto done;
    vkg_elementwise_push pc = { .n = (uint32_t)n, .out_off = (uint32_t)y->offset, .shape = { 1, 1, 1, 1 },
                                .s = { s0 } };
    for (int d = 4 - o->nd; d < 4; d++) { /* right-align the coalesced dims, outer ones 1 */
        int src = o->nd - 4 + d;
        pc.shape[d] = (uint32_t)o->shape[src];
        for (int j = 0; j < o->nin; j++) pc.st[j][d] = (int32_t)o->st[j][src];
    }
    for (int j = 0; j < o->nin; j++) pc.off[j] = (uint32_t)o->in[j]->offset;
    bool vec4 = vec4_items(o, n, y->offset);
    uint64_t items = vec4 ? (uint64_t)n / 4 : (uint64_t)n;
    /* the layout constant (shaders/elementwise.glsl): bit 3 the scalar form; bit j an input of
     * a vec4 module that is constant along the run (the scalar modules ignore those bits: set
     * there, they would only compile more pipelines) */
    uint32_t layout = flags & 1u ? 8u : 0u;
    for (int j = 0; j < o->nin && vec4; j++)
        if (o->st[j][o->nd - 1] == 0) layout |= 1u << j;
    vkg_dispatch_desc d = { .shader = vec4 ? k.vec4 : k.one, .op = op, .name = name,
                            .spec = { vkg_op_table[op].code, layout }, .nspec = 2, .local_size = LOCAL,
                            .groups = { vkg_groups_for(items, LOCAL) }, .nout = 1,
                            .push = &pc, .push_size = sizeof pc };
    d.bind[0] = y;
    if (op == VKG_OP_WHERE) { /* binding order y, a, b, cond; the shader's inputs are (a, b, cond) */
        d.bind[1] = o->in[0];
        d.bind[2] = o->in[1];
        d.bind[3] = o->in[2];
    } else if (o->nin == 2) {
        d.bind[1] = o->in[0];
        d.bind[2] = o->in[1];
        d.bind[3] = o->in[0]; /* the shader declares the condition binding for every op */
    } else {
        d.bind[1] = o->in[0];
        if (k.one == BINARY.one) { /* scalar form: b is pc.s.x */
            d.bind[2] = o->in[0];
            d.bind[3] = o->in[0];
        }
    }
    /* the _tex modules where the device reads texel views faster: every input binding a view,
     * its offset counted from its block's start */
    uint32_t inputs = d.bind[3] ? 0xeu : d.bind[2] ? 0x6u : 0x2u;
    if (vkg_texel_bind(&d, inputs, vec4 ? 0u : inputs)) {
        d.shader = vec4 ? k.vec4_tex : k.one_tex;
        /* input j is binding 1 + j */
        vkg_texel_rebase(&d, 1, (uint32_t *[]){ &pc.off[0], &pc.off[1], &pc.off[2] }, o->nin);
    }
    if (vkg_dispatch(&d) != VKG_OK) {
        vkg_free(y);
        y = NULL;
    }
done:
    for (int j = 0; j < 3; j++) vkg_free(tmp[j]);
    return y;
}

static bool op_is(vkg_op op, vkg_op_kind kind) { return (unsigned)op < VKG_OP_COUNT && vkg_op_table[op].kind == kind; }

static vkg_tensor *unary(vkg_op op, vkg_tensor *x, float s) {
    const char *name = vkg_op_table[op].name;
    if (!x || !vkg_require_f32(x, name, "x")) return NULL;
    operands o = { .nin = 1, .in = { x }, .out = x->shape };
    vkg_tensor *y = run_elementwise(UNARY, op, name, &o, 0, s);
    vkg_node *n = vkg_node_record(y, op, &x, 1);
    if (n) n->s = s;
    return y;
}

/* dx = g f'(x) in one fused pass (shaders/unary_backward.comp), for every unary op but pow. */
vkg_tensor *vkg_unary_grad(vkg_op op, vkg_tensor *x, vkg_tensor *g) {
    static char names[VKG_OP_COUNT][48];
    if (!x || !g) return NULL;
    if (!op_is(op, VKG_KIND_UNARY) || op == VKG_OP_POW)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_unary_grad: op %d has no fused backward", (int)op);
    if (!names[op][0]) snprintf(names[op], sizeof names[op], "%s backward", vkg_op_table[op].name);
    operands o = { .nin = 2, .in = { x, g }, .out = x->shape };
    return run_elementwise(UNARY_BACKWARD, op, names[op], &o, 0, 0.0f);
}

/* Comparisons have no gradient: their outputs never record a node. */
static bool differentiable(vkg_op op) { return op != VKG_OP_LT && op != VKG_OP_GT && op != VKG_OP_EQ; }

vkg_tensor *vkg_unary(vkg_op op, vkg_tensor *x) {
    if (!op_is(op, VKG_KIND_UNARY) || op == VKG_OP_POW)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_unary: op %d is not a parameterless unary op", (int)op);
    return unary(op, x, 0.0f);
}

vkg_tensor *vkg_pow(vkg_tensor *x, float exponent) { return unary(VKG_OP_POW, x, exponent); }

vkg_tensor *vkg_binary(vkg_op op, vkg_tensor *a, vkg_tensor *b) {
    if (!op_is(op, VKG_KIND_BINARY)) return vkg_fail_null(VKG_ERR_INVALID, "vkg_binary: op %d is not a binary op", (int)op);
    if (!a || !b) return NULL;
    const char *name = vkg_op_table[op].name;
    if (!vkg_require_f32(a, name, "a") || !vkg_require_f32(b, name, "b")) return NULL;
    operands o = { .nin = 2, .in = { a, b } };
    if (vkg_shape_eq(&a->shape, &b->shape)) o.out = a->shape;
    else if (!vkg_broadcast_shape(a->shape, b->shape, &o.out)) {
        char x[160], y[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_%s: a is %s but b is %s: they do not broadcast", name,
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y));
    }
    vkg_tensor *y = run_elementwise(BINARY, op, name, &o, 0, 0.0f);
    if (differentiable(op)) vkg_node_record(y, op, (vkg_tensor *[]){ a, b }, 2);
    return y;
}

vkg_tensor *vkg_binary_scalar(vkg_op op, vkg_tensor *a, float s) {
    if (!op_is(op, VKG_KIND_BINARY))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_binary_scalar: op %d is not a binary op", (int)op);
    if (!a) return NULL;
    const char *name = vkg_op_table[op].name;
    if (!vkg_require_f32(a, name, "a")) return NULL;
    operands o = { .nin = 1, .in = { a }, .out = a->shape };
    vkg_tensor *y = run_elementwise(BINARY, op, name, &o, 1u, s);
    vkg_node *n = differentiable(op) ? vkg_node_record(y, op, &a, 1) : NULL;
    if (n) {
        n->s = s;
        n->scalar_form = true;
    }
    return y;
}

vkg_tensor *vkg_where(vkg_tensor *cond, vkg_tensor *a, vkg_tensor *b) {
    if (!cond || !a || !b) return NULL;
    if (!vkg_require_f32(cond, "where", "cond") || !vkg_require_f32(a, "where", "a") || !vkg_require_f32(b, "where", "b"))
        return NULL;
    operands o = { .nin = 3, .in = { a, b, cond } };
    vkg_shape ab;
    if (!vkg_broadcast_shape(a->shape, b->shape, &ab) || !vkg_broadcast_shape(ab, cond->shape, &o.out)) {
        char x[160], y[160], z[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_where: cond %s, a %s and b %s do not broadcast",
                             vkg_shape_str(cond->shape, z, sizeof z), vkg_shape_str(a->shape, x, sizeof x),
                             vkg_shape_str(b->shape, y, sizeof y));
    }
    vkg_tensor *y = run_elementwise(BINARY, VKG_OP_WHERE, "where", &o, 0, 0.0f);
    vkg_node_record(y, VKG_OP_WHERE, (vkg_tensor *[]){ cond, a, b }, 3);
    return y;
}

#define UNARY_FN(name, NAME) \
    vkg_tensor *vkg_##name(vkg_tensor *x) { return unary(VKG_OP_##NAME, x, 0.0f); }
UNARY_FN(neg, NEG)
UNARY_FN(abs, ABS)
UNARY_FN(exp, EXP)
UNARY_FN(log, LOG)
UNARY_FN(sqrt, SQRT)
UNARY_FN(rsqrt, RSQRT)
UNARY_FN(tanh, TANH)
UNARY_FN(sigmoid, SIGMOID)
UNARY_FN(relu, RELU)
UNARY_FN(gelu, GELU)
UNARY_FN(silu, SILU)

#define BINARY_FN(name, NAME)                                                                       \
    vkg_tensor *vkg_##name(vkg_tensor *a, vkg_tensor *b) { return vkg_binary(VKG_OP_##NAME, a, b); } \
    vkg_tensor *vkg_##name##_scalar(vkg_tensor *a, float s) { return vkg_binary_scalar(VKG_OP_##NAME, a, s); }
BINARY_FN(add, ADD)
BINARY_FN(sub, SUB)
BINARY_FN(mul, MUL)
BINARY_FN(div, DIV)
BINARY_FN(maximum, MAXIMUM)
BINARY_FN(minimum, MINIMUM)
BINARY_FN(lt, LT)
BINARY_FN(gt, GT)
BINARY_FN(eq, EQ)
