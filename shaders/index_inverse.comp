#version 450
#extension GL_GOOGLE_include_directive : require
// The inverse of a 1-D index over N rows, as CSR: rows n's entries are list[off[n] .. off[n+1]),
// in increasing position, so that the backward of index_select/embedding sums each row's
// gradients in a fixed order (no float atomics). A stable counting sort, run by one invocation:
// O(M + N) serial steps, small next to the backward it serves. Entries outside [0, N) are left
// out. Each step of the sort walks memory in order, so the host can cut any step into ranges
// run by successive dispatches (PHASE 1..5 over [lo, hi)) where the whole sort would loop past
// lavapipe's limit of 65535 iterations per invocation; PHASE 0 runs every step at once.
// Push constants mirror vkg_inverse_push in lib/ops/index.c: change both.
#include "common.glsl"

layout(std430, binding = 0) buffer Off { int off[]; };           // N + 1
layout(std430, binding = 1) writeonly buffer List { int list[]; }; // M
layout(std430, binding = 2) readonly buffer I { int idx[]; };     // M

layout(push_constant) uniform Push {
    uint M, N, idx_off, off_off;
    uint list_off, phase, lo, hi;
} pc;

void main() {
    if (gl_GlobalInvocationID.x != 0u) return;
    uint o = pc.off_off;
    bool all = pc.phase == 0u;
    if (all || pc.phase == 1u)                       // clear off[0 .. N]
        for (uint n = all ? 0u : pc.lo; n < (all ? pc.N + 1u : pc.hi); n++) off[o + n] = 0;
    if (all || pc.phase == 2u)                       // counts, shifted by one
        for (uint m = all ? 0u : pc.lo; m < (all ? pc.M : pc.hi); m++) {
            int j = idx[pc.idx_off + m];
            if (j >= 0 && uint(j) < pc.N) off[o + uint(j) + 1u] += 1;
        }
    if (all || pc.phase == 3u)                       // off[n]: start of row n
        for (uint n = all ? 0u : pc.lo; n < (all ? pc.N : pc.hi); n++) off[o + n + 1u] += off[o + n];
    if (all || pc.phase == 4u)                       // place; off[j] moves to the end of row j
        for (uint m = all ? 0u : pc.lo; m < (all ? pc.M : pc.hi); m++) {
            int j = idx[pc.idx_off + m];
            if (j >= 0 && uint(j) < pc.N) {
                list[pc.list_off + uint(off[o + uint(j)])] = int(m);
                off[o + uint(j)] += 1;
            }
        }
    if (all || pc.phase == 5u) {                     // back to the starts, from the top down
        for (uint n = all ? pc.N : pc.hi; n > (all ? 0u : pc.lo); n--) off[o + n] = off[o + n - 1u];
        if (all || pc.lo == 0u) off[o] = 0;
    }
}
