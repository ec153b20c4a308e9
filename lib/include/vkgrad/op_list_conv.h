/* Rows of the op table for the conv group (conv2d, max_pool2d, avg_pool2d, batch_norm): X(NAME, name, VKG_KIND_CONV, code,
 * has_backward), as in VKG_OP_LIST_CORE (vkgrad/ops.h). The code is the OP specialization
 * constant of shaders/pool2d*.comp (max 1, avg 2); the others have shaders of their own. */
#ifndef VKGRAD_OP_LIST_CONV_H
#define VKGRAD_OP_LIST_CONV_H

#define VKG_OP_LIST_CONV(X)                                      \
    X(CONV2D,     conv2d,     VKG_KIND_CONV, 0, true)            \
    X(MAX_POOL2D, max_pool2d, VKG_KIND_CONV, 1, true)            \
    X(AVG_POOL2D, avg_pool2d, VKG_KIND_CONV, 2, true)            \
    X(BATCH_NORM, batch_norm, VKG_KIND_CONV, 3, true)

#endif
