/* Backward rules, written as ordinary ops (ggml's "backward as ops"): each takes dL/dy of a
 * node's output and adds dL/dx into its inputs through vkg_ag_accumulate, which also undoes
 * broadcasting. The matching C references are in lib/ops/reference.c (vkg_ref_*_backward). */
#include "autograd/autograd.h"
#include "ops/ops.h"

const char *vkg_node_name(int op) {
    if (op >= 0 && op < VKG_OP_COUNT) return vkg_op_table[op].name;
    switch (op) {
    case VKG_NODE_RESHAPE: return "reshape";
    case VKG_NODE_PERMUTE: return "permute";
    case VKG_NODE_EXPAND: return "expand";
    case VKG_NODE_SLICE: return "slice";
    default: return "a tensor";
    }
}

/* g with the reduced axis put back (size 1), expanded to shape s. */
static vkg_tensor *unreduce(vkg_tensor *g, const vkg_node *n, vkg_shape s) {
    if (n->axis != VKG_AXIS_ALL && !n->keepdim) g = vkg_unsqueeze(g, n->axis);
    return vkg_expand(g, s);
}

/* d/da of max(a, b): 1 where a wins, 1/2 on ties (PyTorch's rule), 0 elsewhere. */
static vkg_tensor *winner_mask(vkg_tensor *a, vkg_tensor *b, float s, bool scalar, bool is_max) {
    vkg_tensor *win = scalar ? (is_max ? vkg_gt_scalar(a, s) : vkg_lt_scalar(a, s)) : (is_max ? vkg_gt(a, b) : vkg_lt(a, b));
    vkg_tensor *tie = scalar ? vkg_eq_scalar(a, s) : vkg_eq(a, b);
    return vkg_add(win, vkg_mul_scalar(tie, 0.5f));
}

static vkg_status unary_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0], *gx = NULL;
    switch ((vkg_op)n->op) {
    case VKG_OP_NEG: case VKG_OP_ABS: case VKG_OP_EXP: case VKG_OP_LOG: case VKG_OP_SQRT: case VKG_OP_RSQRT:
    case VKG_OP_TANH: case VKG_OP_SIGMOID: case VKG_OP_RELU: case VKG_OP_GELU: case VKG_OP_SILU:
        gx = vkg_unary_grad((vkg_op)n->op, x, g); /* g f'(x), one fused pass */
        break;
    case VKG_OP_POW: gx = vkg_mul(g, vkg_mul_scalar(vkg_pow(x, n->s - 1.0f), n->s)); break;
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
    return vkg_ag_accumulate(x, gx);
}

static vkg_status binary_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *a = n->in[0], *b = n->scalar_form ? NULL : n->in[1];
    vkg_tensor *ga = NULL, *gb = NULL;
    float s = n->s;
    bool sc = n->scalar_form;
    switch ((vkg_op)n->op) {
    case VKG_OP_ADD: ga = g; gb = g; break;
    case VKG_OP_SUB: ga = g; gb = sc ? NULL : vkg_neg(g); break;
    case VKG_OP_MUL:
        ga = sc ? vkg_mul_scalar(g, s) : vkg_mul(g, b);
        gb = sc ? NULL : vkg_mul(g, a);
        break;
    case VKG_OP_DIV:
        ga = sc ? vkg_div_scalar(g, s) : vkg_div(g, b);
        gb = sc ? NULL : vkg_neg(vkg_div(vkg_mul(g, a), vkg_mul(b, b)));
        break;
    case VKG_OP_MAXIMUM:
    case VKG_OP_MINIMUM: {
        bool is_max = n->op == VKG_OP_MAXIMUM;
        ga = vkg_mul(g, winner_mask(a, b, s, sc, is_max));
        gb = sc ? NULL : vkg_mul(g, winner_mask(b, a, 0.0f, false, is_max));
        break;
    }
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
    vkg_status st = vkg_ag_accumulate(a, ga);
    if (st == VKG_OK && !sc) st = vkg_ag_accumulate(b, gb);
    return st;
}

static vkg_status reduce_rule(vkg_tensor *y, const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0];
    vkg_tensor *ge = unreduce(g, n, x->shape);
    int64_t R = n->axis == VKG_AXIS_ALL ? vkg_numel(x) : x->shape.d[n->axis];
    switch ((vkg_op)n->op) {
    case VKG_OP_SUM: return vkg_ag_accumulate(x, vkg_contiguous(ge));
    case VKG_OP_MEAN: return vkg_ag_accumulate(x, vkg_div_scalar(ge, (float)R));
    case VKG_OP_MAX:
    case VKG_OP_MIN: {
        /* the gradient goes to the extreme elements, shared evenly among ties (like amax) */
        vkg_tensor *mask = vkg_eq(x, unreduce(y, n, x->shape));
        vkg_tensor *count = n->axis == VKG_AXIS_ALL ? vkg_sum_all(mask) : vkg_sum(mask, n->axis, true);
        return vkg_ag_accumulate(x, vkg_div(vkg_mul(mask, ge), count));
    }
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
}

/* dB = A^T dC summed over the batch dims B does not have. For a 2-D B (a layer's weight) the
 * batch and row dims of A and dC fold into one K of a single product, instead of a product per
 * batch and a sum over them (the transformer's (B, T, C) activations). Where B is a transposed
 * view, as a weight (N, K) used as W^T is, dB is computed as (dC^T A)^T, so that its transpose,
 * the weight's gradient, is contiguous and the weight takes it without a copy. */
static vkg_tensor *matmul_grad_b(vkg_tensor *a2, vkg_tensor *b2, vkg_tensor *g2) {
    if (b2->shape.ndim != 2 || a2->shape.ndim < 2) return vkg_sum_to_shape(vkg_matmul(vkg_transpose(a2, -1, -2), g2), b2->shape);
    vkg_tensor *af = vkg_reshape(a2, VKG_SHAPE(-1, a2->shape.d[a2->shape.ndim - 1]));
    vkg_tensor *gf = vkg_reshape(g2, VKG_SHAPE(-1, g2->shape.d[g2->shape.ndim - 1]));
    bool transposed = b2->strides[0] == 1 && b2->strides[1] == b2->shape.d[0] && b2->shape.d[0] > 1;
    if (transposed) return vkg_transpose(vkg_matmul(vkg_transpose(gf, 0, 1), af), 0, 1);
    return vkg_matmul(vkg_transpose(af, 0, 1), gf);
}

/* The gradient of t (x @ y) written straight into the place it will end up in (a split
 * piece's, vkg_ag_grad_place), when t has the product's batch dims (nothing to sum back):
 * attention's dq, dk and dv land in qkv's gradient with no copy. A place whose rows are its
 * unit-stride dim (k's, seen as k^T) takes the transposed product, y^T x^T, in its transpose.
 * NULL with no error set when there is no place. */
static vkg_tensor *grad_in_place(vkg_tensor *t, vkg_tensor *x, vkg_tensor *y, const vkg_tensor *g) {
    int nd = t->shape.ndim;
    if (nd < 2 || g->shape.ndim != nd) return NULL;
    for (int i = 0; i < nd - 2; i++)
        if (t->shape.d[i] != g->shape.d[i]) return NULL;
    vkg_tensor *place = vkg_ag_grad_place(t);
    if (!place) return NULL;
    bool rows = place->strides[nd - 2] == 1 && place->shape.d[nd - 2] > 1 && place->strides[nd - 1] != 1;
    if (!rows) return vkg_matmul_into(place, x, y) ? place : NULL;
    vkg_tensor *pt = vkg_transpose(place, -1, -2);
    vkg_tensor *r = pt ? vkg_matmul_into(pt, vkg_transpose(y, -1, -2), vkg_transpose(x, -1, -2)) : NULL;
    vkg_free(pt);
    return r ? place : NULL;
}

/* GELU's backward folded into the product that makes its upstream gradient: when a is the
 * output h = gelu(z) of a matmul_bias_act (z saved as its in[3]) and the product a @ b being
 * differentiated is h's only consumer (one node reference; the owner's is the other, unless it
 * is gone) and nothing has added to h's gradient yet, dL/dz = (g b^T) gelu'(z) is computed in
 * the product's epilogue (vkg_matmul_gelu_grad) and handed to h's rule as such (gacc_preact),
 * instead of the product dL/dh written out and read back by a separate gelu' pass: the
 * transformer's MLP (fc2's input gradient). The same float operations, so the same bits.
 * Returns z, or NULL where the fold does not apply. */
static vkg_tensor *gelu_fold(const vkg_tensor *a, const vkg_tensor *g) {
    const vkg_node *n = a->node;
    if (!n || n->op != VKG_OP_MATMUL_BIAS_ACT || n->ip[0] != VKG_ACTIVATION_GELU || n->nin < 4 || !n->in[3])
        return NULL;
    if (a->gacc || a->dtype != VKG_F32 || g->dtype != VKG_F32 || a->refs != (a->dead ? 1 : 2)) return NULL;
    if (g->shape.ndim != a->shape.ndim) return NULL;
    for (int i = 0; i < a->shape.ndim - 1; i++) /* the product's batch and rows are a's: nothing to sum */
        if (g->shape.d[i] != a->shape.d[i]) return NULL;
    return n->in[3];
}

/* dA = dC B^T, dB = A^T dC, with 1-D operands promoted as the forward did and the batch
 * dims summed back to each operand's own. An f16 operand (the product of f16 operands is
 * f32) gets its gradient computed in f32 and stored as f16, like its values. */
static vkg_status matmul_grads(vkg_tensor *a, vkg_tensor *b, vkg_tensor *g) {
    vkg_tensor *a2 = a->shape.ndim == 1 ? vkg_unsqueeze(a, 0) : a;
    vkg_tensor *b2 = b->shape.ndim == 1 ? vkg_unsqueeze(b, -1) : b;
    vkg_shape full = g->shape;
    if (b->shape.ndim == 1) full.d[full.ndim++] = 1;
    if (a->shape.ndim == 1) { /* the M dim goes back before the last one */
        full.d[full.ndim] = full.d[full.ndim - 1];
        full.d[full.ndim - 1] = 1;
        full.ndim++;
    }
    vkg_tensor *g2 = vkg_reshape(g, full);
    vkg_status st = VKG_OK;
    if (a->requires_grad) {
        vkg_tensor *z = a == a2 ? gelu_fold(a, g2) : NULL;
        vkg_tensor *ga = z                                ? vkg_matmul_gelu_grad(g2, vkg_transpose(b2, -1, -2), z)
                         : a == a2 && a->dtype == VKG_F32 ? grad_in_place(a, g2, vkg_transpose(b2, -1, -2), g2)
                                                          : NULL;
        if (!ga && !z)
            ga = vkg_reshape(vkg_sum_to_shape(vkg_matmul(g2, vkg_transpose(b2, -1, -2)), a2->shape), a->shape);
        if (ga && ga->dtype != a->dtype) ga = vkg_to_dtype(ga, a->dtype);
        st = vkg_ag_accumulate(a, ga);
        a->gacc_preact = z && st == VKG_OK;
    }
    if (st == VKG_OK && b->requires_grad) {
        vkg_tensor *gb = b == b2 && b->dtype == VKG_F32 ? grad_in_place(b, vkg_transpose(a2, -1, -2), g2, g2) : NULL;
        if (!gb) gb = vkg_reshape(matmul_grad_b(a2, b2, g2), b->shape);
        if (gb && gb->dtype != b->dtype) gb = vkg_to_dtype(gb, b->dtype);
        st = vkg_ag_accumulate(b, gb);
    }
    return st;
}

/* y = act(z), z = a @ b + bias: dz = dy relu'(y) (y > 0 exactly where z > 0, so the output the
 * rule is given is the mask: nothing else was saved) or dy gelu'(z) (z saved by the kernel,
 * in[3]), then matmul's rule on dz, and dbias = dz summed over every dim but the last
 * (vkg_ag_accumulate sums what the bias was broadcast over). */
static vkg_status matmul_bias_act_rule(vkg_tensor *y, const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *gz = y->gacc_preact                    ? g /* gelu_fold: gelu' applied already */
                     : n->ip[0] == VKG_ACTIVATION_RELU ? vkg_unary_grad(VKG_OP_RELU, y, g)
                     : n->ip[0] == VKG_ACTIVATION_GELU ? vkg_unary_grad(VKG_OP_GELU, n->in[3], g)
                                                       : g;
    if (!gz) return vkg_last_status();
    vkg_status st = matmul_grads(n->in[0], n->in[1], gz);
    if (st == VKG_OK && n->in[2]) st = vkg_ag_accumulate(n->in[2], gz);
    if (st == VKG_OK && n->nin > 4 && n->in[4]) st = vkg_ag_accumulate(n->in[4], g); /* the residual */
    return st;
}

static vkg_status view_rule(const vkg_node *n, vkg_tensor *g) {
    vkg_tensor *x = n->in[0];
    switch (n->op) {
    case VKG_NODE_RESHAPE: return vkg_ag_accumulate(x, vkg_reshape(g, x->shape));
    case VKG_NODE_EXPAND: return vkg_ag_accumulate(x, g); /* accumulate sums the expanded dims */
    case VKG_NODE_PERMUTE: {
        int inv[VKG_MAX_DIMS];
        for (int i = 0; i < x->shape.ndim; i++) inv[n->ip[i]] = i;
        return vkg_ag_accumulate(x, vkg_permute(g, inv));
    }
    case VKG_NODE_SLICE: {
        int64_t len = g->shape.d[n->axis], end = n->ip[0] + (len ? (len - 1) * n->ip[1] + 1 : 0);
        if (!x->requires_grad) return VKG_OK;
        if (!x->node) { /* a leaf: zeros with g in the slice's place, accumulated as usual */
            vkg_tensor *gx = vkg_zeros(x->shape);
            vkg_tensor *v = gx ? vkg_slice(gx, n->axis, n->ip[0], end, n->ip[1]) : NULL;
            vkg_status st = v ? vkg_copy_into(v, g) : vkg_last_status();
            vkg_free(v);
            return st == VKG_OK ? vkg_ag_accumulate(x, gx) : st;
        }
        /* inside the graph: g is added into the slice's place of x's gradient, which is made
         * once, so the pieces of a split (q, k and v of one projection) cost one pass over
         * their own elements each, not a full-size zeros and add each */
        if (!x->gacc || !x->gacc_private) {
            vkg_tensor *base = x->gacc ? vkg_copy(x->gacc) : vkg_zeros(x->shape);
            if (!base) return vkg_last_status();
            x->gacc = base;
            x->gacc_private = true;
        }
        vkg_tensor *v = vkg_slice(x->gacc, n->axis, n->ip[0], end, n->ip[1]);
        vkg_tensor *sum = v ? vkg_add(v, g) : NULL;
        vkg_status st = sum ? vkg_copy_into(v, sum) : vkg_last_status();
        vkg_free(sum);
        vkg_free(v);
        return st;
    }
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
}

vkg_status vkg_backward_rule(vkg_tensor *t, vkg_tensor *g) {
    const vkg_node *n = t->node;
    if (n->op >= VKG_NODE_RESHAPE) return view_rule(n, g);
    if (n->op == VKG_OP_TO_DTYPE) return vkg_ag_accumulate(n->in[0], vkg_to_dtype(g, n->in[0]->dtype));
    switch (vkg_op_table[n->op].kind) {
    case VKG_KIND_UNARY: return unary_rule(n, g);
    case VKG_KIND_BINARY: return binary_rule(n, g);
    case VKG_KIND_TERNARY: { /* where(c, a, b): c has no gradient */
        vkg_tensor *zero = vkg_zeros(VKG_SCALAR);
        vkg_status st = vkg_ag_accumulate(n->in[1], vkg_where(n->in[0], g, zero));
        return st == VKG_OK ? vkg_ag_accumulate(n->in[2], vkg_where(n->in[0], zero, g)) : st;
    }
    case VKG_KIND_REDUCE: return reduce_rule(t, n, g);
    case VKG_KIND_MATMUL:
        return n->op == VKG_OP_MATMUL_BIAS_ACT ? matmul_bias_act_rule(t, n, g) : matmul_grads(n->in[0], n->in[1], g);
    case VKG_KIND_COPY: return vkg_ag_accumulate(n->in[0], g);
    case VKG_KIND_NN: return vkg_backward_nn(t, g);
    case VKG_KIND_CONV: return vkg_backward_conv(t, g);
    case VKG_KIND_SEQ: return vkg_backward_seq(t, g);
    default: return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(n->op));
    }
}
