/* Rows of the op table for the nn group: X(NAME, name, VKG_KIND_NN, code, has_backward), as in
 * VKG_OP_LIST_CORE (vkgrad/ops.h). The code is the OP specialization constant of the op's
 * shader (change both): shaders/nn_pointwise.comp (clamp 0, masked_fill 2, dropout 3, mse_loss 4,
 * binary_cross_entropy_with_logits 6), shaders/nn_rows.comp (softmax 0, log_softmax 1,
 * logsumexp 2, var 3, std 4), shaders/class_loss.comp (cross_entropy 0, nll_loss 1) and
 * shaders/layer_norm.comp (0). */
#ifndef VKGRAD_OP_LIST_NN_H
#define VKGRAD_OP_LIST_NN_H

#define VKG_OP_LIST_NN(X)                                                        \
    X(CLAMP,         clamp,         VKG_KIND_NN, 0, true)                        \
    X(MASKED_FILL,   masked_fill,   VKG_KIND_NN, 2, true)                        \
    X(DROPOUT,       dropout,       VKG_KIND_NN, 3, true)                        \
    X(SOFTMAX,       softmax,       VKG_KIND_NN, 0, true)                        \
    X(LOG_SOFTMAX,   log_softmax,   VKG_KIND_NN, 1, true)                        \
    X(LOGSUMEXP,     logsumexp,     VKG_KIND_NN, 2, true)                        \
    X(VAR,           var,           VKG_KIND_NN, 3, true)                        \
    X(STD,           std,           VKG_KIND_NN, 4, true)                        \
    X(CROSS_ENTROPY, cross_entropy, VKG_KIND_NN, 0, true)                        \
    X(NLL_LOSS,      nll_loss,      VKG_KIND_NN, 1, true)                        \
    X(MSE_LOSS,      mse_loss,      VKG_KIND_NN, 4, true)                        \
    X(BCE_WITH_LOGITS, binary_cross_entropy_with_logits, VKG_KIND_NN, 6, true)   \
    X(LAYER_NORM,    layer_norm,    VKG_KIND_NN, 0, true)

#endif
