/* vkgrad autograd: tape-based reverse mode, like PyTorch. An op on tensors that require grad
 * records a node on its output; vkg_backward walks the nodes in reverse topological order and
 * runs each backward rule as ordinary ops on the device, in the same command stream.
 *
 *   vkg_tensor *w = vkg_keep(vkg_randn(VKG_SHAPE(784, 10), &(vkg_rand_desc){ .seed = 1 }));
 *   vkg_requires_grad(w, true);                     // a leaf: its gradient is kept in w
 *   vkg_scope_begin();                              // one training step
 *   vkg_tensor *loss = vkg_mean_all(vkg_relu(vkg_matmul(x, w)));
 *   vkg_backward(loss);                             // vkg_grad(w) is (784, 10)
 *   vkg_scope_end();                                // the graph and temporaries go
 *
 * Gradients accumulate (+=) across backward calls until vkg_zero_grad. A graph is freed by the
 * backward that walks it (pass retain_graph to walk it again), and a backward through a graph
 * whose tensors were freed (their scope ended) is refused with a message. */
#ifndef VKGRAD_AUTOGRAD_H
#define VKGRAD_AUTOGRAD_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

/* Marks a tensor (normally a leaf: a parameter) as needing its gradient. Returns t. */
vkg_tensor *vkg_requires_grad(vkg_tensor *t, bool on);
bool vkg_tensor_requires_grad(const vkg_tensor *t);
/* The accumulated gradient of a leaf (same shape), or NULL if none yet. Owned by t. */
vkg_tensor *vkg_grad(const vkg_tensor *t);
/* Frees t's gradient (the next backward starts from zero). */
void vkg_zero_grad(vkg_tensor *t);
bool vkg_is_leaf(const vkg_tensor *t);

typedef struct vkg_backward_desc {
    vkg_tensor *grad_output;  /* dL/dy, y's shape; NULL: y must have one element (dL/dy = 1) */
    bool retain_graph;        /* keep the graph for another backward                      */
} vkg_backward_desc;

vkg_status vkg_backward(vkg_tensor *loss);                           /* one-element loss */
vkg_status vkg_backward_desc_run(vkg_tensor *y, const vkg_backward_desc *desc);

/* Inside a no-grad region ops record nothing (evaluation, optimizer updates). Nests. */
void vkg_no_grad_begin(void);
void vkg_no_grad_end(void);
bool vkg_grad_enabled(void);
/* A view of t's values that records no history and needs no gradient. */
vkg_tensor *vkg_detach(vkg_tensor *t);

#endif
