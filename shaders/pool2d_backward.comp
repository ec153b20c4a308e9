#version 450
#extension GL_GOOGLE_include_directive : require
// max_pool2d and avg_pool2d backward, gathered per input element (no atomics): the windows
// that hold (ih, iw) are walked in a fixed order, and each adds its gradient where the saved
// argmax is this element (max) or always, divided by the window size (avg).
// Specialization constant 1 = OP (max 1, avg 2: vkgrad/op_list_conv.h, change both).
// Bindings: 0 dx (N, C, H, W) contiguous, 1 g (N, C, OH, OW) contiguous, 2 indices i32 like g
// (max; avg: unused). Push constants: conv.glsl.
#include "conv.glsl"

layout(constant_id = 1) const uint OP = 1;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer G { float gy[]; };
layout(std430, binding = 2) readonly buffer I { int yi[]; };

void main() {
    float area = float(pc.kh * pc.kw);
    for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
        uint iw = it % pc.W;
        uint r = it / pc.W;
        uint ih = r % pc.H;
        uint nc = r / pc.H;
        // windows oh with oh sh - ph <= ih < oh sh - ph + kh
        int th = int(ih + pc.ph), tw = int(iw + pc.pw);
        int oh_lo = th - int(pc.kh) + 1, ow_lo = tw - int(pc.kw) + 1;
        uint oh0 = oh_lo <= 0 ? 0u : (uint(oh_lo) + pc.sh - 1u) / pc.sh;
        uint ow0 = ow_lo <= 0 ? 0u : (uint(ow_lo) + pc.sw - 1u) / pc.sw;
        uint oh1 = min(uint(th) / pc.sh + 1u, pc.OH), ow1 = min(uint(tw) / pc.sw + 1u, pc.OW);
        int self = int(ih * pc.W + iw);
        float acc = 0.0;
        for (uint oh = oh0; oh < oh1; oh++)
            for (uint ow = ow0; ow < ow1; ow++) {
                uint o = (nc * pc.OH + oh) * pc.OW + ow;
                if (OP == 1) {
                    if (yi[pc.off.z + o] == self) acc += gy[pc.off.y + o];
                } else {
                    acc += gy[pc.off.y + o] / area;
                }
            }
        dx[pc.off.x + it] = acc;
    }
}
