#version 450
#extension GL_GOOGLE_include_directive : require
// batch_norm backward. Specialization constant 1 = STAGE.
// STAGE 0, one workgroup per channel, a fixed-order reduction: sums (2, C) = (sum g,
// sum g xhat), xhat = (x - mean) invstd; they are also dbias and dweight.
//   Bindings: 0 sums (2, C), 1 g contiguous, 2 x contiguous, 3 stats (2, C).
// STAGE 1, elementwise: dx = w invstd (g - (sum g + xhat sum g xhat) / M) in train mode (the
// statistics depend on x), w invstd g in eval mode.
//   Bindings: 0 dx contiguous, 1 g, 2 x, 3 stats, 4 sums, 5 weight (any buffer when absent).
// Push constants: batch_norm.glsl.
#include "batch_norm.glsl"

layout(constant_id = 1) const uint STAGE = 0;
layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) readonly buffer G { float gy[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer ST { float stats[]; };
layout(std430, binding = 4) readonly buffer SU { float sums[]; };
layout(std430, binding = 5) readonly buffer Wt { float wt[]; };

void main() {
    if (STAGE == 0) {
        uint t = gl_LocalInvocationID.x, L = gl_WorkGroupSize.x;
        uint M = pc.N * pc.S;
        for (uint c = gl_WorkGroupID.x; c < pc.C; c += gl_NumWorkGroups.x) {
            float mean = stats[pc.off[3] + c], invstd = stats[pc.off[3] + pc.C + c];
            float sg = 0.0, sgx = 0.0;
            for (uint e = t; e < M; e += L) {
                uint i = ((e / pc.S) * pc.C + c) * pc.S + e % pc.S;
                float g = gy[pc.off[1] + i];
                sg += g;
                sgx += g * (x[pc.off[2] + i] - mean) * invstd;
            }
            sg = workgroup_sum(sg);
            sgx = workgroup_sum(sgx);
            if (t == 0u) {
                o[pc.off[0] + c] = sg;
                o[pc.off[0] + pc.C + c] = sgx;
            }
            barrier();
        }
    } else {
        float M = float(pc.N * pc.S);
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
            uint c = (i / pc.S) % pc.C;
            float invstd = stats[pc.off[3] + pc.C + c];
            float g = gy[pc.off[1] + i];
            if ((pc.flags & BN_TRAIN) != 0u) {
                float xhat = (x[pc.off[2] + i] - stats[pc.off[3] + c]) * invstd;
                g -= (sums[pc.off[4] + c] + xhat * sums[pc.off[4] + pc.C + c]) / M;
            }
            float w = (pc.flags & BN_WEIGHT) != 0u ? wt[pc.off[5] + c] : 1.0;
            o[pc.off[0] + i] = w * invstd * g;
        }
    }
}
