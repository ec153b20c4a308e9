#version 450
#extension GL_GOOGLE_include_directive : require
// Scatter-add backward of the index reads, as a gather: one invocation per element of dx sums
// the gradients that point to it in a fixed order, so results are bitwise reproducible.
// OP 3, 5 (index_select, embedding): dx (outer, N, inner), dy (outer, M, inner), the CSR
// inverse (off, list) from index_inverse.comp. OP 4 (gather): dx has x's shape, dy and idx the
// index's (contiguous); the invocation walks its line of idx along axis. OP 3, 5 take a row's
// entries k0 .. k0 + klen (klen 0: all) and add them to what dx holds when k0 > 0, so the host
// can split rows with very many entries over several dispatches (lavapipe's loop limit). Codes of
// VKG_OP_LIST_SEQ: change both. Push constants mirror vkg_index_bw_push in lib/ops/index.c.
// Compiled a second time with IX_TEX (index_backward_tex): dy read through an R32F texel view
// (shaders/index.comp's IX_TEX says why).
#include "common.glsl"

layout(constant_id = 1) const uint OP = 3;
layout(std430, binding = 0) buffer DX { float dx[]; };
#ifdef IX_TEX
layout(binding = 1) uniform samplerBuffer dy_view;
#define DY_(i) texelFetch(dy_view, int(i)).x
#else
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
#define DY_(i) dy[i]
#endif
layout(std430, binding = 2) readonly buffer A { int ia[]; };   // off (OP 3, 5) or idx (OP 4)
layout(std430, binding = 3) readonly buffer L { int list[]; };

layout(push_constant) uniform Push {
    uint n, ndim, axis, M;
    uint N, inner, dy_off, a_off;
    uint list_off, dx_off, k0, klen;
    uvec4 xs_lo, xs_hi;   // x's shape (OP 4)
    uvec4 is_lo, is_hi;   // the index's shape (OP 4)
} pc;

void main() {
    if (OP != 4u) {
        uint row = pc.N * pc.inner;
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
            uint o = i / row, rem = i % row;
            uint nn = rem / pc.inner, ii = rem % pc.inner;
            float acc = pc.k0 > 0u ? dx[pc.dx_off + i] : 0.0;
            int start = ia[pc.a_off + nn] + int(pc.k0), end = ia[pc.a_off + nn + 1u];
            if (pc.klen > 0u) end = min(end, start + int(pc.klen));
            for (int k = start; k < end; k++) {
                uint m = uint(list[pc.list_off + uint(k)]);
                acc += DY_(pc.dy_off + (o * pc.M + m) * pc.inner + ii);
            }
            dx[pc.dx_off + i] = acc;
        }
        return;
    }
    uint xs[8] = uint[8](pc.xs_lo.x, pc.xs_lo.y, pc.xs_lo.z, pc.xs_lo.w, pc.xs_hi.x, pc.xs_hi.y, pc.xs_hi.z, pc.xs_hi.w);
    uint is[8] = uint[8](pc.is_lo.x, pc.is_lo.y, pc.is_lo.z, pc.is_lo.w, pc.is_hi.x, pc.is_hi.y, pc.is_hi.z, pc.is_hi.w);
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        uint r = i, base = 0u, mul = 1u, ist = 1u, cax = 0u;
        bool inside = true;
        for (int d = int(pc.ndim) - 1; d >= 0; d--) {
            uint c = r % xs[d];
            r /= xs[d];
            if (uint(d) == pc.axis) { cax = c; ist = mul; }
            else if (c >= is[d]) inside = false;
            else base += c * mul;
            mul *= is[d];
        }
        float acc = 0.0;
        if (inside)
            for (uint j = 0u; j < is[pc.axis]; j++)
                if (ia[pc.a_off + base + j * ist] == int(cax)) acc += DY_(pc.dy_off + base + j * ist);
        dx[pc.dx_off + i] = acc;
    }
}
