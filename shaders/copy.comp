#version 450
#extension GL_GOOGLE_include_directive : require
// Copies a strided view of up to 8 dims into another view of the same shape (contiguous, copy,
// reshape of a non-viewable tensor, and writes into slices for the backward of slicing). Bits
// are copied as they are, so f32 and i32 share this shader.
// Push constants mirror vkg_copy_push in lib/ops/elementwise.c: change both.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Y { uint y[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };

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
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        uint r = i;
        int src = int(pc.in_off), dst = int(pc.out_off);
        for (int d = int(pc.ndim) - 1; d >= 0; d--) {
            int c = int(r % shape[d]);
            src += c * st[d];
            dst += c * ost[d];
            r /= shape[d];
        }
        y[uint(dst)] = x[uint(src)];
    }
}
