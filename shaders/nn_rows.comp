#version 450
#extension GL_GOOGLE_include_directive : require
// Softmax, log_softmax, logsumexp, var and std over one axis: x is seen as (outer, R, inner)
// through strides (so, sr, si), one invocation per (outer, inner) row, in a fixed order so that
// results are bitwise reproducible. VARIANT (specialization constant 2): 0 one invocation per
// row (many rows), 1 one workgroup per row (few long rows: a fixed tree, nn_rows_wg.glsl).
// OP (specialization constant 1) is the op's code in
// lib/include/vkgrad/op_list_nn.h: softmax 0, log_softmax 1, logsumexp 2, var 3, std 4 (change
// both). y is contiguous: (outer, R, inner) for 0 and 1, (outer, inner) for the others.
// VEC4 (specialization constant 3), softmax and log_softmax in variant 0 only: the host sets it
// where rows are contiguous (inner 1, sr 1), R and every row's start multiples of 4; rows are
// then read and written as vec4 (lavapipe moves a lane's vec4 for about the cost of a float:
// shaders/layer_norm.comp).
// Compiled a second time with NR_TEX (nn_rows_tex): x read through a uniform texel buffer, a
// view of its whole block (RGBA32F with VEC4, else R32F; x_off counts from the block's start), on
// devices that fetch texels faster than they load storage buffers (lavapipe).
// Push constants mirror vkg_nn_rows_push in lib/ops/nn_rows.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const uint VARIANT = 0;
layout(constant_id = 3) const bool VEC4 = false;
// ROW4 (specialization constant 4, VEC4 on CPU devices: vkg_row_regs, lib/ops/ops.h) = R / 4: the row is
// read and scaled once, into registers, and its exponentials computed once, where the loops
// read it three times and exponentiate twice (lavapipe loads lane by lane); the same arithmetic.
layout(constant_id = 4) const uint ROW4 = 0;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
#ifdef NR_TEX
layout(binding = 1) uniform samplerBuffer x_view;
#define X_(i) (VEC4 ? texelFetch(x_view, int(i) >> 2)[int(i) & 3] : texelFetch(x_view, int(i)).x)
#define X4_(i) texelFetch(x_view, int(i))
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
#define X_(i) x[i]
#define X4_(i) x4[i]
#endif
layout(std430, binding = 0) writeonly buffer Y4 { vec4 y4[]; };

layout(push_constant) uniform Push {
    uint outer, R, inner, x_off;
    int so, sr, si;      // strides of x's outer, axis and inner parts, in elements
    uint y_off;
    float denom;         // var / std: max(R - correction, 0)
    float scale;         // softmax family: x is read as x scale (1 for the public ops)
    uint causal;         // softmax family: T; entries r > (row % T) read as -inf (0: none)
} pc;

#define INF uintBitsToFloat(0x7f800000u)
#define NAN uintBitsToFloat(0x7fc00000u)

#include "nn_rows_wg.glsl"

// The softmax family's view of x: scaled, and -inf past the query's own column where causal
// (lib/ops/nn_internal.h, vkg_nn_softmax_scaled: attention's scores).
uint causal_limit(uint ob) { return pc.causal == 0u ? 0xffffffffu : ob % pc.causal; }
float xs(int base, uint r, uint lim) { return r > lim ? -INF : X_(base + int(r) * pc.sr) * pc.scale; }

// Variant 1: the workgroup's invocations take r = t, t + L, ... and combine through the tree.
void row_by_workgroup(uint o) {
    uint t = gl_LocalInvocationID.x, L = gl_WorkGroupSize.x;
    uint ob = o / pc.inner, ii = o % pc.inner;
    int base = int(pc.x_off) + int(ob) * pc.so + int(ii) * pc.si;
    if (OP <= 2u) {
        uint lim = causal_limit(ob);
        float m = -INF;
        for (uint r = t; r < pc.R; r += L) m = max_nan(xs(base, r, lim), m);
        m = wg_reduce(m, true);
        float s = 0.0;
        for (uint r = t; r < pc.R; r += L) s += exp(xs(base, r, lim) - m);
        s = wg_reduce(s, false);
        if (OP == 2u) {
            if (t == 0u) y[pc.y_off + o] = isinf(m) ? m : m + log(s);
            return;
        }
        float ls = log(s);
        uint yb = pc.y_off + ob * pc.R * pc.inner + ii;
        for (uint r = t; r < pc.R; r += L) {
            float v = xs(base, r, lim) - m;
            y[yb + r * pc.inner] = OP == 0u ? exp(v) / s : v - ls;
        }
    } else {
        float s = 0.0;
        for (uint r = t; r < pc.R; r += L) s += X_(base + int(r) * pc.sr);
        float mean = wg_reduce(s, false) / float(pc.R);
        float q = 0.0;
        for (uint r = t; r < pc.R; r += L) {
            float d = X_(base + int(r) * pc.sr) - mean;
            q += d * d;
        }
        q = wg_reduce(q, false);
        float v = pc.denom > 0.0 ? q / pc.denom : (q > 0.0 ? INF : NAN);
        if (t == 0u) y[pc.y_off + o] = OP == 4u ? sqrt(v) : v;
    }
}

vec4 xs4(uint base, uint r, uint lim) {
    vec4 v = X4_(base + r) * pc.scale;
    return mix(v, vec4(-INF), greaterThan(uvec4(4u * r) + uvec4(0u, 1u, 2u, 3u), uvec4(lim)));
}

void row_vec4(uint o) {
    uint base = (pc.x_off + o * uint(pc.so)) / 4u, lim = causal_limit(o);
    // ROW4: n is a constant, the loops unroll and xr holds the row (then its exponentials); else
    // every pass reads the row again
    uint n = ROW4 > 0u ? ROW4 : pc.R / 4u;
    vec4 xr[ROW4 > 0u ? ROW4 : 1u];
    vec4 m4 = vec4(-INF);
    for (uint r = 0u; r < n; r++) {
        vec4 v = xs4(base, r, lim);
        if (ROW4 > 0u) xr[r] = v;
        m4 = max_nan(v, m4);
    }
    float m = max_nan4(m4);
    vec4 s4 = vec4(0.0);
    for (uint r = 0u; r < n; r++) {
        vec4 v = (ROW4 > 0u ? xr[r] : xs4(base, r, lim)) - m, e = exp(v);
        if (ROW4 > 0u) xr[r] = OP == 0u ? e : v;
        s4 += e;
    }
    float s = sum4(s4), ls = log(s);
    uint yb = (pc.y_off + o * pc.R) / 4u;
    for (uint r = 0u; r < n; r++) {
        // softmax: exp(x - m), log_softmax: x - m
        vec4 t = ROW4 > 0u ? xr[r] : OP == 0u ? exp(xs4(base, r, lim) - m) : xs4(base, r, lim) - m;
        y4[yb + r] = OP == 0u ? t / s : t - ls;
    }
}

void main() {
    uint rows = pc.outer * pc.inner;
    if (VARIANT == 1u) {
        for (uint o = gl_WorkGroupID.x; o < rows; o += gl_NumWorkGroups.x) row_by_workgroup(o);
        return;
    }
    if (VEC4) {
        for (uint o = gl_GlobalInvocationID.x; o < rows; o += GRID_STRIDE) row_vec4(o);
        return;
    }
    for (uint o = gl_GlobalInvocationID.x; o < rows; o += GRID_STRIDE) {
        uint ob = o / pc.inner, ii = o % pc.inner;
        int base = int(pc.x_off) + int(ob) * pc.so + int(ii) * pc.si;
        if (OP <= 2u) {
            uint lim = causal_limit(ob);
            float m = -INF;
            for (uint r = 0u; r < pc.R; r++) {
                float v = xs(base, r, lim);
                if (v > m || isnan(v)) m = v;
            }
            float s = 0.0;
            for (uint r = 0u; r < pc.R; r++) s += exp(xs(base, r, lim) - m);
            if (OP == 2u) {
                y[pc.y_off + o] = isinf(m) ? m : m + log(s);   // all -inf: -inf, like PyTorch
                continue;
            }
            float ls = log(s);
            uint yb = pc.y_off + ob * pc.R * pc.inner + ii;
            for (uint r = 0u; r < pc.R; r++) {
                float v = xs(base, r, lim) - m;
                y[yb + r * pc.inner] = OP == 0u ? exp(v) / s : v - ls;
            }
        } else {
            float s = 0.0;
            for (uint r = 0u; r < pc.R; r++) s += X_(base + int(r) * pc.sr);
            float mean = s / float(pc.R);
            float q = 0.0;
            for (uint r = 0u; r < pc.R; r++) {
                float d = X_(base + int(r) * pc.sr) - mean;
                q += d * d;
            }
            float v = pc.denom > 0.0 ? q / pc.denom : (q > 0.0 ? INF : NAN);
            y[pc.y_off + o] = OP == 4u ? sqrt(v) : v;
        }
    }
}
