/* Rows of the op table for the conv group (conv2d, max_pool2d, avg_pool2d, batch_norm): X(NAME, name, VKG_KIND_CONV, code,
 * has_backward), as in VKG_OP_LIST_CORE (vkgrad/ops.h). Empty until the group's ops land. */
#ifndef VKGRAD_OP_LIST_CONV_H
#define VKGRAD_OP_LIST_CONV_H

#define VKG_OP_LIST_CONV(X)

#endif
