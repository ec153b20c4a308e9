/* Inside the library: the conv group's backward kernels (used by lib/autograd/backward_conv.c)
 * and how its ops keep their options in a graph node's ip[]. */
#ifndef VKG_CONV_INTERNAL_H
#define VKG_CONV_INTERNAL_H

#include "runtime/runtime.h"

/* conv2d options in node->ip: stride, padding, dilation (h, w each), groups. */
static inline void vkg_conv_desc_store(int64_t *ip, const vkg_conv2d_desc *d) {
    ip[0] = d->stride[0], ip[1] = d->stride[1], ip[2] = d->padding[0], ip[3] = d->padding[1];
    ip[4] = d->dilation[0], ip[5] = d->dilation[1], ip[6] = d->groups;
}
static inline vkg_conv2d_desc vkg_conv_desc_load(const int64_t *ip) {
    return (vkg_conv2d_desc){ .stride = { (int)ip[0], (int)ip[1] }, .padding = { (int)ip[2], (int)ip[3] },
                              .dilation = { (int)ip[4], (int)ip[5] }, .groups = (int)ip[6] };
}
/* pooling options in node->ip: kernel, stride, padding (h, w each), relu. */
static inline void vkg_pool_desc_store(int64_t *ip, const vkg_pool2d_desc *d) {
    ip[0] = d->kernel[0], ip[1] = d->kernel[1], ip[2] = d->stride[0], ip[3] = d->stride[1];
    ip[4] = d->padding[0], ip[5] = d->padding[1], ip[6] = d->relu;
}
static inline vkg_pool2d_desc vkg_pool_desc_load(const int64_t *ip) {
    return (vkg_pool2d_desc){ .kernel = { (int)ip[0], (int)ip[1] }, .stride = { (int)ip[2], (int)ip[3] },
                              .padding = { (int)ip[4], (int)ip[5] }, .relu = ip[6] != 0 };
}

/* dL/dx (xs) of conv2d from g = dL/dy and the weight (transposed convolution). */
vkg_tensor *vkg_conv2d_grad_input(vkg_tensor *g, vkg_tensor *weight, vkg_shape xs, const vkg_conv2d_desc *d);
/* dL/dweight (ws) of conv2d from g and x (a reduction over N and the output pixels); cols: the
 * forward's unfolded x (the node's fourth input), or NULL. */
vkg_tensor *vkg_conv2d_grad_weight(vkg_tensor *g, vkg_tensor *x, vkg_tensor *cols, vkg_shape ws,
                                   const vkg_conv2d_desc *d);
/* dL/dx (xs) of max_pool2d (from the saved indices; -1, where .relu's floor won, routes
 * nothing) or avg_pool2d (indices NULL). */
vkg_tensor *vkg_pool2d_grad_input(vkg_op op, vkg_tensor *g, vkg_tensor *indices, vkg_shape xs, const vkg_pool2d_desc *d);
/* dL/dx, dL/dweight, dL/dbias of batch_norm from g, x, weight (or NULL) and the (2, C) stats
 * (mean, invstd) the forward used; each output pointer may be NULL (not wanted). */
vkg_status vkg_batch_norm_grads(vkg_tensor *g, vkg_tensor *x, vkg_tensor *weight, vkg_tensor *stats, bool train,
                                vkg_tensor **dx, vkg_tensor **dweight, vkg_tensor **dbias);

#endif
