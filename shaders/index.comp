#version 450
#extension GL_GOOGLE_include_directive : require
// Index reads: index_select and embedding (OP 3, 5: the index picks along axis by the output's
// coordinate on axis) and gather (OP 4: the index has the output's shape). x is read through
// its strides (any view); an index outside [0, N) gives NaN. Codes of VKG_OP_LIST_SEQ: change both.
// Push constants mirror vkg_index_push in lib/ops/index.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 3;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer I { int idx[]; };

layout(push_constant) uniform Push {
    uint n, ndim, axis, x_off;
    uint idx_off, out_off, N, pad;   // N: x's size along axis
    uvec4 shape_lo, shape_hi;        // output shape, outermost first
    ivec4 xst_lo, xst_hi;            // x's strides, elements
} pc;

void main() {
    uint shape[8] = uint[8](pc.shape_lo.x, pc.shape_lo.y, pc.shape_lo.z, pc.shape_lo.w,
                            pc.shape_hi.x, pc.shape_hi.y, pc.shape_hi.z, pc.shape_hi.w);
    int xst[8] = int[8](pc.xst_lo.x, pc.xst_lo.y, pc.xst_lo.z, pc.xst_lo.w,
                        pc.xst_hi.x, pc.xst_hi.y, pc.xst_hi.z, pc.xst_hi.w);
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        uint r = i, cax = 0u;
        int src = int(pc.x_off);
        for (int d = int(pc.ndim) - 1; d >= 0; d--) {
            uint c = r % shape[d];
            r /= shape[d];
            if (uint(d) == pc.axis) cax = c;
            else src += int(c) * xst[d];
        }
        int j = OP == 4u ? idx[pc.idx_off + i] : idx[pc.idx_off + cax];
        if (j < 0 || uint(j) >= pc.N) y[pc.out_off + i] = uintBitsToFloat(0x7fc00000u);
        else y[pc.out_off + i] = x[uint(src + j * xst[pc.axis])];
    }
}
