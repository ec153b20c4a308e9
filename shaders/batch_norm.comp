#version 450
#extension GL_GOOGLE_include_directive : require
// batch_norm forward, elementwise: y = (x - mean[c]) invstd[c] w[c] + b[c] with the per-channel
// stats of batch_norm_stats.comp. Bindings: 0 y contiguous, 1 x contiguous, 2 stats (2, C),
// 3 weight (C), 4 bias (C) (any buffer when flags say absent). Push constants: batch_norm.glsl.
#include "batch_norm.glsl"

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer ST { float stats[]; };
layout(std430, binding = 3) readonly buffer Wt { float wt[]; };
layout(std430, binding = 4) readonly buffer B { float bias[]; };

void main() {
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        uint c = (i / pc.S) % pc.C;
        float v = (x[pc.off[1] + i] - stats[pc.off[2] + c]) * stats[pc.off[2] + pc.C + c];
        if ((pc.flags & BN_WEIGHT) != 0u) v *= wt[pc.off[3] + c];
        if ((pc.flags & BN_BIAS) != 0u) v += bias[pc.off[4] + c];
        y[pc.off[0] + i] = v;
    }
}
