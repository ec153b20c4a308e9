#version 450
#extension GL_GOOGLE_include_directive : require
// The matmul path's input gradient (groups 1): dx[n, c, h, w] is the sum, over the kernel taps
// (r, s) whose window covers (h, w), of dcols[n, (c, r, s), (oh, ow)], in tap order: a gather,
// so no atomics and a reproducible result. Bindings: 0 dx contiguous (N, C, H, W) at off.x,
// 1 dcols contiguous (N, C kh kw, OH OW) at off.y. Push constants: conv.glsl; each invocation
// walks runs of items (RUNS there). Specialization constants 1 and 2 = kh and kw, so that the
// loops over the taps unroll.
#include "conv.glsl"

layout(constant_id = 1) const uint KH = 3;
layout(constant_id = 2) const uint KW = 3;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DCols { float dcols[]; };

// The output index along one axis whose window tap at offset t (= input + padding - tap
// dilation) lands on the input, or -1: stride 1 (uniform, the usual case) needs no division.
int out_of(int t, uint stride, uint size) {
    if (t < 0) return -1;
    uint o = uint(t);
    if (stride != 1u) {
        if (o % stride != 0u) return -1;
        o /= stride;
    }
    return o < size ? int(o) : -1;
}

void main() {
    uint P = pc.OH * pc.OW, taps = KH * KW;
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint iw = it % pc.W, r = it / pc.W;
        uint ih = r % pc.H;
        r /= pc.H;
        uint c = r % pc.C, n = r / pc.C;
        for (; it < end; it++) {
            uint base = pc.off.y + (n * pc.C + c) * taps * P;
            float acc = 0.0;
            for (uint kr = 0u; kr < KH; kr++) {
                int oh = out_of(int(ih + pc.ph) - int(kr * pc.dh), pc.sh, pc.OH);
                if (oh < 0) continue;
                for (uint ks = 0u; ks < KW; ks++) {
                    int ow = out_of(int(iw + pc.pw) - int(ks * pc.dw), pc.sw, pc.OW);
                    if (ow >= 0) acc += dcols[base + (kr * KW + ks) * P + uint(oh) * pc.OW + uint(ow)];
                }
            }
            dx[pc.off.x + it] = acc;
            // the next item: iw, then ih, c, n carry
            iw++;
            bool carry = iw == pc.W;
            iw = carry ? 0u : iw;
            ih += carry ? 1u : 0u;
            carry = ih == pc.H;
            ih = carry ? 0u : ih;
            c += carry ? 1u : 0u;
            carry = c == pc.C;
            c = carry ? 0u : c;
            n += carry ? 1u : 0u;
        }
    }
}
