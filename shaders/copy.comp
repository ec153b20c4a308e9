#version 450
#extension GL_GOOGLE_include_directive : require
// Copies a strided view of up to 8 dims into another view of the same shape (contiguous, copy,
// reshape of a non-viewable tensor, and writes into slices for the backward of slicing). Bits
// are copied as they are, so f32 and i32 share this shader.
// Push constants mirror vkg_copy_push in lib/ops/elementwise.c: change both.
// Compiled a second time with COPY_VEC4 (copy_vec4, shaders/CMakeLists.txt) for a contiguous
// source and destination whose offsets are multiples of 4: four words a load and a store, the
// last n % 4 one at a time.
#include "common.glsl"

layout(push_constant) uniform Push {
    uint n, ndim, in_off, out_off;
    uvec4 shape_lo, shape_hi;      // dims 0-3, 4-7 (outermost first)
    ivec4 st_lo, st_hi;            // input strides, elements
    ivec4 ost_lo, ost_hi;          // output strides, elements
} pc;

#ifdef COPY_VEC4
layout(std430, binding = 0) writeonly buffer Y { uvec4 y[]; };
layout(std430, binding = 1) readonly buffer X { uvec4 x[]; };

void main() {
    for (uint k = gl_GlobalInvocationID.x; k < pc.n / 4u; k += GRID_STRIDE) y[pc.out_off / 4u + k] = x[pc.in_off / 4u + k];
    for (uint i = (pc.n & ~3u) + gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        uint s = pc.in_off + i, d = pc.out_off + i;
        y[d >> 2][d & 3u] = x[s >> 2][s & 3u];
    }
}
#else
layout(std430, binding = 0) writeonly buffer Y { uint y[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };

void main() {
    uint shape[8] = uint[8](pc.shape_lo.x, pc.shape_lo.y, pc.shape_lo.z, pc.shape_lo.w,
                            pc.shape_hi.x, pc.shape_hi.y, pc.shape_hi.z, pc.shape_hi.w);
    int st[8] = int[8](pc.st_lo.x, pc.st_lo.y, pc.st_lo.z, pc.st_lo.w, pc.st_hi.x, pc.st_hi.y, pc.st_hi.z, pc.st_hi.w);
    int ost[8] = int[8](pc.ost_lo.x, pc.ost_lo.y, pc.ost_lo.z, pc.ost_lo.w,
                        pc.ost_hi.x, pc.ost_hi.y, pc.ost_hi.z, pc.ost_hi.w);
    // The invocation's element and the grid stride as digits of the shape (the outermost digit
    // takes what is left). Each step adds the stride's digits with carries, moving the source
    // and destination along: divisions happen here, once, not per element (llvmpipe scalarises
    // vector integer division, two a dim an element made this copy index-bound).
    uint d[8], step[8];
    uint k = gl_GlobalInvocationID.x, g = GRID_STRIDE;
    int src = int(pc.in_off), dst = int(pc.out_off);
    int last = int(pc.ndim) - 1;
    for (int j = last; j > 0; j--) {
        d[j] = k % shape[j];
        k /= shape[j];
        step[j] = g % shape[j];
        g /= shape[j];
    }
    d[0] = k;
    step[0] = g;
    for (int j = 0; j <= last; j++) {
        src += int(d[j]) * st[j];
        dst += int(d[j]) * ost[j];
    }
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        y[uint(dst)] = x[uint(src)];
        uint c = 0u;
        for (int j = last; j >= 0; j--) {
            uint t = d[j] + step[j] + c;
            uint wrap = j > 0 && t >= shape[j] ? shape[j] : 0u;
            int moved = int(step[j] + c) - int(wrap);
            d[j] = t - wrap;
            src += moved * st[j];
            dst += moved * ost[j];
            c = wrap != 0u ? 1u : 0u;
        }
    }
}
#endif
