#version 450
#extension GL_GOOGLE_include_directive : require
// max_pool2d and avg_pool2d backward, gathered per input element (no atomics): the windows
// that hold (ih, iw) are walked in a fixed order, and each adds its gradient where the saved
// argmax is this element (max) or always, divided by the window size (avg). Windows that tile
// the input (stride = kernel, no padding; flags bit 1) go one window per item instead: each
// element lies in at most one window, so the window writes its elements (its gradient at the
// argmax, or everywhere divided by the window size; 0 elsewhere), the last row and column of
// windows the uncovered rest too: one gradient and index load per window, not per element.
// Specialization constant 1 = OP (max 1, avg 2: vkgrad/op_list_conv.h, change both).
// Bindings: 0 dx (N, C, H, W) contiguous, 1 g (N, C, OH, OW) contiguous, 2 indices i32 like g
// (max; avg: unused). Push constants: conv.glsl; items are elements of dx (gather) or windows
// (tiles), and each invocation walks runs of them (RUNS there), keeping (ih + ph) / sh and
// (iw + pw) / sw as counters too (gather).
#include "conv.glsl"

layout(constant_id = 1) const uint OP = 1;
// 4 = PAIRS (flags bit 2, tiles only): windows 2 wide on rows of even length, each window row
// one vec2 store (DX2 aliases DX), like pool2d.comp's loads.
layout(constant_id = 4) const bool PAIRS = false;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 0) writeonly buffer DX2 { vec2 dx2[]; };
layout(std430, binding = 1) readonly buffer G { float gy[]; };
layout(std430, binding = 2) readonly buffer I { int yi[]; };

void tiles() {
    float area = float(pc.kh * pc.kw);
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint ow = it % pc.OW, r = it / pc.OW;
        uint oh = r % pc.OH, nc = r / pc.OH;
        for (; it < end; it++) {
            float gv = gy[pc.off.y + it];
            int best = OP == 1 ? yi[pc.off.z + it] : -1;
            float v = OP == 1 ? gv : gv / area;
            uint h0 = oh * pc.kh, w0 = ow * pc.kw;
            uint h1 = oh + 1u == pc.OH ? pc.H : h0 + pc.kh, w1 = ow + 1u == pc.OW ? pc.W : w0 + pc.kw;
            uint wr = w1 - w0;
            for (uint ih = h0; ih < h1; ih++) {
                uint row = pc.off.x + (nc * pc.H + ih) * pc.W;
                bool in_h = ih < h0 + pc.kh;
                if (PAIRS) {
                    int at = int(ih * pc.W + w0);
                    bvec2 hit = OP == 1 ? equal(ivec2(at, at + 1), ivec2(best)) : bvec2(in_h);
                    dx2[(row + w0) / 2u] = mix(vec2(0.0), vec2(v), hit);
                    continue;
                }
                for (uint iw = w0; iw < w1; iw++) {
                    bool hit = OP == 1 ? int(ih * pc.W + iw) == best : in_h && iw < w0 + pc.kw;
                    dx[row + iw] = hit ? v : 0.0;
                }
            }
            // the next window: ow, then oh, nc carry
            ow++;
            bool carry = ow == pc.OW;
            ow = carry ? 0u : ow;
            oh += carry ? 1u : 0u;
            carry = oh == pc.OH;
            oh = carry ? 0u : oh;
            nc += carry ? 1u : 0u;
        }
    }
}

void main() {
    if ((pc.flags & 2u) != 0u) {
        tiles();
        return;
    }
    float area = float(pc.kh * pc.kw);
    // at most nh x nw windows hold an element: those ending at or after it, up to the one at
    // its quotient t / stride (t = index + padding)
    uint nh = (pc.kh + pc.sh - 1u) / pc.sh, nw = (pc.kw + pc.sw - 1u) / pc.sw;
    uint qw0 = pc.pw / pc.sw, rw0 = pc.pw % pc.sw, qh0 = pc.ph / pc.sh, rh0 = pc.ph % pc.sh;
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint iw = it % pc.W, r = it / pc.W;
        uint ih = r % pc.H, nc = r / pc.H;
        uint qw = (iw + pc.pw) / pc.sw, rw = (iw + pc.pw) % pc.sw;
        uint qh = (ih + pc.ph) / pc.sh, rh = (ih + pc.ph) % pc.sh;
        for (; it < end; it++) {
            int th = int(ih + pc.ph), tw = int(iw + pc.pw);
            int self = int(ih * pc.W + iw);
            float acc = 0.0;
            // windows oh with oh sh <= th < oh sh + kh, in ascending order
            for (uint a = 0u; a < nh; a++) {
                int oh = int(qh + 1u + a) - int(nh);
                if (oh < 0 || oh >= int(pc.OH) || oh * int(pc.sh) + int(pc.kh) <= th) continue;
                for (uint b = 0u; b < nw; b++) {
                    int ow = int(qw + 1u + b) - int(nw);
                    if (ow < 0 || ow >= int(pc.OW) || ow * int(pc.sw) + int(pc.kw) <= tw) continue;
                    uint o = (nc * pc.OH + uint(oh)) * pc.OW + uint(ow);
                    if (OP == 1) {
                        if (yi[pc.off.z + o] == self) acc += gy[pc.off.y + o];
                    } else {
                        acc += gy[pc.off.y + o] / area;
                    }
                }
            }
            dx[pc.off.x + it] = acc;
            // the next item: iw (and its quotient), then ih (and its quotient), nc carry
            iw++;
            rw++;
            bool step = rw == pc.sw;
            rw = step ? 0u : rw;
            qw += step ? 1u : 0u;
            bool carry = iw == pc.W;
            iw = carry ? 0u : iw;
            qw = carry ? qw0 : qw;
            rw = carry ? rw0 : rw;
            ih += carry ? 1u : 0u;
            rh += carry ? 1u : 0u;
            step = rh == pc.sh;
            rh = step ? 0u : rh;
            qh += step ? 1u : 0u;
            carry = ih == pc.H;
            ih = carry ? 0u : ih;
            qh = carry ? qh0 : qh;
            rh = carry ? rh0 : rh;
            nc += carry ? 1u : 0u;
        }
    }
}
