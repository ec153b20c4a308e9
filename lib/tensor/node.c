/* Graph recording, as data: an op that produced a tensor from inputs needing gradients leaves
 * a node on it (op, inputs, parameters). Grad mode (vkg_no_grad_begin/end) lives here because
 * every op asks it; the rules that turn nodes into gradients live in lib/autograd. */
#include <stdlib.h>

#include "runtime/runtime.h"

static _Thread_local int no_grad_depth;

void vkg_no_grad_begin(void) { no_grad_depth++; }
void vkg_no_grad_end(void) {
    if (no_grad_depth > 0) no_grad_depth--;
}
bool vkg_grad_enabled(void) { return no_grad_depth == 0; }

vkg_node *vkg_node_record(vkg_tensor *out, int op, vkg_tensor *const *in, int nin) {
    if (!out || no_grad_depth > 0) return NULL;
    bool needed = false;
    for (int i = 0; i < nin; i++) needed |= in[i] && in[i]->requires_grad;
    if (!needed) return NULL;
    vkg_node *n = vkg_recycled_calloc(&vkg_spare_nodes);
    if (!n) {
        /* the forward result is still right; only its gradient is lost, so say it */
        vkg_fail(VKG_ERR_OUT_OF_MEMORY, "autograd: out of host memory recording a node; gradients will be missing");
        return NULL;
    }
    n->op = op;
    n->nin = nin;
    for (int i = 0; i < nin; i++) {
        n->in[i] = in[i];
        if (in[i]) in[i]->refs++;
    }
    out->node = n;
    out->requires_grad = true;
    return n;
}

void vkg_node_release(vkg_node *n) {
    if (!n || n->released) return;
    n->released = true;
    for (int i = 0; i < n->nin; i++) {
        vkg_tensor_unref(n->in[i]);
        n->in[i] = NULL;
    }
}
