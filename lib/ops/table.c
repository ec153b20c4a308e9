/* The op table, generated from VKG_OP_LIST: what vkgrad-info --ops prints and what the tests,
 * profiler and benchmarks walk. */
#include <string.h>

#include "vkgrad.h"

const vkg_op_info vkg_op_table[VKG_OP_COUNT] = {
#define VKG_OP_ROW_(NAME, name, kind, code, bw) \
    [VKG_OP_##NAME] = { VKG_OP_##NAME, #name, kind, code, bw, true },
    VKG_OP_LIST(VKG_OP_ROW_)
#undef VKG_OP_ROW_
};

const vkg_op_info *vkg_op_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < VKG_OP_COUNT; i++)
        if (strcmp(vkg_op_table[i].name, name) == 0) return &vkg_op_table[i];
    return NULL;
}
