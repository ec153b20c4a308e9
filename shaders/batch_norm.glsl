// Push constants of the batch-norm shaders (batch_norm*.comp). Mirrors vkg_bn_push in
// lib/ops/batch_norm.c: change both. x is contiguous (N, C, S), S the product of the spatial dims.
#include "common.glsl"

layout(push_constant) uniform Push {
    uint N, C, S, flags;  // flags: bit 0 train, bit 1 running stats tracked, bit 2 weight, bit 3 bias
    float momentum, eps;
    uint n, pad;          // elements of x
    uint off[8];          // offset of binding i, in elements
} pc;

const uint BN_TRAIN = 1u, BN_TRACK = 2u, BN_WEIGHT = 4u, BN_BIAS = 8u;

// A fixed-order tree over the workgroup (one workgroup per channel): every invocation gets the
// sum of v over the workgroup. The order depends only on the workgroup size: reproducible.
shared float s_red[256];
float workgroup_sum(float v) {
    uint t = gl_LocalInvocationID.x;
    s_red[t] = v;
    barrier();
    for (uint w = gl_WorkGroupSize.x / 2u; w > 0u; w >>= 1) {
        if (t < w) s_red[t] += s_red[t + w];
        barrier();
    }
    float r = s_red[0];
    barrier();
    return r;
}
