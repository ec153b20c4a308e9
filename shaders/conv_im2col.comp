#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d's unfolding for the matmul path (groups 1): cols[n, (c, r, s), (oh, ow)] = x[n, c,
// oh sh - ph + r dh, ow sw - pw + s dw], 0 in the padding, for the pc.N images of one chunk.
// Then y[n] = w (K, C kh kw) @ cols[n] is a batched matmul (lib/ops/conv.c). Bindings: 0 cols
// contiguous (N, C kh kw, OH OW) at off.x, 1 x strided (xs) at off.y. Push constants: conv.glsl;
// each invocation walks runs of items (RUNS there).
#include "conv.glsl"

layout(std430, binding = 0) writeonly buffer Cols { float cols[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };

void main() {
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint ow = it % pc.OW, r = it / pc.OW;
        uint oh = r % pc.OH;
        r /= pc.OH;
        uint s = r % pc.kw;
        r /= pc.kw;
        uint kr = r % pc.kh;
        r /= pc.kh;
        uint c = r % pc.C, n = r / pc.C;
        for (; it < end; it++) {
            int ih = int(oh * pc.sh + kr * pc.dh) - int(pc.ph);
            int iw = int(ow * pc.sw + s * pc.dw) - int(pc.pw);
            bool inside = ih >= 0 && ih < int(pc.H) && iw >= 0 && iw < int(pc.W);
            cols[pc.off.x + it] = inside ? x[x_index(n, c, ih, iw)] : 0.0;
            // the next item: ow, then oh, s, kr, c, n carry (selects, not branches: lanes differ)
            ow++;
            bool carry = ow == pc.OW;
            ow = carry ? 0u : ow;
            oh += carry ? 1u : 0u;
            carry = oh == pc.OH;
            oh = carry ? 0u : oh;
            s += carry ? 1u : 0u;
            carry = s == pc.kw;
            s = carry ? 0u : s;
            kr += carry ? 1u : 0u;
            carry = kr == pc.kh;
            kr = carry ? 0u : kr;
            c += carry ? 1u : 0u;
            carry = c == pc.C;
            c = carry ? 0u : c;
            n += carry ? 1u : 0u;
        }
    }
}
