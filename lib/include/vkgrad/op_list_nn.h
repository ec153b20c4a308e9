/* Rows of the op table for the nn group (softmax, log_softmax, logsumexp, clamp, masked_fill, var/std, losses, layer_norm, dropout): X(NAME, name, VKG_KIND_NN, code,
 * has_backward), as in VKG_OP_LIST_CORE (vkgrad/ops.h). Empty until the group's ops land. */
#ifndef VKGRAD_OP_LIST_NN_H
#define VKGRAD_OP_LIST_NN_H

#define VKG_OP_LIST_NN(X)

#endif
