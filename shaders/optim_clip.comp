#version 450
#extension GL_GOOGLE_include_directive : require
// Gradient clipping by global norm, the scaling half: g *= min(max_norm / (norm + 1e-6), 1),
// with the norm read from a device buffer (one element), so no host read sits between the
// norm's reduction and the scaling. The formula is torch.nn.utils.clip_grad_norm_'s.
#include "common.glsl"

layout(std430, binding = 0) buffer G { float g[]; };            // gradient, scaled in place
layout(std430, binding = 1) readonly buffer N { float norm[]; }; // the total norm

// Mirrors vkg_clip_push in lib/optim/clip.c: change both.
layout(push_constant) uniform Push {
    uint n, g_off, norm_off;
    float max_norm;
} pc;

void main() {
    float coef = min(pc.max_norm / (norm[pc.norm_off] + 1e-6), 1.0);
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) g[pc.g_off + i] *= coef;
}
