#version 450
#extension GL_GOOGLE_include_directive : require
// Backward of shaders/nn_rows.comp, one invocation per (outer, inner) row, same OP codes:
//   softmax 0      a = y:  dx = y (dy - sum(dy y))
//   log_softmax 1  a = y:  dx = dy - exp(y) sum(dy)
//   logsumexp 2    a = x:  dx = dy exp(x - lse)            aux = lse
//   var 3          a = x:  dx = dy 2 (x - mean) / denom
//   std 4          a = x:  dx = dy (x - mean) / (denom std), 0 where std is 0   aux = std
// a is read through strides like the forward's x; dx is contiguous (outer, R, inner); dy is
// contiguous, (outer, R, inner) for 0 and 1 and (outer, inner) for the others; aux (outer, inner).
// VARIANT (specialization constant 2): 0 one invocation per row, 1 one workgroup per row (few
// long rows; sums through the fixed tree of nn_rows_wg.glsl).
// VEC4 (specialization constant 3): softmax and log_softmax as vec4 rows, where the forward's
// VEC4 conditions hold for a, dx and dy (shaders/nn_rows.comp).
// Compiled a second time with NR_TEX (nn_rows_backward_tex): a, dy and aux read through uniform
// texel buffers, like shaders/nn_rows.comp's NR_TEX (aux an R32F view always).
// Push constants mirror vkg_nn_rows_backward_push in lib/ops/nn_rows.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const uint VARIANT = 0;
layout(constant_id = 3) const bool VEC4 = false;
// ROW4 (specialization constant 4, VEC4 on CPU devices) = R / 4: a's and dy's rows read once,
// into registers (shaders/nn_rows.comp says why); the same arithmetic.
layout(constant_id = 4) const uint ROW4 = 0;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
#ifdef NR_TEX
layout(binding = 1) uniform samplerBuffer a_view;
#define A_(i) (VEC4 ? texelFetch(a_view, int(i) >> 2)[int(i) & 3] : texelFetch(a_view, int(i)).x)
#define A4_(i) texelFetch(a_view, int(i))
layout(binding = 2) uniform samplerBuffer dy_view;
#define DY_(i) (VEC4 ? texelFetch(dy_view, int(i) >> 2)[int(i) & 3] : texelFetch(dy_view, int(i)).x)
#define DY4_(i) texelFetch(dy_view, int(i))
layout(binding = 3) uniform samplerBuffer aux_view;
#define AUX_(i) texelFetch(aux_view, int(i)).x
#else
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer DY { float dy[]; };
layout(std430, binding = 3) readonly buffer AUX { float aux[]; };
layout(std430, binding = 1) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 2) readonly buffer DY4 { vec4 dy4[]; };
#define A_(i) a[i]
#define A4_(i) a4[i]
#define DY_(i) dy[i]
#define DY4_(i) dy4[i]
#define AUX_(i) aux[i]
#endif
layout(std430, binding = 0) writeonly buffer DX4 { vec4 dx4[]; };

layout(push_constant) uniform Push {
    uint outer, R, inner, a_off;
    int so, sr, si;      // strides of a
    uint dx_off;
    uint dy_off, aux_off;
    float denom;         // var / std: max(R - correction, 0)
    float scale;         // softmax, log_softmax: the forward's scale, a factor of dx
} pc;

#include "nn_rows_wg.glsl"

void row_by_workgroup(uint o) {
    uint t = gl_LocalInvocationID.x, L = gl_WorkGroupSize.x;
    uint ob = o / pc.inner, ii = o % pc.inner;
    int base = int(pc.a_off) + int(ob) * pc.so + int(ii) * pc.si;
    uint rb = ob * pc.R * pc.inner + ii;
    uint xb = pc.dx_off + rb;
    if (OP <= 1u) {
        uint gb = pc.dy_off + rb;
        float s = 0.0;
        for (uint r = t; r < pc.R; r += L) {
            float g = DY_(gb + r * pc.inner);
            s += OP == 0u ? g * A_(base + int(r) * pc.sr) : g;
        }
        s = wg_reduce(s, false);
        for (uint r = t; r < pc.R; r += L) {
            float v = A_(base + int(r) * pc.sr), g = DY_(gb + r * pc.inner);
            dx[xb + r * pc.inner] = pc.scale * (OP == 0u ? v * (g - s) : g - exp(v) * s);
        }
    } else if (OP == 2u) {
        float g = DY_(pc.dy_off + o), l = AUX_(pc.aux_off + o);
        for (uint r = t; r < pc.R; r += L) dx[xb + r * pc.inner] = g * exp(A_(base + int(r) * pc.sr) - l);
    } else {
        float s = 0.0;
        for (uint r = t; r < pc.R; r += L) s += A_(base + int(r) * pc.sr);
        float mean = wg_reduce(s, false) / float(pc.R);
        float g = DY_(pc.dy_off + o), k;
        if (OP == 3u) {
            k = 2.0 * g / pc.denom;
        } else {
            float sd = AUX_(pc.aux_off + o);
            k = sd == 0.0 ? 0.0 : g / (pc.denom * sd);
        }
        for (uint r = t; r < pc.R; r += L) dx[xb + r * pc.inner] = k * (A_(base + int(r) * pc.sr) - mean);
    }
}

void row_vec4(uint o) {
    uint base = (pc.a_off + o * uint(pc.so)) / 4u, gb = (pc.dy_off + o * pc.R) / 4u;
    uint n = ROW4 > 0u ? ROW4 : pc.R / 4u; // ROW4: a constant, and ar, gr hold the rows
    vec4 ar[ROW4 > 0u ? ROW4 : 1u], gr[ROW4 > 0u ? ROW4 : 1u];
    vec4 s4 = vec4(0.0);
    for (uint r = 0u; r < n; r++) {
        vec4 v = A4_(base + r), g = DY4_(gb + r);
        if (ROW4 > 0u) {
            ar[r] = v;
            gr[r] = g;
        }
        s4 += OP == 0u ? g * v : g;
    }
    float s = sum4(s4);
    uint xb = (pc.dx_off + o * pc.R) / 4u;
    for (uint r = 0u; r < n; r++) {
        vec4 v = ROW4 > 0u ? ar[r] : A4_(base + r), g = ROW4 > 0u ? gr[r] : DY4_(gb + r);
        dx4[xb + r] = pc.scale * (OP == 0u ? v * (g - s) : g - exp(v) * s);
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
        int base = int(pc.a_off) + int(ob) * pc.so + int(ii) * pc.si;
        uint rb = ob * pc.R * pc.inner + ii;     // (outer, R, inner) index of r = 0
        uint xb = pc.dx_off + rb;
        if (OP <= 1u) {
            uint gb = pc.dy_off + rb;
            float s = 0.0;
            for (uint r = 0u; r < pc.R; r++) {
                float g = DY_(gb + r * pc.inner);
                s += OP == 0u ? g * A_(base + int(r) * pc.sr) : g;
            }
            for (uint r = 0u; r < pc.R; r++) {
                float v = A_(base + int(r) * pc.sr), g = DY_(gb + r * pc.inner);
                dx[xb + r * pc.inner] = pc.scale * (OP == 0u ? v * (g - s) : g - exp(v) * s);
            }
        } else if (OP == 2u) {
            float g = DY_(pc.dy_off + o), l = AUX_(pc.aux_off + o);
            for (uint r = 0u; r < pc.R; r++) dx[xb + r * pc.inner] = g * exp(A_(base + int(r) * pc.sr) - l);
        } else {
            float s = 0.0;
            for (uint r = 0u; r < pc.R; r++) s += A_(base + int(r) * pc.sr);
            float mean = s / float(pc.R);
            float g = DY_(pc.dy_off + o), k;
            if (OP == 3u) {
                k = 2.0 * g / pc.denom;
            } else {
                float sd = AUX_(pc.aux_off + o);
                k = sd == 0.0 ? 0.0 : g / (pc.denom * sd);
            }
            for (uint r = 0u; r < pc.R; r++) dx[xb + r * pc.inner] = k * (A_(base + int(r) * pc.sr) - mean);
        }
    }
}
