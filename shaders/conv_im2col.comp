#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d's unfolding for the matmul path (groups 1): cols[n, (c, r, s), (oh, ow)] = x[n, c,
// oh sh - ph + r dh, ow sw - pw + s dw], 0 in the padding, for the pc.N images of one chunk.
// Then y[n] = w (K, C kh kw) @ cols[n] is a batched matmul (lib/ops/conv.c). Bindings: 0 cols
// contiguous (N, C kh kw, OH OW) at off.x, 1 x strided (xs) at off.y. Push constants: conv.glsl.
#include "conv.glsl"

layout(std430, binding = 0) writeonly buffer Cols { float cols[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };

void main() {
    uint P = pc.OH * pc.OW, taps = pc.kh * pc.kw, ckk = pc.C * taps;
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint p = it % P, r = it / P;
        uint q = r % ckk, n = r / ckk;
        uint c = q / taps, t = q % taps;
        uint oh = p / pc.OW, ow = p % pc.OW;
        int ih = int(oh * pc.sh + (t / pc.kw) * pc.dh) - int(pc.ph);
        int iw = int(ow * pc.sw + (t % pc.kw) * pc.dw) - int(pc.pw);
        bool inside = ih >= 0 && ih < int(pc.H) && iw >= 0 && iw < int(pc.W);
        cols[pc.off.x + it] = inside ? x[x_index(n, c, ih, iw)] : 0.0;
    }
}
