/* Inside the autograd layer: the engine's accumulation entry, used by the backward rules. */
#ifndef VKG_AUTOGRAD_INTERNAL_H
#define VKG_AUTOGRAD_INTERNAL_H

#include "runtime/runtime.h"

/* Adds gu (reduced to u's shape first, so broadcasting is undone) into u's gradient. */
vkg_status vkg_ag_accumulate(vkg_tensor *u, vkg_tensor *gu);
/* Sums g over broadcast dims so that it has shape s. */
vkg_tensor *vkg_sum_to_shape(vkg_tensor *g, vkg_shape s);
/* Runs the backward rule of t's node with dL/dt = g. */
vkg_status vkg_backward_rule(vkg_tensor *t, vkg_tensor *g);
/* The rules of each op group (lib/autograd/backward_<group>.c). */
vkg_status vkg_backward_nn(vkg_tensor *t, vkg_tensor *g);
vkg_status vkg_backward_conv(vkg_tensor *t, vkg_tensor *g);
vkg_status vkg_backward_seq(vkg_tensor *t, vkg_tensor *g);
/* The name of a node's op, for messages. */
const char *vkg_node_name(int op);

#endif
