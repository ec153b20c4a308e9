#version 450
#extension GL_GOOGLE_include_directive : require
// Layer norm over the last dim (D) of x seen as (rows, D) through strides (s_row, s_col); one
// invocation per row, two passes (mean, then squared deviations) in a fixed order:
//   y = (x - mean) rstd w + b,  rstd = 1 / sqrt(var + eps),  var biased;  stats[row] = (mean, rstd)
// flags bit 0: w present, bit 1: b present (absent ones are bound to x and never read).
// Push constants mirror vkg_layer_norm_push in lib/ops/layer_norm.c: change both.
#include "common.glsl"

layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) writeonly buffer S { float stats[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) readonly buffer B { float b[]; };

layout(push_constant) uniform Push {
    uint rows, D, x_off, y_off;
    int s_row, s_col;    // strides of x, in elements
    uint stats_off, flags;
    uint w_off, b_off;
    int w_st, b_st;      // strides of w and b
    float eps;
} pc;

void main() {
    for (uint i = gl_GlobalInvocationID.x; i < pc.rows; i += GRID_STRIDE) {
        int base = int(pc.x_off) + int(i) * pc.s_row;
        float s = 0.0;
        for (uint d = 0u; d < pc.D; d++) s += x[base + int(d) * pc.s_col];
        float mean = s / float(pc.D);
        float q = 0.0;
        for (uint d = 0u; d < pc.D; d++) {
            float v = x[base + int(d) * pc.s_col] - mean;
            q += v * v;
        }
        float rstd = 1.0 / sqrt(q / float(pc.D) + pc.eps);
        uint yb = pc.y_off + i * pc.D;
        for (uint d = 0u; d < pc.D; d++) {
            float v = (x[base + int(d) * pc.s_col] - mean) * rstd;
            if ((pc.flags & 1u) != 0u) v *= w[int(pc.w_off) + int(d) * pc.w_st];
            if ((pc.flags & 2u) != 0u) v += b[int(pc.b_off) + int(d) * pc.b_st];
            y[yb + d] = v;
        }
        stats[pc.stats_off + 2u * i] = mean;
        stats[pc.stats_off + 2u * i + 1u] = rstd;
    }
}
