/* Inside the autograd layer: the engine's accumulation entry, used by the backward rules. */
#ifndef VKG_AUTOGRAD_INTERNAL_H
#define VKG_AUTOGRAD_INTERNAL_H

#include "runtime/runtime.h"

/* Adds gu (reduced to u's shape first, so broadcasting is undone) into u's gradient. */
vkg_status vkg_ag_accumulate(vkg_tensor *u, vkg_tensor *gu);
/* The gradient u has gathered so far inside this backward, when a rule may fold it into a
 * kernel that makes u's next contribution (layer norm's dx: acc + its own, the same float
 * additions as vkg_ag_accumulate's, one pass fewer): u inside the graph, not a split's hub (its
 * gradient is a buffer that later pieces write into), the sum f32, contiguous and u's shape.
 * NULL otherwise. The rule then hands the total to vkg_ag_set_sum. */
vkg_tensor *vkg_ag_partial_sum(const vkg_tensor *u);
/* u's gradient so far is now sum (which already includes what vkg_ag_partial_sum returned). */
void vkg_ag_set_sum(vkg_tensor *u, vkg_tensor *sum);
/* Sums g over broadcast dims so that it has shape s. */
vkg_tensor *vkg_sum_to_shape(vkg_tensor *g, vkg_shape s);
/* Runs the backward rule of t's node with dL/dt = g. */
vkg_status vkg_backward_rule(vkg_tensor *t, vkg_tensor *g);
/* The rules of each op group (lib/autograd/backward_<group>.c). */
vkg_status vkg_backward_nn(vkg_tensor *t, vkg_tensor *g);
vkg_status vkg_backward_conv(vkg_tensor *t, vkg_tensor *g);
vkg_status vkg_backward_seq(vkg_tensor *t, vkg_tensor *g);
/* A view of the buffer x's gradient will end up in, in x's own layout, when x is a permuted or
 * reshaped view of a split piece (attention's q, k and v of one projection): a rule that
 * writes x's gradient there (vkg_matmul_into) spares the split its copy. NULL when there is none
 * or the piece's place was handed out before; the caller then makes the gradient as usual
 * (lib/autograd/backward_seq.c). */
vkg_tensor *vkg_ag_grad_place(vkg_tensor *x);
/* The name of a node's op, for messages. */
const char *vkg_node_name(int op);

#endif
