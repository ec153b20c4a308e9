#version 450
#extension GL_GOOGLE_include_directive : require
// First pass of the attention backward: per query row, stats = (lse, delta = dO . O), read by
// both passes of shaders/attention_backward.comp. Push constants mirror
// vkg_attention_delta_push in lib/ops/attention.c: change both.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer St { float st[]; };   // (rows, 2)
layout(std430, binding = 1) readonly buffer O { float o[]; };
layout(std430, binding = 2) readonly buffer DO { float dout[]; };
layout(std430, binding = 3) readonly buffer L { float lse[]; };

layout(push_constant) uniform Push {
    uint rows, Dv, o_off, do_off;
    uint lse_off, st_off;
} pc;

void main() {
    for (uint r = gl_GlobalInvocationID.x; r < pc.rows; r += GRID_STRIDE) {
        float d = 0.0;
        for (uint e = 0u; e < pc.Dv; e++) d += dout[pc.do_off + r * pc.Dv + e] * o[pc.o_off + r * pc.Dv + e];
        st[pc.st_off + 2u * r] = lse[pc.lse_off + r];
        st[pc.st_off + 2u * r + 1u] = d;
    }
}
