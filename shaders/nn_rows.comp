#version 450
#extension GL_GOOGLE_include_directive : require
// Softmax, log_softmax, logsumexp, var and std over one axis: x is seen as (outer, R, inner)
// through strides (so, sr, si), one invocation per (outer, inner) row, in a fixed order so that
// results are bitwise reproducible. VARIANT (specialization constant 2): 0 one invocation per
// row (many rows), 1 one workgroup per row (few long rows: a fixed tree, nn_rows_wg.glsl).
// OP (specialization constant 1) is the op's code in
// lib/include/vkgrad/op_list_nn.h: softmax 0, log_softmax 1, logsumexp 2, var 3, std 4 (change
// both). y is contiguous: (outer, R, inner) for 0 and 1, (outer, inner) for the others.
// Push constants mirror vkg_nn_rows_push in lib/ops/nn_rows.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const uint VARIANT = 0;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };

layout(push_constant) uniform Push {
    uint outer, R, inner, x_off;
    int so, sr, si;      // strides of x's outer, axis and inner parts, in elements
    uint y_off;
    float denom;         // var / std: max(R - correction, 0)
} pc;

#define INF uintBitsToFloat(0x7f800000u)
#define NAN uintBitsToFloat(0x7fc00000u)

#include "nn_rows_wg.glsl"

// Variant 1: the workgroup's invocations take r = t, t + L, ... and combine through the tree.
void row_by_workgroup(uint o) {
    uint t = gl_LocalInvocationID.x, L = gl_WorkGroupSize.x;
    uint ob = o / pc.inner, ii = o % pc.inner;
    int base = int(pc.x_off) + int(ob) * pc.so + int(ii) * pc.si;
    if (OP <= 2u) {
        float m = -INF;
        for (uint r = t; r < pc.R; r += L) m = max_nan(x[base + int(r) * pc.sr], m);
        m = wg_reduce(m, true);
        float s = 0.0;
        for (uint r = t; r < pc.R; r += L) s += exp(x[base + int(r) * pc.sr] - m);
        s = wg_reduce(s, false);
        if (OP == 2u) {
            if (t == 0u) y[pc.y_off + o] = isinf(m) ? m : m + log(s);
            return;
        }
        float ls = log(s);
        uint yb = pc.y_off + ob * pc.R * pc.inner + ii;
        for (uint r = t; r < pc.R; r += L) {
            float v = x[base + int(r) * pc.sr] - m;
            y[yb + r * pc.inner] = OP == 0u ? exp(v) / s : v - ls;
        }
    } else {
        float s = 0.0;
        for (uint r = t; r < pc.R; r += L) s += x[base + int(r) * pc.sr];
        float mean = wg_reduce(s, false) / float(pc.R);
        float q = 0.0;
        for (uint r = t; r < pc.R; r += L) {
            float d = x[base + int(r) * pc.sr] - mean;
            q += d * d;
        }
        q = wg_reduce(q, false);
        float v = pc.denom > 0.0 ? q / pc.denom : (q > 0.0 ? INF : NAN);
        if (t == 0u) y[pc.y_off + o] = OP == 4u ? sqrt(v) : v;
    }
}

void main() {
    uint rows = pc.outer * pc.inner;
    if (VARIANT == 1u) {
        for (uint o = gl_WorkGroupID.x; o < rows; o += gl_NumWorkGroups.x) row_by_workgroup(o);
        return;
    }
    for (uint o = gl_GlobalInvocationID.x; o < rows; o += GRID_STRIDE) {
        uint ob = o / pc.inner, ii = o % pc.inner;
        int base = int(pc.x_off) + int(ob) * pc.so + int(ii) * pc.si;
        if (OP <= 2u) {
            float m = -INF;
            for (uint r = 0u; r < pc.R; r++) {
                float v = x[base + int(r) * pc.sr];
                if (v > m || isnan(v)) m = v;
            }
            float s = 0.0;
            for (uint r = 0u; r < pc.R; r++) s += exp(x[base + int(r) * pc.sr] - m);
            if (OP == 2u) {
                y[pc.y_off + o] = isinf(m) ? m : m + log(s);   // all -inf: -inf, like PyTorch
                continue;
            }
            float ls = log(s);
            uint yb = pc.y_off + ob * pc.R * pc.inner + ii;
            for (uint r = 0u; r < pc.R; r++) {
                float v = x[base + int(r) * pc.sr] - m;
                y[yb + r * pc.inner] = OP == 0u ? exp(v) / s : v - ls;
            }
        } else {
            float s = 0.0;
            for (uint r = 0u; r < pc.R; r++) s += x[base + int(r) * pc.sr];
            float mean = s / float(pc.R);
            float q = 0.0;
            for (uint r = 0u; r < pc.R; r++) {
                float d = x[base + int(r) * pc.sr] - mean;
                q += d * d;
            }
            float v = pc.denom > 0.0 ? q / pc.denom : (q > 0.0 ? INF : NAN);
            y[pc.y_off + o] = OP == 4u ? sqrt(v) : v;
        }
    }
}
