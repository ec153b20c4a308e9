#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d backward for the weight: dw[k, c, r, s] = sum over n, oh, ow (in that fixed order, no
// atomics: reproducible) of g[n, k, oh, ow] x[n, group c0 + c, oh sh - ph + r dh, ow sw - pw + s dw].
// Each invocation computes a register block of KB output channels of one group x TB kernel taps
// (r, s) of one input channel c, so that each output pixel costs KB gradient and TB input loads
// for KB TB products (a 3x3 kernel is one block of taps), over one chunk of pc.per consecutive
// (n, oh) rows; chunk j writes its partial sums to slice j of binding 0, and the host sums the
// slices (lib/ops/conv.c says why).
// Bindings: 0 partial dw (chunks, K, C/G, kh, kw) contiguous, 1 g (N, K, OH, OW) contiguous, 2 x
// strided (xs, off.z). Push constants: conv.glsl (items = pc.base items per chunk x chunks).
#include "conv.glsl"

#define KB 4
#define TB 9

layout(std430, binding = 0) writeonly buffer DW { float dw[]; };
layout(std430, binding = 1) readonly buffer G { float gy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };

void main() {
    uint Cg = pc.C / pc.G, Kg = pc.K / pc.G, taps = pc.kh * pc.kw;
    uint kblocks = (Kg + KB - 1) / KB, tblocks = (taps + TB - 1) / TB;
    uint ohw = pc.OH * pc.OW;
    uint nw = Kg * Cg * taps * pc.G;   // weights in one slice
    uint rows = pc.N * pc.OH;
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint chunk = it / pc.base, r = it % pc.base;
        uint tb = r % tblocks;
        r /= tblocks;
        uint c = r % Cg;
        r /= Cg;
        uint kb = r % kblocks;
        uint g = r / kblocks;
        uint k0 = g * Kg + kb * KB;
        uint nk = min(uint(KB), Kg - kb * KB);
        uint xc = g * Cg + c;
        // the block's taps: offsets from (oh sh, ow sw) into x, and which are real
        int dh[TB], dw_[TB];
        bool real[TB];
        for (uint t = 0; t < TB; t++) {
            uint tt = tb * TB + t;
            real[t] = tt < taps;
            dh[t] = int((tt / pc.kw) * pc.dh) - int(pc.ph);
            dw_[t] = int((tt % pc.kw) * pc.dw) - int(pc.pw);
        }
        float acc[KB][TB];
        for (uint j = 0; j < KB; j++)
            for (uint t = 0; t < TB; t++) acc[j][t] = 0.0;
        uint q1 = min(rows, (chunk + 1u) * pc.per);
        uint q = chunk * pc.per, n = q / pc.OH, oh = q % pc.OH;
        for (; q < q1; q++) {
            uint gn = pc.off.y + (n * pc.K + k0) * ohw + oh * pc.OW;
            int xn = int(pc.off.z) + int(n) * pc.xs.x + int(xc) * pc.xs.y;
            for (uint ow = 0; ow < pc.OW; ow++) {
                float gv[KB];
                for (uint j = 0; j < KB; j++) gv[j] = j < nk ? gy[gn + ow + j * ohw] : 0.0;
                for (uint t = 0; t < TB; t++) {
                    int ih = int(oh * pc.sh) + dh[t], iw = int(ow * pc.sw) + dw_[t];
                    bool inside = real[t] && ih >= 0 && ih < int(pc.H) && iw >= 0 && iw < int(pc.W);
                    float xv = inside ? x[uint(xn + ih * pc.xs.z + iw * pc.xs.w)] : 0.0;
                    for (uint j = 0; j < KB; j++) acc[j][t] += gv[j] * xv;
                }
            }
            // the next row: oh, then n carry
            oh++;
            bool carry = oh == pc.OH;
            oh = carry ? 0u : oh;
            n += carry ? 1u : 0u;
        }
        for (uint j = 0; j < nk; j++)
            for (uint t = 0; t < TB; t++)
                if (real[t]) dw[pc.off.x + chunk * nw + ((k0 + j) * Cg + c) * taps + tb * TB + t] = acc[j][t];
    }
}
