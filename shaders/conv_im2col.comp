#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d's unfolding for the matmul path (groups 1): cols[n, (c, r, s), (oh, ow)] = x[n, c,
// oh sh - ph + r dh, ow sw - pw + s dw], 0 in the padding, for the pc.N images of one chunk.
// Then y[n] = w (K, C kh kw) @ cols[n] is a batched matmul (lib/ops/conv.c). Bindings: 0 cols
// contiguous (N, C kh kw, OH OW) at off.x, 1 x strided (xs) at off.y. Push constants: conv.glsl;
// each invocation walks runs of items (RUNS there). Compiled a second time with VEC4 as
// conv_im2col4, where an item is 4 consecutive values stored as one vec4 (cols' offset and size
// multiples of 4; items then counts vec4s): lavapipe stores lane by lane, so a quarter of the
// stores.
#include "conv.glsl"

#ifdef VEC4
layout(std430, binding = 0) writeonly buffer Cols { vec4 cols[]; };
#else
layout(std430, binding = 0) writeonly buffer Cols { float cols[]; };
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };

// cols' value at the counters (ow, oh, s, kr, c, n), which then step to the next value: ow,
// then oh, s, kr, c, n carry (selects, not branches: lanes differ)
float next_value(inout uint ow, inout uint oh, inout uint s, inout uint kr, inout uint c, inout uint n) {
    int ih = int(oh * pc.sh + kr * pc.dh) - int(pc.ph);
    int iw = int(ow * pc.sw + s * pc.dw) - int(pc.pw);
    bool inside = ih >= 0 && ih < int(pc.H) && iw >= 0 && iw < int(pc.W);
    float v = inside ? x[x_index(n, c, ih, iw)] : 0.0;
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
    return v;
}

void main() {
#ifdef VEC4
    const uint W = 4u;
#else
    const uint W = 1u;
#endif
    uint base = pc.off.x / W;
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint e = it * W;   // the first value's index in cols
        uint ow = e % pc.OW, r = e / pc.OW;
        uint oh = r % pc.OH;
        r /= pc.OH;
        uint s = r % pc.kw;
        r /= pc.kw;
        uint kr = r % pc.kh;
        r /= pc.kh;
        uint c = r % pc.C, n = r / pc.C;
        for (; it < end; it++) {
#ifdef VEC4
            vec4 v;
            v.x = next_value(ow, oh, s, kr, c, n);
            v.y = next_value(ow, oh, s, kr, c, n);
            v.z = next_value(ow, oh, s, kr, c, n);
            v.w = next_value(ow, oh, s, kr, c, n);
            cols[base + it] = v;
#else
            cols[base + it] = next_value(ow, oh, s, kr, c, n);
#endif
        }
    }
}
