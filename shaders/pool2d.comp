#version 450
#extension GL_GOOGLE_include_directive : require
// max_pool2d and avg_pool2d forward, one output element per item. Specialization constant 1 =
// OP, the op table's code (vkgrad/op_list_conv.h: max 1, avg 2; change both); 2 and 3 = the
// kernel's height and width, so that the window's loops unroll (2x faster on lavapipe).
// Max skips padding and keeps the first index of ties (NaN wins, the first one), like PyTorch,
// writing the argmax h * W + w; avg counts padding (count_include_pad).
// Bindings: 0 y (N, C, OH, OW) contiguous, 1 x strided, 2 indices i32 (max; avg: unused).
// Push constants: conv.glsl (K = C); each invocation walks runs of items (RUNS there).
#include "conv.glsl"

layout(constant_id = 1) const uint OP = 1;
layout(constant_id = 2) const uint KH = 2;
layout(constant_id = 3) const uint KW = 2;
// 4 = PAIRS (flags bit 2, lib/ops/conv.c): windows 2 wide at stride 2 without column padding,
// over rows whose elements pair up (stride 1, even row, channel and image strides and offset):
// each window row is one vec2 load (X2 aliases X), half the loads (lavapipe loads a lane's
// value in a loop over the lanes, so a load costs about the same whatever its width).
layout(constant_id = 4) const bool PAIRS = false;
// 5 = RELU (max only, flags bit 3): y = max(0, window max), the index -1 where the floor wins,
// so that pool2d_backward.comp, which routes by the index, passes no gradient there.
layout(constant_id = 5) const bool RELU = false;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X2 { vec2 x2[]; };
layout(std430, binding = 2) writeonly buffer I { int yi[]; };

void main() {
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint ow = it % pc.OW, r = it / pc.OW;
        uint oh = r % pc.OH;
        r /= pc.OH;
        uint c = r % pc.C, n = r / pc.C;
        for (; it < end; it++) {
            int h0 = int(oh * pc.sh) - int(pc.ph), w0 = int(ow * pc.sw) - int(pc.pw);
            float acc = 0.0;
            int best = -1;
            for (uint kr = 0; kr < KH; kr++) {
                int ih = h0 + int(kr);
                if (ih < 0 || ih >= int(pc.H)) continue;
                vec2 pair = PAIRS ? x2[x_index(n, c, ih, w0) / 2u] : vec2(0.0);
                for (uint ks = 0; ks < KW; ks++) {
                    int iw = w0 + int(ks);
                    if (!PAIRS && (iw < 0 || iw >= int(pc.W))) continue;
                    float v = PAIRS ? pair[ks] : x[x_index(n, c, ih, iw)];
                    if (OP == 1) {
                        if (best < 0 || v > acc || (isnan(v) && !isnan(acc))) {
                            acc = v;
                            best = ih * int(pc.W) + iw;
                        }
                    } else {
                        acc += v;
                    }
                }
            }
            if (OP == 1) {
                if (RELU && acc <= 0.0) { // NaN stays NaN, like vkg_relu
                    acc = 0.0;
                    best = -1;
                }
                y[pc.off.x + it] = acc;
                yi[pc.off.z + it] = best;
            } else {
                y[pc.off.x + it] = acc / float(KH * KW);
            }
            // the next item: ow, then oh, c, n carry
            ow++;
            bool carry = ow == pc.OW;
            ow = carry ? 0u : ow;
            oh += carry ? 1u : 0u;
            carry = oh == pc.OH;
            oh = carry ? 0u : oh;
            c += carry ? 1u : 0u;
            carry = c == pc.C;
            c = carry ? 0u : c;
            n += carry ? 1u : 0u;
        }
    }
}
