/* Rows of the op table for the seq group (concat, split, stack, index_select/gather, embedding, attention, LSTM cell): X(NAME, name, VKG_KIND_SEQ, code,
 * has_backward), as in VKG_OP_LIST_CORE (vkgrad/ops.h). Empty until the group's ops land. */
#ifndef VKGRAD_OP_LIST_SEQ_H
#define VKGRAD_OP_LIST_SEQ_H

#define VKG_OP_LIST_SEQ(X)

#endif
