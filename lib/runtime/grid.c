/* Dispatch grids: how many workgroups a kernel gets for n items. Kernels loop over their items
 * with a grid stride, so the group count is a tuning choice, bounded by the device's limits. */
#include "runtime/runtime.h"

uint32_t vkg_groups_for(uint64_t n, uint32_t local_size) {
    uint64_t g = (n + local_size - 1) / local_size;
    uint64_t cap = vkg_ctx.info.max_workgroup_count[0] ? vkg_ctx.info.max_workgroup_count[0] : 65535;
    if (cap > 65535) cap = 65535;
    if (g > cap) g = cap;
    return g ? (uint32_t)g : 1;
}
