/* The autograd engine: leaves and their gradients, grad mode, and vkg_backward, which orders
 * the recorded nodes topologically and runs each one's rule (lib/autograd/backward.c) as
 * ordinary ops, accumulating gradients where a tensor is used more than once. */
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"

vkg_tensor *vkg_requires_grad(vkg_tensor *t, bool on) {
    if (!t) return NULL;
    char b[160];
    if (on && t->dtype != VKG_F32)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_requires_grad: tensor %s is %s; only f32 tensors have gradients",
                             vkg_shape_str(t->shape, b, sizeof b), vkg_dtype_name(t->dtype));
    if (!on && t->node)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_requires_grad: tensor %s was computed from tensors that need "
                                              "gradients; use vkg_detach for a copy without history",
                             vkg_shape_str(t->shape, b, sizeof b));
    t->requires_grad = on;
    return t;
}

bool vkg_tensor_requires_grad(const vkg_tensor *t) { return t && t->requires_grad; }
bool vkg_is_leaf(const vkg_tensor *t) { return t && !t->node; }
vkg_tensor *vkg_grad(const vkg_tensor *t) { return t ? t->grad : NULL; }

static void set_grad(vkg_tensor *t, vkg_tensor *g) {
    vkg_tensor *old = t->grad;
    t->grad = g;
    if (g) vkg_tensor_adopt(t, g);
    vkg_tensor_drop(old);
}

void vkg_zero_grad(vkg_tensor *t) {
    if (t) set_grad(t, NULL);
}

vkg_tensor *vkg_detach(vkg_tensor *t) {
    if (!t) return NULL;
    vkg_no_grad_begin();
    vkg_tensor *v = vkg_tensor_view_of(t, t->shape, t->strides, t->offset);
    vkg_no_grad_end();
    return v;
}

vkg_tensor *vkg_sum_to_shape(vkg_tensor *g, vkg_shape s) {
    /* the leading dims s lacks fold into one where that is a view, so they cost one reduction
     * (a bias's gradient over (B, T, N) is one pass, not a pass per dim) */
    if (g && g->shape.ndim > s.ndim + 1 && vkg_is_contiguous(g)) {
        int extra = g->shape.ndim - s.ndim;
        vkg_shape f = { .ndim = s.ndim + 1, .d = { 1 } };
        for (int i = 0; i < extra; i++) f.d[0] *= g->shape.d[i];
        for (int i = 0; i < s.ndim; i++) f.d[i + 1] = g->shape.d[extra + i];
        g = vkg_reshape(g, f);
    }
    while (g && g->shape.ndim > s.ndim) g = vkg_sum(g, 0, false);
    for (int i = 0; g && i < s.ndim; i++)
        if (s.d[i] == 1 && g->shape.d[i] != 1) g = vkg_sum(g, i, true);
    return g;
}

/* The caller's grad_output during a backward: the one gradient the engine did not make. */
static const vkg_storage *caller_grad;

/* Whether a leaf may keep gu's buffer as its gradient instead of a copy (a copy per parameter
 * per step was a fifth of the MLP's step on lavapipe). gu must be made by this backward (not
 * the caller's grad_output), lie contiguous over its whole buffer and not already be another
 * leaf's gradient (a gradient handed to two leaves is copied for the second). Other tensors on
 * the buffer are the rules' temporaries (a transposed view, the product before it): no one
 * writes them, since a rule adds in place only into a sum the engine made for it. */
static bool grad_adoptable(const vkg_tensor *u, const vkg_tensor *gu) {
    VkDeviceSize bytes = (VkDeviceSize)vkg_numel(gu) * vkg_dtype_size(gu->dtype);
    return !u->grad && gu->dtype == u->dtype && gu->storage && gu->storage != caller_grad &&
           !gu->storage->leaf_grad && gu->offset == 0 && vkg_is_contiguous(gu) && bytes <= gu->storage->size &&
           gu->storage->size - bytes < 256; /* not a small gradient pinning a large buffer */
}

vkg_tensor *vkg_ag_partial_sum(const vkg_tensor *u) {
    vkg_tensor *s = u->node && u->requires_grad ? u->gacc : NULL;
    if (!s || (u->node->op == VKG_OP_SPLIT && u->node->ip[1] == 0)) return NULL;
    if (s->dtype != VKG_F32 || !vkg_is_contiguous(s) || !vkg_shape_eq(&s->shape, &u->shape))
        return NULL;
    return s;
}

void vkg_ag_set_sum(vkg_tensor *u, vkg_tensor *sum) {
    u->gacc = sum;
    u->gacc_private = true; /* a new tensor, as vkg_ag_accumulate's sums are */
}

vkg_status vkg_ag_accumulate(vkg_tensor *u, vkg_tensor *gu) {
    if (!u || !u->requires_grad) return VKG_OK;
    if (!gu) return vkg_last_status() != VKG_OK ? vkg_last_status() : vkg_fail(VKG_ERR_INVALID, "autograd: no gradient");
    gu = vkg_sum_to_shape(gu, u->shape);
    if (!gu) return vkg_last_status();
    if (u->node) { /* inside the graph: summed here until its own rule runs */
        u->gacc_private = u->gacc != NULL; /* a sum is a new tensor; gu itself may be shared */
        if (u->gacc && gu->dtype == VKG_F16) /* an f16 tensor used twice: add in f32, store f16 */
            u->gacc = vkg_to_dtype(vkg_add(vkg_to_dtype(u->gacc, VKG_F32), vkg_to_dtype(gu, VKG_F32)), VKG_F16);
        else
            u->gacc = u->gacc ? vkg_add(u->gacc, gu) : gu;
        return u->gacc ? VKG_OK : vkg_last_status();
    }
    /* a leaf: its gradient outlives the step, so it is a tensor owned by the leaf */
    bool adopt = grad_adoptable(u, gu);
    vkg_tensor *g = adopt ? vkg_tensor_view_of(gu, gu->shape, gu->strides, 0) : u->grad ? vkg_add(u->grad, gu) : vkg_copy(gu);
    if (!g) return vkg_last_status();
    if (adopt) g->storage->leaf_grad = true;
    if (vkg_ndim(g) != u->shape.ndim) g = vkg_reshape(g, u->shape);
    set_grad(u, g);
    return VKG_OK;
}

typedef struct order {
    vkg_tensor **t;
    int n, cap;
} order;

static bool order_push(order *o, vkg_tensor *t) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 64;
        vkg_tensor **nt = realloc(o->t, (size_t)cap * sizeof *nt);
        if (!nt) return false;
        o->t = nt;
        o->cap = cap;
    }
    o->t[o->n++] = t;
    return true;
}

/* Post-order over the nodes that lead to root (inputs before the tensors made from them).
 * Refuses graphs already walked by a backward, and graphs whose tensors were freed. */
static vkg_status topo_order(vkg_tensor *root, order *post) {
    static int epoch;
    int mark = ++epoch;
    order stack = { 0 };
    vkg_status st = VKG_OK;
    char b[160];
    if (!order_push(&stack, root)) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_backward: out of host memory");
    root->node->mark = mark;
    while (stack.n > 0 && st == VKG_OK) {
        vkg_tensor *t = stack.t[stack.n - 1];
        vkg_node *n = t->node;
        if (n->released) {
            st = vkg_fail(VKG_ERR_INVALID, "vkg_backward: the graph through %s %s was already freed by an earlier "
                                           "backward (pass retain_graph to walk it twice)",
                          vkg_node_name(n->op), vkg_shape_str(t->shape, b, sizeof b));
            break;
        }
        bool pushed = false;
        for (int i = 0; i < n->nin && st == VKG_OK; i++) {
            vkg_tensor *u = n->in[i];
            if (!u) continue;
            if (u->dead) {
                st = vkg_fail(VKG_ERR_INVALID, "vkg_backward: %s %s needs an input %s that was freed (its scope "
                                               "ended); run backward inside the scope that made the graph",
                              vkg_node_name(n->op), vkg_shape_str(t->shape, b, sizeof b),
                              vkg_node_name(u->node ? u->node->op : VKG_NODE_DETACHED));
                break;
            }
            if (u->requires_grad && u->node && u->node->mark != mark) {
                u->node->mark = mark;
                if (!order_push(&stack, u)) st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_backward: out of host memory");
                pushed = true;
                break; /* depth first: come back to t when u is done */
            }
        }
        if (st == VKG_OK && !pushed) {
            stack.n--;
            if (!order_push(post, t)) st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_backward: out of host memory");
        }
    }
    free(stack.t);
    return st;
}

vkg_status vkg_backward_desc_run(vkg_tensor *y, const vkg_backward_desc *desc) {
    vkg_backward_desc d = desc ? *desc : (vkg_backward_desc){ 0 };
    if (!y) {
        vkg_status last = vkg_last_status();
        return last != VKG_OK ? last : vkg_fail(VKG_ERR_INVALID, "vkg_backward: the output is NULL");
    }
    if (!vkg_ready("vkg_backward")) return vkg_last_status();
    char b[160], c[160];
    if (y->dead) return vkg_fail(VKG_ERR_INVALID, "vkg_backward: the output was already freed");
    if (!y->requires_grad)
        return vkg_fail(VKG_ERR_INVALID, "vkg_backward: the output %s does not require grad (no tensor it was "
                                         "computed from has vkg_requires_grad)",
                        vkg_shape_str(y->shape, b, sizeof b));
    vkg_tensor *gy = d.grad_output;
    if (gy) {
        if (!vkg_shape_eq(&gy->shape, &y->shape) ||
            gy->dtype != VKG_F32)
            return vkg_fail(VKG_ERR_INVALID, "vkg_backward: grad_output is %s but the output is %s",
                            vkg_shape_str(gy->shape, b, sizeof b), vkg_shape_str(y->shape, c, sizeof c));
    } else if (vkg_numel(y) != 1) {
        return vkg_fail(VKG_ERR_INVALID, "vkg_backward: the output is %s; a backward from more than one element needs "
                                         "grad_output (vkg_backward_desc_run)",
                        vkg_shape_str(y->shape, b, sizeof b));
    }
    caller_grad = gy ? gy->storage : NULL;
    if (!y->node) { /* a leaf: its gradient is dL/dy itself */
        vkg_no_grad_begin();
        vkg_status st = vkg_ag_accumulate(y, gy ? gy : vkg_ones(y->shape));
        vkg_no_grad_end();
        caller_grad = NULL;
        return st;
    }
    order post = { 0 };
    vkg_status st = topo_order(y, &post);
    vkg_no_grad_begin();
    if (st == VKG_OK) {
        y->gacc = gy ? gy : vkg_ones(y->shape);
        y->gacc_private = false;
        if (!y->gacc) st = vkg_last_status();
    }
    for (int i = post.n - 1; i >= 0 && st == VKG_OK; i--) {
        vkg_tensor *t = post.t[i];
        vkg_tensor *g = t->gacc;
        t->gacc = NULL;
        t->gacc_private = false;
        if (g) st = vkg_backward_rule(t, g);
        t->gacc_preact = false;
    }
    vkg_no_grad_end();
    caller_grad = NULL;
    for (int i = 0; i < post.n; i++) {
        post.t[i]->gacc = NULL;
        post.t[i]->gacc_private = false;
        post.t[i]->gacc_preact = false;
        if (!d.retain_graph && st == VKG_OK) vkg_node_release(post.t[i]->node);
    }
    free(post.t);
    return st;
}

vkg_status vkg_backward(vkg_tensor *loss) { return vkg_backward_desc_run(loss, NULL); }
