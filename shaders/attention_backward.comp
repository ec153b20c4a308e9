#version 450
#extension GL_GOOGLE_include_directive : require
// Attention backward, scores recomputed from q, k and the saved logsumexp (no (T, S) matrix):
// p = exp(score - lse), ds = p (dO . v_s - delta) scale. VARIANT 1: dq, one invocation per
// (query row, chunk of DC columns of Dh), summing over keys in order. VARIANT 2: dk and dv, one
// invocation per (key row, chunk of DC columns), summing over queries in order. No atomics:
// bitwise reproducible. Push constants mirror vkg_attention_push in lib/ops/attention.c.
#include "common.glsl"

layout(constant_id = 1) const uint VARIANT = 1;
layout(constant_id = 2) const uint DC = 32u;   // columns per invocation, as in attention.comp
layout(std430, binding = 0) writeonly buffer W0 { float w0[]; };   // dq or dk
layout(std430, binding = 1) writeonly buffer W1 { float w1[]; };   // dv (VARIANT 2)
layout(std430, binding = 2) readonly buffer Q { float q[]; };
layout(std430, binding = 3) readonly buffer K { float k[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) readonly buffer M { float mask[]; };
layout(std430, binding = 6) readonly buffer DO { float dout[]; };
layout(std430, binding = 7) readonly buffer St { float st[]; };    // (rows, 2): lse, delta

layout(push_constant) uniform Push {
    uint B, H, T, S;
    uint Dh, Dv, flags, nchunk;      // flags: bit 0 causal, bit 1 mask
    float scale;
    uint q_off, k_off, v_off;
    uint o_off, lse_off, m_off, do_off;   // o_off: dq/dk, lse_off: dv, lse_off of st is 0
    ivec4 mst;
} pc;

#define NEG_INF uintBitsToFloat(0xff800000u)

// The softmax weight of (query row `row` = (b, h, t), key s) and its ds; false if masked out.
bool weight(uint row, uint b, uint h, uint t, uint bh, uint s, out float p, out float ds) {
    float l = st[2u * row], delta = st[2u * row + 1u];
    p = 0.0;
    ds = 0.0;
    if (l == NEG_INF || ((pc.flags & 1u) != 0u && s > t)) return false;
    uint qb = pc.q_off + row * pc.Dh, kb = pc.k_off + (bh * pc.S + s) * pc.Dh;
    float dot = 0.0;
    for (uint d = 0u; d < pc.Dh; d++) dot += q[qb + d] * k[kb + d];
    float x = dot * pc.scale;
    if ((pc.flags & 2u) != 0u)
        x += mask[uint(int(pc.m_off) + int(b) * pc.mst.x + int(h) * pc.mst.y + int(t) * pc.mst.z + int(s) * pc.mst.w)];
    if (x == NEG_INF) return false;
    p = exp(x - l);
    uint vb = pc.v_off + (bh * pc.S + s) * pc.Dv, db = pc.do_off + row * pc.Dv;
    float dp = 0.0;
    for (uint e = 0u; e < pc.Dv; e++) dp += dout[db + e] * v[vb + e];
    ds = p * (dp - delta) * pc.scale;
    return true;
}

void main() {
    if (VARIANT == 1u) {
        uint rows = pc.B * pc.H * pc.T;
        for (uint gid = gl_GlobalInvocationID.x; gid < rows * pc.nchunk; gid += GRID_STRIDE) {
            uint row = gid / pc.nchunk, ch = gid % pc.nchunk;
            uint bh = row / pc.T, t = row % pc.T, b = bh / pc.H, h = bh % pc.H;
            uint d0 = ch * DC, dn = min(DC, pc.Dh - d0);
            float acc[DC];
            for (uint e = 0u; e < DC; e++) acc[e] = 0.0;
            for (uint s = 0u; s < pc.S; s++) {
                float p, ds;
                if (!weight(row, b, h, t, bh, s, p, ds)) continue;
                uint kb = pc.k_off + (bh * pc.S + s) * pc.Dh + d0;
                for (uint e = 0u; e < DC; e++)
                    if (e < dn) acc[e] += ds * k[kb + e];
            }
            for (uint e = 0u; e < DC; e++)
                if (e < dn) w0[pc.o_off + row * pc.Dh + d0 + e] = acc[e];
        }
    } else {
        uint keys = pc.B * pc.H * pc.S;
        for (uint gid = gl_GlobalInvocationID.x; gid < keys * pc.nchunk; gid += GRID_STRIDE) {
            uint key = gid / pc.nchunk, ch = gid % pc.nchunk;
            uint bh = key / pc.S, s = key % pc.S, b = bh / pc.H, h = bh % pc.H;
            uint d0 = ch * DC;
            uint kn = pc.Dh > d0 ? min(DC, pc.Dh - d0) : 0u, vn = pc.Dv > d0 ? min(DC, pc.Dv - d0) : 0u;
            float ak[DC], av[DC];
            for (uint e = 0u; e < DC; e++) { ak[e] = 0.0; av[e] = 0.0; }
            uint t0 = (pc.flags & 1u) != 0u ? s : 0u;
            for (uint t = t0; t < pc.T; t++) {
                uint row = bh * pc.T + t;
                float p, ds;
                if (!weight(row, b, h, t, bh, s, p, ds)) continue;
                uint qb = pc.q_off + row * pc.Dh + d0, db = pc.do_off + row * pc.Dv + d0;
                for (uint e = 0u; e < DC; e++) {
                    if (e < kn) ak[e] += ds * q[qb + e];
                    if (e < vn) av[e] += p * dout[db + e];
                }
            }
            for (uint e = 0u; e < DC; e++) {
                if (e < kn) w0[pc.o_off + key * pc.Dh + d0 + e] = ak[e];
                if (e < vn) w1[pc.lse_off + key * pc.Dv + d0 + e] = av[e];
            }
        }
    }
}
