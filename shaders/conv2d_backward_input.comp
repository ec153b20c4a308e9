#version 450
#extension GL_GOOGLE_include_directive : require
// conv2d backward for the input, as a transposed convolution gathered per input element (no
// atomics): dx[n, c, ih, iw] = sum over (k of c's group, kernel row, kernel column) whose output
// pixel (ih + ph - r dh) / sh, (iw + pw - s dw) / sw is whole and in range of
// g[n, k, oh, ow] w[k, c, r, s]. Each invocation computes CB input channels of one group at one
// pixel, so each g value is loaded once per block. Fixed order: reproducible.
// Bindings: 0 dx (N, C, H, W) contiguous, 1 g (N, K, OH, OW) contiguous, 2 weight contiguous.
// Push constants: conv.glsl (xs unused).
#include "conv.glsl"

#define CB 4

layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer G { float gy[]; };
layout(std430, binding = 2) readonly buffer Wt { float wt[]; };

void main() {
    uint Cg = pc.C / pc.G, Kg = pc.K / pc.G;
    uint cblocks = (Cg + CB - 1) / CB;
    uint khw = pc.kh * pc.kw;
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint iw = it % pc.W;
        uint r = it / pc.W;
        uint ih = r % pc.H;
        r /= pc.H;
        uint cb = r % cblocks;
        r /= cblocks;
        uint g = r % pc.G;
        uint n = r / pc.G;
        uint cl0 = cb * CB;               // first channel of the block within the group
        uint nc = min(uint(CB), Cg - cl0);
        float acc[CB];
        for (uint j = 0; j < CB; j++) acc[j] = 0.0;
        uint ohw = pc.OH * pc.OW;
        // kernel position outermost: the output pixel is worked out once per (r, s), and the
        // loop over the group's output channels only adds strides
        for (uint kr = 0; kr < pc.kh; kr++) {
            int th = int(ih + pc.ph) - int(kr * pc.dh);
            if (th < 0 || th % int(pc.sh) != 0) continue;
            uint oh = uint(th) / pc.sh;
            if (oh >= pc.OH) continue;
            for (uint ks = 0; ks < pc.kw; ks++) {
                int tw = int(iw + pc.pw) - int(ks * pc.dw);
                if (tw < 0 || tw % int(pc.sw) != 0) continue;
                uint ow = uint(tw) / pc.sw;
                if (ow >= pc.OW) continue;
                uint gi = pc.off.y + (n * pc.K + g * Kg) * ohw + oh * pc.OW + ow;
                uint wi = pc.off.z + (g * Kg * Cg + cl0) * khw + kr * pc.kw + ks;
                for (uint kl = 0; kl < Kg; kl++) {
                    float gv = gy[gi + kl * ohw];
                    uint wk = wi + kl * Cg * khw;
                    for (uint j = 0; j < CB; j++)
                        if (j < nc) acc[j] += gv * wt[wk + j * khw];
                }
            }
        }
        for (uint j = 0; j < nc; j++)
            dx[pc.off.x + ((n * pc.C + g * Cg + cl0 + j) * pc.H + ih) * pc.W + iw] = acc[j];
    }
}
