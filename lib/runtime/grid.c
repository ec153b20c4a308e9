/* Dispatch grids: how many workgroups a kernel gets for n items, within the device's limits.
 *
 * Kernels loop over their items with a grid stride, so the group count is a tuning choice with
 * two bounds. The device's maximum group count is one. The other is lavapipe's: llvmpipe stops
 * every loop of an invocation, without an error, once that invocation has run 65535 loop
 * iterations in all (gallivm's loop limiter). So a grid may never be so small that one
 * invocation's share of items, times the loop iterations each item costs, passes the budget.
 *
 * Within those bounds a CPU device gets about ITEMS_PER_INVOCATION items an invocation, and at
 * least a few groups: lavapipe runs a workgroup per core at a time and pays a fixed few
 * microseconds per workgroup, so small tensors want few long grid-stride loops (one invocation
 * per item was 1.8x slower on 65K-element ops); big ones want many groups, each a stretch of
 * nearby memory (a fixed 8 groups made a 16M-element add, a GELU backward and a transposed copy
 * 2-4x slower than 16 items an invocation; measured in one process, caps 8 to 2048 groups,
 * 65K to 16M elements, vec4 and one-float kernels). GPUs get one invocation per item, which
 * hides memory latency best. */
#include <stdlib.h>
#include <unistd.h>

#include "runtime/runtime.h"

/* CPU devices: the grid-stride share of an invocation that measured best from 65K to 16M items */
#define ITEMS_PER_INVOCATION 16

static struct {
    VkDevice device;  /* the settings below were read for this device */
    uint64_t budget, max_groups;
    uint64_t cpu_floor;  /* CPU devices: the fewest groups a big enough grid gets; 0 on GPUs */
    uint64_t cap;        /* VKG_MAX_GROUPS, else max_groups */
} grid;

static uint64_t env_u64(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    return *end ? 0 : (uint64_t)x;
}

void vkg_grid_reset(void) { grid.device = VK_NULL_HANDLE; }

static void grid_settings(void) {
    if (grid.device == vkg_ctx.device && grid.device) return;
    grid.device = vkg_ctx.device;
    /* a quarter of the limit is left for the loops a kernel's cost does not count (setup, epilogue) */
    uint64_t limit = vkg_ctx.info.max_loop_iterations;
    grid.budget = limit ? limit - limit / 4 : UINT64_MAX;
    uint64_t forced = env_u64("VKG_LOOP_BUDGET");
    if (forced && forced < grid.budget) grid.budget = forced;
    grid.max_groups = vkg_ctx.info.max_workgroup_count[0] ? vkg_ctx.info.max_workgroup_count[0] : 65535;
    if (grid.max_groups > 65535) grid.max_groups = 65535;
    grid.cpu_floor = 0;
    if (vkg_ctx.info.type == VKG_DEVICE_CPU) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        grid.cpu_floor = ncpu > 4 ? 2 * (uint64_t)ncpu : 8; /* two per core keeps every core busy */
    }
    /* tests: long grid-stride loops on any device; benchmarks: other caps side by side */
    uint64_t g = env_u64("VKG_MAX_GROUPS");
    grid.cap = g && g < grid.max_groups ? g : grid.max_groups;
}

uint64_t vkg_loop_budget(void) {
    grid_settings();
    return grid.budget;
}

uint32_t vkg_groups_for_cost(uint64_t n, uint32_t local_size, uint64_t cost) {
    grid_settings();
    if (!local_size) local_size = 128;
    if (!cost) cost = 1;
    uint64_t g = (n + local_size - 1) / local_size;
    if (grid.cpu_floor) {
        uint64_t want = (n + local_size * ITEMS_PER_INVOCATION - 1) / (local_size * ITEMS_PER_INVOCATION);
        if (want < grid.cpu_floor) want = grid.cpu_floor;
        if (g > want) g = want;
    }
    if (g > grid.cap) g = grid.cap;
    if (grid.budget != UINT64_MAX) {
        /* items one invocation may take: budget / cost (callers check cost <= budget first) */
        uint64_t per = grid.budget / cost;
        if (!per) per = 1;
        uint64_t need = (n + local_size * per - 1) / (local_size * per);
        if (g < need) g = need;
    }
    if (g > grid.max_groups) g = grid.max_groups;
    return g ? (uint32_t)g : 1;
}

uint32_t vkg_groups_cap(uint32_t device_limit) {
    grid_settings();
    return device_limit && device_limit < grid.cap ? device_limit : (uint32_t)grid.cap;
}

uint32_t vkg_groups_for(uint64_t n, uint32_t local_size) {
    return vkg_groups_for_cost(n, local_size, VKG_COST_SMALL);
}

vkg_status vkg_loop_check(uint64_t cost, const char *op, const char *what) {
    uint64_t budget = vkg_loop_budget();
    if (cost <= budget) return VKG_OK;
    return vkg_fail(VKG_ERR_INVALID,
                    "%s: %s needs %llu loop iterations in one shader invocation, more than this device runs "
                    "(%s ends an invocation's loops after %u; vkgrad keeps kernels under %llu)",
                    op, what, (unsigned long long)cost, vkg_ctx.info.name, vkg_ctx.info.max_loop_iterations,
                    (unsigned long long)budget);
}

/* Enough invocations to fill a GPU; lavapipe is full with far fewer. */
#define SPLIT_INVOCATIONS 4096
/* Fewer rows per chunk would cost more in the second pass than they save. */
#define SPLIT_MIN_ROWS 8

uint64_t vkg_split_rows(uint64_t rows, uint64_t row_cost, uint64_t outputs, uint64_t *per) {
    uint64_t budget = vkg_loop_budget();
    /* 64 iterations are left for the loops around the rows (register blocks, the epilogue) */
    uint64_t most = budget == UINT64_MAX ? rows : (budget > 64 ? budget - 64 : 1) / (row_cost ? row_cost : 1);
    if (!most) most = 1;
    uint64_t chunks = rows ? (rows + most - 1) / most : 1;
    uint64_t want = outputs ? (SPLIT_INVOCATIONS + outputs - 1) / outputs : 1, cap = rows / SPLIT_MIN_ROWS;
    if (want > cap) want = cap;
    if (chunks < want) chunks = want;
    if (chunks < 1) chunks = 1;
    uint64_t p = rows ? (rows + chunks - 1) / chunks : 1;
    *per = p;
    return rows ? (rows + p - 1) / p : 1;
}

bool vkg_rows_by_workgroup(uint64_t rows, uint64_t R, int64_t r_stride) {
    if (rows < 256 && R >= 512) return true; /* too few rows to fill the device one per invocation */
    /* A GPU's subgroup walking R-long contiguous rows one per lane reads R words apart at each
     * step, a cache line per lane; a workgroup per row reads it coalesced (on an H100, softmax
     * over 2048 x 256 was 8.8x slower than PyTorch the first way). lavapipe's lanes are SIMD
     * lanes of one core, for which the per-invocation walk is the faster. */
    return vkg_ctx.info.type != VKG_DEVICE_CPU && r_stride == 1 && R >= 64;
}
