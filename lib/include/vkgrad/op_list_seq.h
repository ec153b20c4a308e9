/* Rows of the op table for the seq group (concat, split, stack, index_select/gather, embedding, attention, LSTM cell, LSTM over a sequence): X(NAME, name, VKG_KIND_SEQ, code,
 * has_backward), as in VKG_OP_LIST_CORE (vkgrad/ops.h). The C functions and references are in
 * vkgrad/seq_ops.h; codes 3-5 are the OP constant of shaders/index.comp and index_backward.comp. */
#ifndef VKGRAD_OP_LIST_SEQ_H
#define VKGRAD_OP_LIST_SEQ_H

#define VKG_OP_LIST_SEQ(X)                                                         \
    X(CONCAT,       concat,       VKG_KIND_SEQ, 0, true)                          \
    X(SPLIT,        split,        VKG_KIND_SEQ, 1, true)                          \
    X(STACK,        stack,        VKG_KIND_SEQ, 2, true)                          \
    X(INDEX_SELECT, index_select, VKG_KIND_SEQ, 3, true)                          \
    X(GATHER,       gather,       VKG_KIND_SEQ, 4, true)                          \
    X(EMBEDDING,    embedding,    VKG_KIND_SEQ, 5, true)                          \
    X(SDPA,         scaled_dot_product_attention, VKG_KIND_SEQ, 6, true)          \
    X(LSTM_CELL,    lstm_cell,    VKG_KIND_SEQ, 7, true)                          \
    X(LSTM,         lstm,         VKG_KIND_SEQ, 8, true)

#endif
