#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d forward, direct (implicit GEMM without im2col): each invocation computes a register
// block of KB output channels (of one group) x PB neighbouring output pixels of one row,
// reading x in place through its strides and each weight once per block. The sum over
// (kernel row, kernel column, input channel) runs in a fixed order: results are reproducible.
// Bindings: 0 y (N, K, OH, OW) contiguous, 1 x strided, 2 weight (K, C/G, kh, kw) contiguous,
// 3 bias (K) or any buffer when flags bit 0 is clear. Push constants: conv.glsl.
#include "conv.glsl"

#define KB 4
#define PB 4

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer Wt { float wt[]; };
layout(std430, binding = 3) readonly buffer B { float bias[]; };

void main() {
    uint Cg = pc.C / pc.G, Kg = pc.K / pc.G;
    uint kblocks = (Kg + KB - 1) / KB, pblocks = (pc.OW + PB - 1) / PB;
    uint wstride = Cg * pc.kh * pc.kw;   // between output channels in the weight
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint pb = it % pblocks;
        uint r = it / pblocks;
        uint oh = r % pc.OH;
        r /= pc.OH;
        uint kb = r % kblocks;
        r /= kblocks;
        uint g = r % pc.G;
        uint n = r / pc.G;
        uint k0 = g * Kg + kb * KB;       // first output channel of the block
        uint nk = min(uint(KB), Kg - kb * KB);
        uint ow0 = pb * PB;
        uint np = min(uint(PB), pc.OW - ow0);
        float acc[KB][PB];
        for (uint k = 0; k < KB; k++)
            for (uint p = 0; p < PB; p++) acc[k][p] = 0.0;
        int ih0 = int(oh * pc.sh) - int(pc.ph);
        int iw0 = int(ow0 * pc.sw) - int(pc.pw);
        // kernel position outermost: the bounds and addresses are worked out once per (r, s),
        // and the loop over input channels only adds strides
        for (uint kr = 0; kr < pc.kh; kr++) {
            int ih = ih0 + int(kr * pc.dh);
            if (ih < 0 || ih >= int(pc.H)) continue;
            for (uint ks = 0; ks < pc.kw; ks++) {
                bool ok[PB];
                uint xi[PB];
                for (uint p = 0; p < PB; p++) {
                    int iw = iw0 + int(p * pc.sw + ks * pc.dw);
                    ok[p] = p < np && iw >= 0 && iw < int(pc.W);
                    xi[p] = ok[p] ? x_index(n, g * Cg, ih, iw) : 0u;
                }
                uint wi = pc.off.z + k0 * wstride + kr * pc.kw + ks;
                for (uint c = 0; c < Cg; c++) {
                    uint cx = uint(int(c) * pc.xs.y);
                    float xv[PB];
                    for (uint p = 0; p < PB; p++) xv[p] = ok[p] ? x[xi[p] + cx] : 0.0;
                    uint wc = wi + c * pc.kh * pc.kw;
                    for (uint k = 0; k < KB; k++) {
                        float wv = k < nk ? wt[wc + k * wstride] : 0.0;
                        for (uint p = 0; p < PB; p++) acc[k][p] += wv * xv[p];
                    }
                }
            }
        }
        for (uint k = 0; k < nk; k++) {
            float b = (pc.flags & 1u) != 0u ? bias[pc.off.w + k0 + k] : 0.0;
            uint yo = pc.off.x + ((n * pc.K + k0 + k) * pc.OH + oh) * pc.OW + ow0;
            for (uint p = 0; p < np; p++) y[yo + p] = acc[k][p] + b;
        }
    }
}
