#version 450
#extension GL_GOOGLE_include_directive : require
// Index reads: index_select and embedding (OP 3, 5: the index picks along axis by the output's
// coordinate on axis) and gather (OP 4: the index has the output's shape). x is read through
// its strides (any view); an index outside [0, N) gives NaN. Codes of VKG_OP_LIST_SEQ: change both.
// Compiled a second time with IX_TEX (index_tex): x read through a uniform texel buffer, a view of
// its whole block (RGBA32F with ROWS, else R32F; x_off counts from the block's start), on devices
// that fetch texels faster than they load storage buffers (lavapipe).
// Push constants mirror vkg_index_push in lib/ops/index.c: change both.
// ROWS (specialization constant 2), set by the host for OP 3 and 5 along axis 0 of a 2-D (M, D)
// result whose rows are whole vec4s in x and y (x's rows contiguous, D and the offsets multiples
// of 4): an invocation copies one vec4 of a picked row, with a division per 4 floats instead of
// the coordinate walk per float (the language models' embeddings, on lavapipe).
#include "common.glsl"

layout(constant_id = 1) const uint OP = 3;
layout(constant_id = 2) const bool ROWS = false;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
#ifdef IX_TEX
layout(binding = 1) uniform samplerBuffer x_view;
#define X_(i) (ROWS ? texelFetch(x_view, int(i) >> 2)[int(i) & 3] : texelFetch(x_view, int(i)).x)
#define X4_(i) texelFetch(x_view, int(i))
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
#define X_(i) x[i]
#define X4_(i) x4[i]
#endif
layout(std430, binding = 2) readonly buffer I { int idx[]; };
layout(std430, binding = 0) writeonly buffer Y4 { vec4 y4[]; };

layout(push_constant) uniform Push {
    uint n, ndim, axis, x_off;
    uint idx_off, out_off, N, pad;   // N: x's size along axis
    uvec4 shape_lo, shape_hi;        // output shape, outermost first
    ivec4 xst_lo, xst_hi;            // x's strides, elements
} pc;

void rows() {
    uint d4 = pc.shape_lo.y / 4u;
    for (uint w = gl_GlobalInvocationID.x; w < pc.n / 4u; w += GRID_STRIDE) {
        uint row = w / d4;
        int j = idx[pc.idx_off + row];
        uint src = (pc.x_off + uint(j * pc.xst_lo.x)) / 4u + w - row * d4;
        y4[pc.out_off / 4u + w] = j < 0 || uint(j) >= pc.N ? vec4(uintBitsToFloat(0x7fc00000u)) : X4_(src);
    }
}

void main() {
    if (ROWS) {
        rows();
        return;
    }
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
        else y[pc.out_off + i] = X_(uint(src + j * xst[pc.axis]));
    }
}
