#version 450
#extension GL_GOOGLE_include_directive : require
// Fused scaled-dot-product attention forward: one invocation per (query row, chunk of DC output
// columns) walks the keys once in order with an online softmax (running max and sum), so the
// (T, S) scores are never stored; the row's logsumexp is kept for the backward. A row whose
// keys are all masked out gives zeros and lse = -inf. Fixed order: bitwise reproducible.
// Push constants mirror vkg_attention_push in lib/ops/attention.c: change both.
#include "common.glsl"

// Output columns per invocation: 4, 8, 16 or 32, the smallest that holds Dv (up to 32), so
// small heads do not pay for a 32-wide accumulator (chunk_width in lib/ops/attention.c).
layout(constant_id = 1) const uint DC = 32u;

layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) writeonly buffer L { float lse[]; };
layout(std430, binding = 2) readonly buffer Q { float q[]; };
layout(std430, binding = 3) readonly buffer K { float k[]; };
layout(std430, binding = 4) readonly buffer V { float v[]; };
layout(std430, binding = 5) readonly buffer M { float mask[]; };

layout(push_constant) uniform Push {
    uint B, H, T, S;
    uint Dh, Dv, flags, nchunk;      // flags: bit 0 causal, bit 1 mask
    float scale;
    uint q_off, k_off, v_off;
    uint o_off, lse_off, m_off, pad;
    ivec4 mst;                       // mask strides over (B, H, T, S), 0 where broadcast
} pc;

#define NEG_INF uintBitsToFloat(0xff800000u)

void main() {
    uint rows = pc.B * pc.H * pc.T;
    for (uint gid = gl_GlobalInvocationID.x; gid < rows * pc.nchunk; gid += GRID_STRIDE) {
        uint row = gid / pc.nchunk, ch = gid % pc.nchunk;
        uint bh = row / pc.T, t = row % pc.T, b = bh / pc.H, h = bh % pc.H;
        uint d0 = ch * DC;
        uint dn = min(DC, pc.Dv - d0);
        float acc[DC];
        for (uint e = 0u; e < DC; e++) acc[e] = 0.0;
        float mx = NEG_INF, l = 0.0;
        uint qb = pc.q_off + row * pc.Dh, kb = pc.k_off + bh * pc.S * pc.Dh, vb = pc.v_off + bh * pc.S * pc.Dv + d0;
        uint send = (pc.flags & 1u) != 0u ? min(pc.S, t + 1u) : pc.S;
        int mb = int(pc.m_off) + int(b) * pc.mst.x + int(h) * pc.mst.y + int(t) * pc.mst.z;
        for (uint s = 0u; s < send; s++) {
            float dot = 0.0;
            for (uint d = 0u; d < pc.Dh; d++) dot += q[qb + d] * k[kb + s * pc.Dh + d];
            float x = dot * pc.scale;
            if ((pc.flags & 2u) != 0u) x += mask[uint(mb + int(s) * pc.mst.w)];
            if (x == NEG_INF) continue;
            if (x > mx) {
                float corr = exp(mx - x);
                l *= corr;
                for (uint e = 0u; e < DC; e++) acc[e] *= corr;
                mx = x;
            }
            float p = exp(x - mx);
            l += p;
            for (uint e = 0u; e < DC; e++)
                if (e < dn) acc[e] += p * v[vb + s * pc.Dv + e];
        }
        uint ob = pc.o_off + row * pc.Dv + d0;
        float inv = l > 0.0 ? 1.0 / l : 0.0;
        for (uint e = 0u; e < DC; e++)
            if (e < dn) o[ob + e] = acc[e] * inv;
        if (ch == 0u) lse[pc.lse_off + row] = l > 0.0 ? mx + log(l) : NEG_INF;
    }
}
