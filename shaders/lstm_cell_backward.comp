#version 450
#extension GL_GOOGLE_include_directive : require
// Backward of the fused LSTM update, one invocation per (b, j): from the saved activated gates,
// c and dL/d[h'; c'], writes dL/dgates (pre-activation, B x 4Hd) and dL/dc. c' and tanh(c')
// are recomputed. Push constants mirror vkg_lstm_bw_push in lib/ops/lstm.c: change both.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer DG { float dg[]; };   // (B, 4Hd)
layout(std430, binding = 1) writeonly buffer DC { float dc[]; };   // (B, Hd)
layout(std430, binding = 2) readonly buffer G { float gates[]; };  // (B, 4Hd)
layout(std430, binding = 3) readonly buffer C { float c[]; };      // (B, Hd)
layout(std430, binding = 4) readonly buffer DY { float dy[]; };    // (2, B, Hd)

layout(push_constant) uniform Push {
    uint B, Hd, g_off, c_off;
    uint dy_off, dg_off, dc_off;
} pc;

void main() {
    uint n = pc.B * pc.Hd;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += GRID_STRIDE) {
        uint b = i / pc.Hd, j = i % pc.Hd;
        uint gb = pc.g_off + b * 4u * pc.Hd + j;
        float ig = gates[gb], fg = gates[gb + pc.Hd], gg = gates[gb + 2u * pc.Hd], og = gates[gb + 3u * pc.Hd];
        float cp = c[pc.c_off + i];
        float tc = safe_tanh(fg * cp + ig * gg);
        float gh = dy[pc.dy_off + i];
        float gc = dy[pc.dy_off + n + i] + gh * og * (1.0 - tc * tc);
        uint ob = pc.dg_off + b * 4u * pc.Hd + j;
        dg[ob] = gc * gg * ig * (1.0 - ig);
        dg[ob + pc.Hd] = gc * cp * fg * (1.0 - fg);
        dg[ob + 2u * pc.Hd] = gc * ig * (1.0 - gg * gg);
        dg[ob + 3u * pc.Hd] = gh * tc * og * (1.0 - og);
        dc[pc.dc_off + i] = gc * fg;
    }
}
