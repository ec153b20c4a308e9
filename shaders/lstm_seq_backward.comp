#version 450
#extension GL_GOOGLE_include_directive : require
// Step t of the whole-sequence LSTM's backward (BPTT, t = T-1 down to 0), one invocation per
// (b, j): from the saved activated gates and cell states, dL/dh_t = dout[b, t] + dh (the
// recurrent gradient dgates_{t+1} W_hh, absent at the last step) and dL/dc_t (dc_n at the last
// step, else the running dc), writes dL/dgates_t (pre-activation) into its slice of dG and
// dL/dc_{t-1} over dc in place (each invocation reads and writes only its own element).
// Compiled a second time with LSTM_VEC4 (lstm_seq_backward_vec4), four units an invocation as
// vec4, like shaders/lstm_seq.comp, and like it takes its inputs and the first and last steps
// as a specialization constant (STEP); and with LSTM_TEX (lstm_seq_backward_tex,
// lstm_seq_backward_vec4_tex) reading through texel views (shaders/lstm_tex.glsl).
// Push constants mirror vkg_lstm_seq_bw_push in lib/ops/lstm.c: change both.
#include "common.glsl"
#include "lstm_tex.glsl"

layout(std430, binding = 0) writeonly buffer DG { V dg[]; };  // (B, T, 4Hd)
layout(std430, binding = 1) buffer DC { V dc[]; };            // (B, Hd), running dL/dc
INPUT(2, s);    // [gates (B, T, 4Hd) | c (B, T, Hd) | ...]
INPUT(3, g);    // [dout (B, T, Hd) | dc_n (B, Hd)]
INPUT(4, dh);   // (B, Hd), if HAS_DH
INPUT(5, c0);   // (B, Hd), if HAS_C0
#ifdef LSTM_TEX
INPUT(6, dcr);  // DC's view (the storage form reads dc)
#endif

layout(push_constant) uniform Push {
    uint B, T, Hd, t;
    uint dg_off, dc_off, s_off, g_off;
    uint dh_off, c0_off;
    uint dc_tex;  // LSTM_TEX: dc_off in DC's view (from its block's start)
} pc;

// lib/ops/lstm.c's SEQ_* bits: change both
layout(constant_id = 1) const uint STEP = 0;
const bool FIRST = (STEP & 1u) != 0u, LAST = (STEP & 2u) != 0u, HAS_DH = (STEP & 4u) != 0u,
           HAS_C0 = (STEP & 8u) != 0u;

void main() {
    uint n = pc.B * pc.Hd, G = 4u * pc.Hd, BT = pc.B * pc.T, cells = BT * G;
    for (uint q = gl_GlobalInvocationID.x; q < n / W; q += GRID_STRIDE) {
        uint i = q * W, b = i / pc.Hd, j = i % pc.Hd, row = b * pc.T + pc.t;  // (elements; indices below / W)
        uint gb = pc.s_off + row * G + j;
        V ig = LOAD(s, gb / W), fg = LOAD(s, (gb + pc.Hd) / W), gg = LOAD(s, (gb + 2u * pc.Hd) / W),
          og = LOAD(s, (gb + 3u * pc.Hd) / W);
        V tc = safe_tanh(LOAD(s, (pc.s_off + cells + row * pc.Hd + j) / W));
        V cp = V(0.0);
        if (!FIRST) cp = LOAD(s, (pc.s_off + cells + (row - 1u) * pc.Hd + j) / W);
        else if (HAS_C0) cp = LOAD(c0, (pc.c0_off + i) / W);
        V gh = LOAD(g, (pc.g_off + row * pc.Hd + j) / W);
        if (HAS_DH) gh += LOAD(dh, (pc.dh_off + i) / W);
#ifdef LSTM_TEX
        V gc = LAST ? LOAD(g, (pc.g_off + BT * pc.Hd + i) / W) : LOAD(dcr, (pc.dc_tex + i) / W);
#else
        V gc = LAST ? LOAD(g, (pc.g_off + BT * pc.Hd + i) / W) : dc[(pc.dc_off + i) / W];
#endif
        gc += gh * og * (1.0 - tc * tc);
        uint ob = pc.dg_off + row * G + j;
        dg[ob / W] = gc * gg * ig * (1.0 - ig);
        dg[(ob + pc.Hd) / W] = gc * cp * fg * (1.0 - fg);
        dg[(ob + 2u * pc.Hd) / W] = gc * ig * (1.0 - gg * gg);
        dg[(ob + 3u * pc.Hd) / W] = gh * tc * og * (1.0 - og);
        dc[(pc.dc_off + i) / W] = gc * fg;
    }
}
