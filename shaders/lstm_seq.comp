#version 450
#extension GL_GOOGLE_include_directive : require
// Step t of the whole-sequence LSTM (vkg_lstm, lib/ops/lstm.c), one invocation per (b, j):
// gates = xw[b, t] + hw[b] (PyTorch's order i, f, g, o; the biases are in xw, added by the
// matmul's epilogue), c_t = f c_{t-1} + i g,
// h_t = o tanh(c_t). Writes h_t into its place in out (and c_t into c_n at the last step),
// and saves the activated gates, c_t and h_{t-1} in sequence-sized buffers for the backward.
// xw = x W_ih^T for all B*T rows comes from one matmul before the loop; hw = h_{t-1} W_hh^T
// from one per step (absent at t = 0 without h0). One step per dispatch: no loop over T here.
// Compiled a second time with LSTM_VEC4 (lstm_seq_vec4, shaders/CMakeLists.txt): an invocation
// takes four neighbouring units j, every buffer read and written as vec4 (the host picks it when
// Hd and every offset are multiples of 4); lavapipe moves a lane's vec4 for about the cost of a
// float, and a step's kernel is mostly its loads and stores. Which inputs exist and whether t is
// the first or last step are a specialization constant (STEP), not push flags: lavapipe runs
// both sides of an if even when every lane agrees, so each absent input still cost its masked
// load loop, and the first and last steps' branches their loads and stores at every step.
// And with LSTM_TEX (lstm_seq_tex, lstm_seq_vec4_tex): reading through texel views
// (shaders/lstm_tex.glsl).
// Push constants mirror vkg_lstm_seq_push in lib/ops/lstm.c: change both.
#include "common.glsl"
#include "lstm_tex.glsl"

layout(std430, binding = 0) buffer R { V r[]; };            // [out (B, T, Hd) | c_n (B, Hd)]
layout(std430, binding = 1) buffer S { V s[]; };            // [gates (B, T, 4Hd) | c (B, T, Hd) | h_prev (B, T, Hd)]
INPUT(2, xw);  // (B*T, 4Hd)
INPUT(3, hw);  // (B, 4Hd), if HAS_HW
INPUT(4, c0);  // (B, Hd), if HAS_C0
INPUT(5, h0);  // (B, Hd), if HAS_H0
#ifdef LSTM_TEX
INPUT(6, sr);  // S's view, for c_{t-1} (the storage form reads s)
#endif

layout(push_constant) uniform Push {
    uint B, T, Hd, t;
    uint r_off, s_off, xw_off, hw_off;
    uint c0_off, h0_off;
    uint s_tex;  // LSTM_TEX: s_off in S's view (from its block's start)
} pc;

// lib/ops/lstm.c's SEQ_* bits: change both
layout(constant_id = 1) const uint STEP = 0;
const bool FIRST = (STEP & 1u) != 0u, LAST = (STEP & 2u) != 0u, HAS_HW = (STEP & 4u) != 0u,
           HAS_C0 = (STEP & 8u) != 0u, HAS_H0 = (STEP & 16u) != 0u;

void main() {
    uint n = pc.B * pc.Hd, G = 4u * pc.Hd, BT = pc.B * pc.T;
    uint cells = BT * G, hprev = cells + BT * pc.Hd;   // offsets of the parts of S
    for (uint q = gl_GlobalInvocationID.x; q < n / W; q += GRID_STRIDE) {
        uint i = q * W, b = i / pc.Hd, j = i % pc.Hd, row = b * pc.T + pc.t;  // (elements; indices below / W)
        V pre[4];
        for (uint k = 0u; k < 4u; k++) {
            uint col = k * pc.Hd + j;
            pre[k] = LOAD(xw, (pc.xw_off + row * G + col) / W);
            if (HAS_HW) pre[k] += LOAD(hw, (pc.hw_off + b * G + col) / W);
        }
        V cp = V(0.0);
#ifdef LSTM_TEX
        if (!FIRST) cp = LOAD(sr, (pc.s_tex + cells + (row - 1u) * pc.Hd + j) / W);
#else
        if (!FIRST) cp = s[(pc.s_off + cells + (row - 1u) * pc.Hd + j) / W];
#endif
        else if (HAS_C0) cp = LOAD(c0, (pc.c0_off + i) / W);
        if (FIRST) s[(pc.s_off + hprev + row * pc.Hd + j) / W] = HAS_H0 ? LOAD(h0, (pc.h0_off + i) / W) : V(0.0);
        V ig = safe_sigmoid(pre[0]), fg = safe_sigmoid(pre[1]), gg = safe_tanh(pre[2]), og = safe_sigmoid(pre[3]);
        V cn = fg * cp + ig * gg, hn = og * safe_tanh(cn);
        r[(pc.r_off + row * pc.Hd + j) / W] = hn;
        if (!LAST) s[(pc.s_off + hprev + (row + 1u) * pc.Hd + j) / W] = hn;
        else r[(pc.r_off + BT * pc.Hd + i) / W] = cn;
        s[(pc.s_off + cells + row * pc.Hd + j) / W] = cn;
        uint gb = pc.s_off + row * G + j;
        s[gb / W] = ig;
        s[(gb + pc.Hd) / W] = fg;
        s[(gb + 2u * pc.Hd) / W] = gg;
        s[(gb + 3u * pc.Hd) / W] = og;
    }
}
