#version 450
#extension GL_GOOGLE_include_directive : require
// The inverse of a 1-D index over N rows, as CSR: rows n's entries are list[off[n] .. off[n+1]),
// in increasing position, so that the backward of index_select/embedding sums each row's
// gradients in a fixed order (no float atomics). A stable counting sort, run by one invocation:
// O(M + N) serial steps, small next to the backward it serves. Entries outside [0, N) are left
// out. Push constants mirror vkg_inverse_push in lib/ops/index.c: change both.
#include "common.glsl"

layout(std430, binding = 0) buffer Off { int off[]; };           // N + 1
layout(std430, binding = 1) writeonly buffer List { int list[]; }; // M
layout(std430, binding = 2) readonly buffer I { int idx[]; };     // M

layout(push_constant) uniform Push {
    uint M, N, idx_off, off_off;
    uint list_off;
} pc;

void main() {
    if (gl_GlobalInvocationID.x != 0u) return;
    uint o = pc.off_off;
    for (uint n = 0u; n <= pc.N; n++) off[o + n] = 0;
    for (uint m = 0u; m < pc.M; m++) {               // counts, shifted by one
        int j = idx[pc.idx_off + m];
        if (j >= 0 && uint(j) < pc.N) off[o + uint(j) + 1u] += 1;
    }
    for (uint n = 0u; n < pc.N; n++) off[o + n + 1u] += off[o + n];   // off[n]: start of row n
    for (uint m = 0u; m < pc.M; m++) {               // place; off[j] moves to the end of row j
        int j = idx[pc.idx_off + m];
        if (j >= 0 && uint(j) < pc.N) {
            list[pc.list_off + uint(off[o + uint(j)])] = int(m);
            off[o + uint(j)] += 1;
        }
    }
    for (uint n = pc.N; n > 0u; n--) off[o + n] = off[o + n - 1u];   // back to the starts
    off[o] = 0;
}
