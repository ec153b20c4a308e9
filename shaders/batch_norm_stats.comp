#version 450
#extension GL_GOOGLE_include_directive : require
// batch_norm forward, per-channel statistics: one workgroup per channel. Train mode: the batch
// mean, then the biased variance from the squared deviations (two passes, in a fixed order),
// giving stats = (mean, 1/sqrt(var + eps)); the running stats are updated in place with the
// unbiased variance when tracked. Eval mode: stats from the running stats.
// Bindings: 0 stats (2, C), 1 running_mean (C), 2 running_var (C) (any buffer when not
// tracked), 3 x contiguous. Push constants: batch_norm.glsl. Workgroup size: a power of two <= 256.
#include "batch_norm.glsl"

layout(std430, binding = 0) writeonly buffer ST { float stats[]; };
layout(std430, binding = 1) buffer RM { float rmean[]; };
layout(std430, binding = 2) buffer RV { float rvar[]; };
layout(std430, binding = 3) readonly buffer X { float x[]; };

void main() {
    uint t = gl_LocalInvocationID.x, L = gl_WorkGroupSize.x;
    uint M = pc.N * pc.S;
    for (uint c = gl_WorkGroupID.x; c < pc.C; c += gl_NumWorkGroups.x) {
        float mean, var;
        if ((pc.flags & BN_TRAIN) != 0u) {
            float s = 0.0;
            for (uint e = t; e < M; e += L) s += x[pc.off[3] + ((e / pc.S) * pc.C + c) * pc.S + e % pc.S];
            mean = workgroup_sum(s) / float(M);
            float q = 0.0;
            for (uint e = t; e < M; e += L) {
                float d = x[pc.off[3] + ((e / pc.S) * pc.C + c) * pc.S + e % pc.S] - mean;
                q += d * d;
            }
            var = workgroup_sum(q) / float(M);
        } else {
            mean = rmean[pc.off[1] + c];
            var = rvar[pc.off[2] + c];
        }
        if (t == 0u) {
            stats[pc.off[0] + c] = mean;
            stats[pc.off[0] + pc.C + c] = 1.0 / sqrt(var + pc.eps);
            if ((pc.flags & (BN_TRAIN | BN_TRACK)) == (BN_TRAIN | BN_TRACK)) {
                float m = pc.momentum;
                rmean[pc.off[1] + c] = (1.0 - m) * rmean[pc.off[1] + c] + m * mean;
                rvar[pc.off[2] + c] = (1.0 - m) * rvar[pc.off[2] + c] + m * var * float(M) / float(M - 1u);
            }
        }
        barrier();
    }
}
