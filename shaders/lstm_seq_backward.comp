#version 450
#extension GL_GOOGLE_include_directive : require
// Step t of the whole-sequence LSTM's backward (BPTT, t = T-1 down to 0), one invocation per
// (b, j): from the saved activated gates and cell states, dL/dh_t = dout[b, t] + dh (the
// recurrent gradient dgates_{t+1} W_hh, absent at the last step) and dL/dc_t (dc_n at the last
// step, else the running dc), writes dL/dgates_t (pre-activation) into its slice of dG and
// dL/dc_{t-1} over dc in place (each invocation reads and writes only its own element).
// Push constants mirror vkg_lstm_seq_bw_push in lib/ops/lstm.c: change both.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer DG { float dg[]; };  // (B, T, 4Hd)
layout(std430, binding = 1) buffer DC { float dc[]; };            // (B, Hd), running dL/dc
layout(std430, binding = 2) readonly buffer S { float s[]; };     // [gates (B, T, 4Hd) | c (B, T, Hd) | ...]
layout(std430, binding = 3) readonly buffer GR { float g[]; };    // [dout (B, T, Hd) | dc_n (B, Hd)]
layout(std430, binding = 4) readonly buffer DH { float dh[]; };   // (B, Hd), if flags & HAS_DH
layout(std430, binding = 5) readonly buffer C0 { float c0[]; };   // (B, Hd), if flags & HAS_C0

layout(push_constant) uniform Push {
    uint B, T, Hd, t;
    uint flags, dg_off, dc_off, s_off;
    uint g_off, dh_off, c0_off;
} pc;

const uint HAS_DH = 1u, HAS_C0 = 2u;

void main() {
    uint n = pc.B * pc.Hd, G = 4u * pc.Hd, BT = pc.B * pc.T, cells = BT * G;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += GRID_STRIDE) {
        uint b = i / pc.Hd, j = i % pc.Hd, row = b * pc.T + pc.t;
        uint gb = pc.s_off + row * G + j;
        float ig = s[gb], fg = s[gb + pc.Hd], gg = s[gb + 2u * pc.Hd], og = s[gb + 3u * pc.Hd];
        float tc = safe_tanh(s[pc.s_off + cells + row * pc.Hd + j]);
        float cp;
        if (pc.t > 0u) cp = s[pc.s_off + cells + (row - 1u) * pc.Hd + j];
        else cp = (pc.flags & HAS_C0) != 0u ? c0[pc.c0_off + i] : 0.0;
        float gh = g[pc.g_off + row * pc.Hd + j] + ((pc.flags & HAS_DH) != 0u ? dh[pc.dh_off + i] : 0.0);
        float gc = (pc.t + 1u == pc.T ? g[pc.g_off + BT * pc.Hd + i] : dc[pc.dc_off + i]) + gh * og * (1.0 - tc * tc);
        uint ob = pc.dg_off + row * G + j;
        dg[ob] = gc * gg * ig * (1.0 - ig);
        dg[ob + pc.Hd] = gc * cp * fg * (1.0 - fg);
        dg[ob + 2u * pc.Hd] = gc * ig * (1.0 - gg * gg);
        dg[ob + 3u * pc.Hd] = gh * tc * og * (1.0 - og);
        dc[pc.dc_off + i] = gc * fg;
    }
}
