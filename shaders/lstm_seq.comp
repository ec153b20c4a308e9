#version 450
#extension GL_GOOGLE_include_directive : require
// Step t of the whole-sequence LSTM (vkg_lstm, lib/ops/lstm.c), one invocation per (b, j):
// gates = xw[b, t] + hw[b] + bias (PyTorch's order i, f, g, o), c_t = f c_{t-1} + i g,
// h_t = o tanh(c_t). Writes h_t into its place in out (and c_t into c_n at the last step),
// and saves the activated gates, c_t and h_{t-1} in sequence-sized buffers for the backward.
// xw = x W_ih^T for all B*T rows comes from one matmul before the loop; hw = h_{t-1} W_hh^T
// from one per step (absent at t = 0 without h0). One step per dispatch: no loop over T here.
// Compiled a second time with LSTM_VEC4 (lstm_seq_vec4, shaders/CMakeLists.txt): an invocation
// takes four neighbouring units j, every buffer read and written as vec4 (the host picks it when
// Hd and every offset are multiples of 4); lavapipe moves a lane's vec4 for about the cost of a
// float, and a step's kernel is mostly its 21 loads and stores per unit.
// Push constants mirror vkg_lstm_seq_push in lib/ops/lstm.c: change both.
#include "common.glsl"
#ifdef LSTM_VEC4
#define V vec4
#define W 4u
#else
#define V float
#define W 1u
#endif

layout(std430, binding = 0) buffer R { V r[]; };            // [out (B, T, Hd) | c_n (B, Hd)]
layout(std430, binding = 1) buffer S { V s[]; };            // [gates (B, T, 4Hd) | c (B, T, Hd) | h_prev (B, T, Hd)]
layout(std430, binding = 2) readonly buffer XW { V xw[]; }; // (B*T, 4Hd)
layout(std430, binding = 3) readonly buffer HW { V hw[]; }; // (B, 4Hd), if flags & HAS_HW
layout(std430, binding = 4) readonly buffer Bias { V bias[]; }; // (4Hd), if flags & HAS_BIAS
layout(std430, binding = 5) readonly buffer C0 { V c0[]; }; // (B, Hd), if flags & HAS_C0
layout(std430, binding = 6) readonly buffer H0 { V h0[]; }; // (B, Hd), if flags & HAS_H0

layout(push_constant) uniform Push {
    uint B, T, Hd, t;
    uint flags, r_off, s_off, xw_off;
    uint hw_off, b_off, c0_off, h0_off;
} pc;

const uint HAS_BIAS = 1u, HAS_HW = 2u, HAS_C0 = 4u, HAS_H0 = 8u;

void main() {
    uint n = pc.B * pc.Hd, G = 4u * pc.Hd, BT = pc.B * pc.T;
    uint cells = BT * G, hprev = cells + BT * pc.Hd;   // offsets of the parts of S
    for (uint q = gl_GlobalInvocationID.x; q < n / W; q += GRID_STRIDE) {
        uint i = q * W, b = i / pc.Hd, j = i % pc.Hd, row = b * pc.T + pc.t;  // (elements; indices below / W)
        V pre[4];
        for (uint k = 0u; k < 4u; k++) {
            uint col = k * pc.Hd + j;
            pre[k] = xw[(pc.xw_off + row * G + col) / W];
            if ((pc.flags & HAS_HW) != 0u) pre[k] += hw[(pc.hw_off + b * G + col) / W];
            if ((pc.flags & HAS_BIAS) != 0u) pre[k] += bias[(pc.b_off + col) / W];
        }
        V cp;
        if (pc.t > 0u) cp = s[(pc.s_off + cells + (row - 1u) * pc.Hd + j) / W];
        else cp = (pc.flags & HAS_C0) != 0u ? c0[(pc.c0_off + i) / W] : V(0.0);
        if (pc.t == 0u) s[(pc.s_off + hprev + row * pc.Hd + j) / W] = (pc.flags & HAS_H0) != 0u ? h0[(pc.h0_off + i) / W] : V(0.0);
        V ig = safe_sigmoid(pre[0]), fg = safe_sigmoid(pre[1]), gg = safe_tanh(pre[2]), og = safe_sigmoid(pre[3]);
        V cn = fg * cp + ig * gg, hn = og * safe_tanh(cn);
        r[(pc.r_off + row * pc.Hd + j) / W] = hn;
        if (pc.t + 1u < pc.T) s[(pc.s_off + hprev + (row + 1u) * pc.Hd + j) / W] = hn;
        else r[(pc.r_off + BT * pc.Hd + i) / W] = cn;
        s[(pc.s_off + cells + row * pc.Hd + j) / W] = cn;
        uint gb = pc.s_off + row * G + j;
        s[gb / W] = ig;
        s[(gb + pc.Hd) / W] = fg;
        s[(gb + 2u * pc.Hd) / W] = gg;
        s[(gb + 3u * pc.Hd) / W] = og;
    }
}
