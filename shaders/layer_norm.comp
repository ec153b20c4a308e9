#version 450
#extension GL_GOOGLE_include_directive : require
// Layer norm over the last dim (D) of x seen as (rows, D) through strides (s_row, s_col); one
// invocation per row, two passes (mean, then squared deviations) in a fixed order:
//   y = (x - mean) rstd w + b,  rstd = 1 / sqrt(var + eps),  var biased;  stats[row] = (mean, rstd)
// FLAGS (specialization constant 2): bit 0 w present, bit 1 b present (absent ones are bound to
// x and never read); constants, not push fields, since lavapipe would run the loads of both sides
// of a branch on a push field (shaders/elementwise.glsl).
// VEC4 (specialization constant 1), set by the host where x's rows, y, w and b are contiguous
// and start at multiples of 4 floats and D is a multiple of 4: the rows are read and written
// as vec4, each lane summing 4 partial sums. lavapipe loads and stores a lane's words one at a
// time in a loop over the lanes, so a vec4 costs about what one float does there (3x faster
// over the GPT's 2048 x 128). The X4, Y4, W4, B4 blocks alias bindings 0, 2, 3, 4.
// Compiled a second time with LN_TEX (layer_norm_tex): x, w and b read through uniform texel
// buffers, views of their whole blocks (RGBA32F with VEC4, else R32F; their offsets count from the
// block's start), on devices that fetch texels faster than they load storage buffers (lavapipe).
// Push constants mirror vkg_layer_norm_push in lib/ops/layer_norm.c: change both.
#include "common.glsl"

layout(constant_id = 1) const bool VEC4 = false;
layout(constant_id = 2) const uint FLAGS = 0;
const bool HAS_W = (FLAGS & 1u) != 0u, HAS_B = (FLAGS & 2u) != 0u;
// ROW4 (specialization constant 3, VEC4 only, on CPU devices: vkg_row_regs, lib/ops/ops.h) = D / 4:
// the row is read once into registers and w, b once an invocation, instead of x three times and
// w, b once a row (lavapipe loads lane by lane, even a word all lanes share); the same arithmetic.
layout(constant_id = 3) const uint ROW4 = 0;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) writeonly buffer S { float stats[]; };
#ifdef LN_TEX
layout(binding = 2) uniform samplerBuffer x_view;
#define X_(i) (VEC4 ? texelFetch(x_view, int(i) >> 2)[int(i) & 3] : texelFetch(x_view, int(i)).x)
#define X4_(i) texelFetch(x_view, int(i))
layout(binding = 3) uniform samplerBuffer w_view;
#define W_(i) (VEC4 ? texelFetch(w_view, int(i) >> 2)[int(i) & 3] : texelFetch(w_view, int(i)).x)
#define W4_(i) texelFetch(w_view, int(i))
layout(binding = 4) uniform samplerBuffer b_view;
#define B_(i) (VEC4 ? texelFetch(b_view, int(i) >> 2)[int(i) & 3] : texelFetch(b_view, int(i)).x)
#define B4_(i) texelFetch(b_view, int(i))
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer W { float w[]; };
layout(std430, binding = 4) readonly buffer B { float b[]; };
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 3) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 4) readonly buffer B4 { vec4 b4[]; };
#define X_(i) x[i]
#define X4_(i) x4[i]
#define W_(i) w[i]
#define W4_(i) w4[i]
#define B_(i) b[i]
#define B4_(i) b4[i]
#endif
layout(std430, binding = 0) writeonly buffer Y4 { vec4 y4[]; };

layout(push_constant) uniform Push {
    uint rows, D, x_off, y_off;
    int s_row, s_col;    // strides of x, in elements
    uint stats_off, pad;
    uint w_off, b_off;
    int w_st, b_st;      // strides of w and b
    float eps;
} pc;


vec4 wr[ROW4 > 0u ? ROW4 : 1u], br[ROW4 > 0u ? ROW4 : 1u];   // ROW4: w and b, read once (main)

// returns (mean, rstd)
vec2 row_vec4(uint i) {
    uint base = (pc.x_off + i * uint(pc.s_row)) / 4u;
    uint n = ROW4 > 0u ? ROW4 : pc.D / 4u; // ROW4: a constant, and xr holds the row
    vec4 xr[ROW4 > 0u ? ROW4 : 1u];
    vec4 s = vec4(0.0);
    for (uint d = 0u; d < n; d++) {
        vec4 v = X4_(base + d);
        if (ROW4 > 0u) xr[d] = v;
        s += v;
    }
    float mean = sum4(s) / float(pc.D);
    vec4 q = vec4(0.0);
    for (uint d = 0u; d < n; d++) {
        vec4 v = (ROW4 > 0u ? xr[d] : X4_(base + d)) - mean;
        q += v * v;
    }
    float rstd = 1.0 / sqrt(sum4(q) / float(pc.D) + pc.eps);
    uint yb = (pc.y_off + i * pc.D) / 4u;
    for (uint d = 0u; d < n; d++) {
        vec4 v = ((ROW4 > 0u ? xr[d] : X4_(base + d)) - mean) * rstd;
        if (HAS_W) v *= ROW4 > 0u ? wr[d] : W4_(pc.w_off / 4u + d);
        if (HAS_B) v += ROW4 > 0u ? br[d] : B4_(pc.b_off / 4u + d);
        y4[yb + d] = v;
    }
    return vec2(mean, rstd);
}

void main() {
    for (uint d = 0u; d < ROW4; d++) {
        wr[d] = HAS_W ? W4_(pc.w_off / 4u + d) : vec4(1.0);
        br[d] = HAS_B ? B4_(pc.b_off / 4u + d) : vec4(0.0);
    }
    for (uint i = gl_GlobalInvocationID.x; VEC4 && i < pc.rows; i += GRID_STRIDE) {
        vec2 ms = row_vec4(i);
        stats[pc.stats_off + 2u * i] = ms.x;
        stats[pc.stats_off + 2u * i + 1u] = ms.y;
    }
    for (uint i = gl_GlobalInvocationID.x; !VEC4 && i < pc.rows; i += GRID_STRIDE) {
        int base = int(pc.x_off) + int(i) * pc.s_row;
        float s = 0.0;
        for (uint d = 0u; d < pc.D; d++) s += X_(base + int(d) * pc.s_col);
        float mean = s / float(pc.D);
        float q = 0.0;
        for (uint d = 0u; d < pc.D; d++) {
            float v = X_(base + int(d) * pc.s_col) - mean;
            q += v * v;
        }
        float rstd = 1.0 / sqrt(q / float(pc.D) + pc.eps);
        uint yb = pc.y_off + i * pc.D;
        for (uint d = 0u; d < pc.D; d++) {
            float v = (X_(base + int(d) * pc.s_col) - mean) * rstd;
            if (HAS_W) v *= W_(int(pc.w_off) + int(d) * pc.w_st);
            if (HAS_B) v += B_(int(pc.b_off) + int(d) * pc.b_st);
            y[yb + d] = v;
        }
        stats[pc.stats_off + 2u * i] = mean;
        stats[pc.stats_off + 2u * i + 1u] = rstd;
    }
}
