#version 450
#extension GL_GOOGLE_include_directive : require
// Copies a strided view of up to 8 dims into another view of the same shape (contiguous, copy,
// reshape of a non-viewable tensor, and writes into slices for the backward of slicing). Bits
// are copied as they are, so f32 and i32 share this shader.
// Push constants mirror vkg_copy_push in lib/ops/elementwise.c: change both.
// Compiled a second time with COPY_VEC4 (copy_vec4, shaders/CMakeLists.txt): each item is four
// words of the innermost dim, loaded and stored as a uvec4, where that dim has stride 1 in both
// views and a length that is a multiple of 4 (or is the only dim: the last n % 4 words go one at
// a time), and every offset and outer stride is a multiple of 4 (lib/ops/elementwise.c checks).
// Head splits and merges of attention, (B, T, H, D) <-> (B, H, T, D), are such copies.
#include "common.glsl"

#ifdef COPY_VEC4
#define T uvec4
#define UNIT 4u
#define AT(buf, e) buf[(e) >> 2][(e) & 3u]
#else
#define T uint
#define UNIT 1u
#define AT(buf, e) buf[e]
#endif

layout(std430, binding = 0) writeonly buffer Y { T y[]; };
layout(std430, binding = 1) readonly buffer X { T x[]; };

layout(push_constant) uniform Push {
    uint n, ndim, in_off, out_off;
    uvec4 shape_lo, shape_hi;      // dims 0-3, 4-7 (outermost first)
    ivec4 st_lo, st_hi;            // input strides, elements
    ivec4 ost_lo, ost_hi;          // output strides, elements
} pc;

void main() {
    uint shape[8] = uint[8](pc.shape_lo.x, pc.shape_lo.y, pc.shape_lo.z, pc.shape_lo.w,
                            pc.shape_hi.x, pc.shape_hi.y, pc.shape_hi.z, pc.shape_hi.w);
    int st[8] = int[8](pc.st_lo.x, pc.st_lo.y, pc.st_lo.z, pc.st_lo.w, pc.st_hi.x, pc.st_hi.y, pc.st_hi.z, pc.st_hi.w);
    int ost[8] = int[8](pc.ost_lo.x, pc.ost_lo.y, pc.ost_lo.z, pc.ost_lo.w,
                        pc.ost_hi.x, pc.ost_hi.y, pc.ost_hi.z, pc.ost_hi.w);
    int last = int(pc.ndim) - 1;
    // the innermost digit counts items
    shape[last] = max(shape[last] / UNIT, 1u);
    st[last] *= int(UNIT);
    ost[last] *= int(UNIT);
    // The invocation's item and the grid stride as digits of the shape (the outermost digit
    // takes what is left). Each step adds the stride's digits with carries, moving the source
    // and destination along: divisions happen here, once, not per item (llvmpipe scalarises
    // vector integer division, two a dim an element made this copy index-bound).
    uint d[8], step[8];
    uint k = gl_GlobalInvocationID.x, g = GRID_STRIDE;
    int src = int(pc.in_off), dst = int(pc.out_off);
    for (int j = last; j > 0; j--) {
        d[j] = k % shape[j];
        k /= shape[j];
        step[j] = 0u;
    }
    d[0] = k;
    step[0] = 0u;
    // a GPU's invocation takes one item and never steps: it skips the stride's divisions
    if (gl_GlobalInvocationID.x + g < pc.n / UNIT) {
        for (int j = last; j > 0; j--) {
            step[j] = g % shape[j];
            g /= shape[j];
        }
        step[0] = g;
    }
    for (int j = 0; j <= last; j++) {
        src += int(d[j]) * st[j];
        dst += int(d[j]) * ost[j];
    }
    for (uint i = gl_GlobalInvocationID.x; i < pc.n / UNIT; i += GRID_STRIDE) {
        y[uint(dst) / UNIT] = x[uint(src) / UNIT];
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
    // the tail of a one-dim vec4 copy (none otherwise)
    for (uint i = pc.n / UNIT * UNIT + gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE)
        AT(y, pc.out_off + i) = AT(x, pc.in_off + i);
}
