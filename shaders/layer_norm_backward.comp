#version 450
#extension GL_GOOGLE_include_directive : require
// Backward of shaders/layer_norm.comp from the saved stats (mean, rstd per row), in a fixed order.
// OP (specialization constant 1):
//   0  dx, one invocation per row:  g = dy w,  xh = (x - mean) rstd,
//      dx = rstd (g - mean(g) - xh mean(g xh))                          out: (rows, D)
//   1  dw and db, one invocation per (chunk of pc.per rows, column d), summed over the chunk's
//      rows in order: out[0, c, d] = sum dy xh,  out[1, c, d] = sum dy    out: (2, chunks, D)
//      (the host adds the chunks in order: lib/ops/layer_norm.c)
// x is read through strides like the forward; dy is contiguous (rows, D). FLAGS (specialization
// constant 3, so that lavapipe compiles out the loads of the branch not taken): bit 0 w present;
// bit 1: OP 0 adds acc (contiguous (rows, D), binding 5) to dx as it stores it, acc + dx: the
// gradient the residual path already gave x, the same addition the autograd engine would make
// (v is precise: its product is not contracted into that addition, so the sum's bits are the
// separate add's).
// VEC4 (specialization constant 2): vec4 loads and stores where the forward's VEC4 conditions
// hold for x, dy, w and the output (shaders/layer_norm.comp says why); in OP 1 an invocation
// sums four neighbouring columns, each in the same order as alone (a quarter of the loads).
// Compiled a second time with LN_TEX (layer_norm_backward_tex): every input read through a
// uniform texel buffer, like shaders/layer_norm.comp's LN_TEX (the stats an R32F view always).
// Push constants mirror vkg_layer_norm_backward_push in lib/ops/layer_norm.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const bool VEC4 = false;
layout(constant_id = 3) const uint FLAGS = 0;
const bool HAS_W = (FLAGS & 1u) != 0u, ADD_ACC = (FLAGS & 2u) != 0u;
// ROW4 (specialization constant 4, OP 0 with VEC4, on CPU devices) = D / 4: x's and dy's rows are
// read once into registers and w once an invocation (shaders/layer_norm.comp says why).
layout(constant_id = 4) const uint ROW4 = 0;
layout(std430, binding = 0) writeonly buffer O { float o[]; };
#ifdef LN_TEX
layout(binding = 1) uniform samplerBuffer x_view;
#define X_(i) (VEC4 ? texelFetch(x_view, int(i) >> 2)[int(i) & 3] : texelFetch(x_view, int(i)).x)
#define X4_(i) texelFetch(x_view, int(i))
layout(binding = 2) uniform samplerBuffer dy_view;
#define DY_(i) (VEC4 ? texelFetch(dy_view, int(i) >> 2)[int(i) & 3] : texelFetch(dy_view, int(i)).x)
#define DY4_(i) texelFetch(dy_view, int(i))
layout(binding = 3) uniform samplerBuffer stats_view;
#define STATS_(i) texelFetch(stats_view, int(i)).x
layout(binding = 4) uniform samplerBuffer w_view;
#define W_(i) (VEC4 ? texelFetch(w_view, int(i) >> 2)[int(i) & 3] : texelFetch(w_view, int(i)).x)
#define W4_(i) texelFetch(w_view, int(i))
layout(binding = 5) uniform samplerBuffer acc_view;
#define ACC_(i) (VEC4 ? texelFetch(acc_view, int(i) >> 2)[int(i) & 3] : texelFetch(acc_view, int(i)).x)
#define ACC4_(i) texelFetch(acc_view, int(i))
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
layout(std430, binding = 3) readonly buffer S { float stats[]; };
layout(std430, binding = 4) readonly buffer W { float w[]; };
layout(std430, binding = 5) readonly buffer Acc { float acc[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) readonly buffer DY4 { vec4 dy4[]; };
layout(std430, binding = 4) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 5) readonly buffer Acc4 { vec4 acc4[]; };
#define X_(i) x[i]
#define X4_(i) x4[i]
#define DY_(i) dy[i]
#define DY4_(i) dy4[i]
#define STATS_(i) stats[i]
#define W_(i) w[i]
#define W4_(i) w4[i]
#define ACC_(i) acc[i]
#define ACC4_(i) acc4[i]
#endif
layout(std430, binding = 0) writeonly buffer O4 { vec4 o4[]; };

layout(push_constant) uniform Push {
    uint rows, D, x_off, out_off;
    int s_row, s_col;    // strides of x
    uint dy_off, stats_off;
    uint w_off;
    int w_st;
    uint pad;
    uint per, items;     // OP 1: rows per chunk, chunks x D
    uint acc_off;
} pc;

float weight(uint d) { return HAS_W ? W_(int(pc.w_off) + int(d) * pc.w_st) : 1.0; }

vec4 weight4(uint d) { return HAS_W ? W4_(pc.w_off / 4u + d) : vec4(1.0); }

vec4 wr[ROW4 > 0u ? ROW4 : 1u];   // ROW4: w, read once an invocation (main)

void row_vec4(uint i) {
    uint base = (pc.x_off + i * uint(pc.s_row)) / 4u, gb = (pc.dy_off + i * pc.D) / 4u;
    uint n = ROW4 > 0u ? ROW4 : pc.D / 4u; // ROW4: a constant, and xr, gr hold x's row and dy w
    float mean = STATS_(pc.stats_off + 2u * i), rstd = STATS_(pc.stats_off + 2u * i + 1u);
    vec4 xr[ROW4 > 0u ? ROW4 : 1u], gr[ROW4 > 0u ? ROW4 : 1u];
    vec4 mg = vec4(0.0), mgx = vec4(0.0);
    for (uint d = 0u; d < n; d++) {
        vec4 x = X4_(base + d), g = DY4_(gb + d) * (ROW4 > 0u ? wr[d] : weight4(d));
        if (ROW4 > 0u) {
            xr[d] = x;
            gr[d] = g;
        }
        mg += g;
        mgx += g * (x - mean) * rstd;
    }
    float m1 = sum4(mg) / float(pc.D), m2 = sum4(mgx) / float(pc.D);
    uint ob = (pc.out_off + i * pc.D) / 4u;
    for (uint d = 0u; d < n; d++) {
        vec4 xh = ((ROW4 > 0u ? xr[d] : X4_(base + d)) - mean) * rstd;
        vec4 g = ROW4 > 0u ? gr[d] : DY4_(gb + d) * weight4(d);
        precise vec4 v = rstd * (g - m1 - xh * m2); // not fused into acc + v
        if (ADD_ACC) v = ACC4_((pc.acc_off + i * pc.D) / 4u + d) + v;
        o4[ob + d] = v;
    }
}

void main() {
    for (uint d = 0u; d < ROW4; d++) wr[d] = weight4(d);
    if (OP == 0u && VEC4) {
        for (uint i = gl_GlobalInvocationID.x; i < pc.rows; i += GRID_STRIDE) row_vec4(i);
    } else if (OP == 0u) {
        for (uint i = gl_GlobalInvocationID.x; i < pc.rows; i += GRID_STRIDE) {
            int base = int(pc.x_off) + int(i) * pc.s_row;
            uint gb = pc.dy_off + i * pc.D;
            float mean = STATS_(pc.stats_off + 2u * i), rstd = STATS_(pc.stats_off + 2u * i + 1u);
            float mg = 0.0, mgx = 0.0;
            for (uint d = 0u; d < pc.D; d++) {
                float g = DY_(gb + d) * weight(d);
                mg += g;
                mgx += g * (X_(base + int(d) * pc.s_col) - mean) * rstd;
            }
            mg /= float(pc.D);
            mgx /= float(pc.D);
            for (uint d = 0u; d < pc.D; d++) {
                float xh = (X_(base + int(d) * pc.s_col) - mean) * rstd;
                precise float v = rstd * (DY_(gb + d) * weight(d) - mg - xh * mgx);
                if (ADD_ACC) v = ACC_(pc.acc_off + i * pc.D + d) + v;
                o[pc.out_off + i * pc.D + d] = v;
            }
        }
    } else if (VEC4) {
        uint n4 = pc.D / 4u;
        for (uint it = gl_GlobalInvocationID.x; it < pc.items / 4u; it += GRID_STRIDE) {
            uint d4 = it % n4, c = it / n4;
            vec4 sw = vec4(0.0), sb = vec4(0.0);
            for (uint i = c * pc.per; i < min(pc.rows, (c + 1u) * pc.per); i++) {
                vec4 g = DY4_((pc.dy_off + i * pc.D) / 4u + d4);
                vec4 xh = (X4_((pc.x_off + i * uint(pc.s_row)) / 4u + d4) - STATS_(pc.stats_off + 2u * i)) *
                          STATS_(pc.stats_off + 2u * i + 1u);
                sw += g * xh;
                sb += g;
            }
            for (uint j = 0u; j < 4u; j++) {
                o[pc.out_off + c * pc.D + 4u * d4 + j] = sw[j];
                o[pc.out_off + pc.items + c * pc.D + 4u * d4 + j] = sb[j];
            }
        }
    } else {
        for (uint it = gl_GlobalInvocationID.x; it < pc.items; it += GRID_STRIDE) {
            uint d = it % pc.D, c = it / pc.D;
            float sw = 0.0, sb = 0.0;
            for (uint i = c * pc.per; i < min(pc.rows, (c + 1u) * pc.per); i++) {
                float g = DY_(pc.dy_off + i * pc.D + d);
                float xh = (X_(int(pc.x_off) + int(i) * pc.s_row + int(d) * pc.s_col) - STATS_(pc.stats_off + 2u * i)) *
                           STATS_(pc.stats_off + 2u * i + 1u);
                sw += g * xh;
                sb += g;
            }
            o[pc.out_off + c * pc.D + d] = sw;
            o[pc.out_off + pc.items + c * pc.D + d] = sb;
        }
    }
}
