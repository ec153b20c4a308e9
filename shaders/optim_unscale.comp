#version 450
#extension GL_GOOGLE_include_directive : require
// Dynamic loss scaling, the unscale half (torch's _amp_foreach_non_finite_check_and_unscale_):
// g *= inv_scale in place, and if any result is inf or NaN, the flag word is OR-ed with the bits
// of 1.0f (one atomic per invocation that saw one), so that after every parameter's dispatch one
// read of the flag says whether the step may be taken. An OR of the same bits gives the same
// result in any order: the flag is deterministic. The test is on the bits (exponent all ones),
// which no fast-math setting can fold away.
#include "common.glsl"

layout(std430, binding = 0) buffer G { float g[]; };      // a gradient, unscaled in place
layout(std430, binding = 1) buffer F { uint flag[]; };    // 0, or the bits of 1.0f: found inf/NaN

// Mirrors vkg_unscale_push in lib/optim/scaler.c: change both.
layout(push_constant) uniform Push {
    uint n, g_off, flag_off;
    float inv_scale;
} pc;

void main() {
    bool bad = false;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        float v = g[pc.g_off + i] * pc.inv_scale;
        g[pc.g_off + i] = v;
        if ((floatBitsToUint(v) & 0x7f800000u) == 0x7f800000u) bad = true;
    }
    if (bad) atomicOr(flag[pc.flag_off], 0x3f800000u);
}
