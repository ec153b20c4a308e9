#version 450
#extension GL_GOOGLE_include_directive : require
// The matmul path's input gradient (groups 1): dx[n, c, h, w] is the sum, over the kernel taps
// (r, s) whose window covers (h, w), of dcols[n, (c, r, s), (oh, ow)], in tap order: a gather,
// so no atomics and a reproducible result. Bindings: 0 dx contiguous (N, C, H, W) at off.x,
// 1 dcols contiguous (N, C kh kw, OH OW) at off.y. Push constants: conv.glsl.
#include "conv.glsl"

layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DCols { float dcols[]; };

void main() {
    uint P = pc.OH * pc.OW, taps = pc.kh * pc.kw;
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint iw = it % pc.W, r = it / pc.W;
        uint ih = r % pc.H;
        r /= pc.H;
        uint c = r % pc.C, n = r / pc.C;
        uint base = pc.off.y + (n * pc.C + c) * taps * P;
        float acc = 0.0;
        for (uint kr = 0u; kr < pc.kh; kr++) {
            int th = int(ih + pc.ph) - int(kr * pc.dh);
            if (th < 0 || th % int(pc.sh) != 0 || uint(th) / pc.sh >= pc.OH) continue;
            uint oh = uint(th) / pc.sh;
            for (uint ks = 0u; ks < pc.kw; ks++) {
                int tw = int(iw + pc.pw) - int(ks * pc.dw);
                if (tw < 0 || tw % int(pc.sw) != 0 || uint(tw) / pc.sw >= pc.OW) continue;
                acc += dcols[base + (kr * pc.kw + ks) * P + oh * pc.OW + uint(tw) / pc.sw];
            }
        }
        dx[pc.off.x + it] = acc;
    }
}
