#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d backward for the weight: dw[k, c, r, s] = sum over n, oh, ow (in that fixed order, no
// atomics: reproducible) of g[n, k, oh, ow] x[n, group c0 + c, oh sh - ph + r dh, ow sw - pw + s dw].
// Each invocation computes KB output channels of one group at one (c, r, s), so each x value is
// loaded once per block, over one chunk of pc.per consecutive (n, oh) rows; chunk j writes its
// partial sums to slice j of binding 0, and the host sums the slices (lib/ops/conv.c says why).
// Bindings: 0 partial dw (chunks, K, C/G, kh, kw) contiguous, 1 g (N, K, OH, OW) contiguous, 2 x
// strided (xs, off.z). Push constants: conv.glsl (items = pc.base items per chunk x chunks).
#include "conv.glsl"

#define KB 4

layout(std430, binding = 0) writeonly buffer DW { float dw[]; };
layout(std430, binding = 1) readonly buffer G { float gy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };

void main() {
    uint Cg = pc.C / pc.G, Kg = pc.K / pc.G;
    uint kblocks = (Kg + KB - 1) / KB;
    uint ohw = pc.OH * pc.OW;
    uint nw = Kg * Cg * pc.kh * pc.kw * pc.G;   // weights in one slice
    uint rows = pc.N * pc.OH;
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint chunk = it / pc.base;
        uint ks = it % pc.kw;
        uint r = (it % pc.base) / pc.kw;
        uint kr = r % pc.kh;
        r /= pc.kh;
        uint c = r % Cg;
        r /= Cg;
        uint kb = r % kblocks;
        uint g = r / kblocks;
        uint k0 = g * Kg + kb * KB;
        uint nk = min(uint(KB), Kg - kb * KB);
        uint xc = g * Cg + c;
        float acc[KB];
        for (uint j = 0; j < KB; j++) acc[j] = 0.0;
        uint q1 = min(rows, (chunk + 1u) * pc.per);
        for (uint q = chunk * pc.per; q < q1; q++) {
            uint n = q / pc.OH, oh = q % pc.OH;
            int ih = int(oh * pc.sh + kr * pc.dh) - int(pc.ph);
            if (ih < 0 || ih >= int(pc.H)) continue;
            uint gn = pc.off.y + (n * pc.K + k0) * ohw + oh * pc.OW;
            for (uint ow = 0; ow < pc.OW; ow++) {
                int iw = int(ow * pc.sw + ks * pc.dw) - int(pc.pw);
                if (iw < 0 || iw >= int(pc.W)) continue;
                float xv = x[uint(int(pc.off.z) + int(n) * pc.xs.x + int(xc) * pc.xs.y + ih * pc.xs.z + iw * pc.xs.w)];
                for (uint j = 0; j < KB; j++)
                    if (j < nk) acc[j] += gy[gn + ow + j * ohw] * xv;
            }
        }
        for (uint j = 0; j < nk; j++)
            dw[pc.off.x + chunk * nw + (((k0 + j) * Cg + c) * pc.kh + kr) * pc.kw + ks] = acc[j];
    }
}
