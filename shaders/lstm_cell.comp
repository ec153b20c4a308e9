#version 450
#extension GL_GOOGLE_include_directive : require
// The fused LSTM cell update: gates = xw + hw + bias (PyTorch's order i, f, g, o), their
// nonlinearities, c' = f c + i g and h' = o tanh(c'), one invocation per (b, j). Writes
// [h'; c'] as (2, B, Hd) and the activated gates (B, 4Hd) that the backward reads.
// Push constants mirror vkg_lstm_push in lib/ops/lstm.c: change both.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Y { float y[]; };     // (2, B, Hd)
layout(std430, binding = 1) writeonly buffer G { float gates[]; }; // (B, 4Hd)
layout(std430, binding = 2) readonly buffer XW { float xw[]; };    // (B, 4Hd)
layout(std430, binding = 3) readonly buffer HW { float hw[]; };    // (B, 4Hd)
layout(std430, binding = 4) readonly buffer Bias { float bias[]; }; // (4Hd), if flags bit 0
layout(std430, binding = 5) readonly buffer C { float c[]; };      // (B, Hd)

layout(push_constant) uniform Push {
    uint B, Hd, flags, xw_off;
    uint hw_off, b_off, c_off, y_off;
    uint g_off;
} pc;

void main() {
    uint n = pc.B * pc.Hd;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += GRID_STRIDE) {
        uint b = i / pc.Hd, j = i % pc.Hd;
        float pre[4];
        for (uint k = 0u; k < 4u; k++) {
            uint col = k * pc.Hd + j;
            uint at = b * 4u * pc.Hd + col;
            pre[k] = xw[pc.xw_off + at] + hw[pc.hw_off + at] + ((pc.flags & 1u) != 0u ? bias[pc.b_off + col] : 0.0);
        }
        float ig = safe_sigmoid(pre[0]), fg = safe_sigmoid(pre[1]), gg = safe_tanh(pre[2]), og = safe_sigmoid(pre[3]);
        float cn = fg * c[pc.c_off + i] + ig * gg;
        y[pc.y_off + i] = og * safe_tanh(cn);
        y[pc.y_off + n + i] = cn;
        uint gb = pc.g_off + b * 4u * pc.Hd + j;
        gates[gb] = ig;
        gates[gb + pc.Hd] = fg;
        gates[gb + 2u * pc.Hd] = gg;
        gates[gb + 3u * pc.Hd] = og;
    }
}
