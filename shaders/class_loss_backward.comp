#version 450
#extension GL_GOOGLE_include_directive : require
// Backward of shaders/class_loss.comp, one invocation per sample, same OP codes:
//   0 cross_entropy  dx[n, c] = gn (softmax(x[n])[c] - (c == t))
//   1 nll_loss       dx[n, c] = c == t ? -gn : 0
// gn by mode: 0 g[n] (reduction none), 1 g[0] (sum), 2 g[0] / count[0] (mean). An ignored
// sample's row is 0; a target outside [0, C) gives a NaN row. dx (N, C) is contiguous.
// Compiled a second time with CL_TEX (class_loss_backward_tex): x, g and count read through
// uniform texel buffers, like shaders/class_loss.comp's CL_TEX (g and count R32F views always).
// Push constants mirror vkg_class_loss_backward_push in lib/ops/loss.c: change both.
// VEC4 (specialization constant 2): cross_entropy's rows as vec4 where the forward's VEC4
// conditions hold for x and dx (shaders/class_loss.comp), in one pass that picks each output
// (0 for an ignored sample, NaN for a bad target) instead of branching per sample: lavapipe
// runs every side of a branch its lanes disagree on, and the two C-long store loops of the
// ignored and bad rows cost more than the row itself. ROW4 (constant 3, on CPU devices: C / 4)
// keeps the row in registers, read and exponentiated once (lib/ops/ops.h, vkg_row_regs).
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const bool VEC4 = false;
layout(constant_id = 3) const uint ROW4 = 0;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
#ifdef CL_TEX
layout(binding = 1) uniform samplerBuffer x_view;
#define X_(i) (VEC4 ? texelFetch(x_view, int(i) >> 2)[int(i) & 3] : texelFetch(x_view, int(i)).x)
#define X4_(i) texelFetch(x_view, int(i))
layout(binding = 3) uniform samplerBuffer g_view;
#define G_(i) texelFetch(g_view, int(i)).x
layout(binding = 4) uniform samplerBuffer count_view;
#define COUNT_(i) texelFetch(count_view, int(i)).x
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer G { float g[]; };
layout(std430, binding = 4) readonly buffer K { float count[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
#define X_(i) x[i]
#define X4_(i) x4[i]
#define G_(i) g[i]
#define COUNT_(i) count[i]
#endif
layout(std430, binding = 2) readonly buffer T { int target[]; };
layout(std430, binding = 0) writeonly buffer DX4 { vec4 dx4[]; };

layout(push_constant) uniform Push {
    uint N, C, x_off, t_off;
    int sN, sC, sT, ignore;
    uint dx_off, g_off;
    int g_st;
    uint mode;
    uint count_off;
} pc;

#define INF uintBitsToFloat(0x7f800000u)
#define NAN uintBitsToFloat(0x7fc00000u)

// cross_entropy's row n, VEC4: dx = gn (p - onehot(t)), 0 where ignored, NaN for a bad target
void row_vec4(uint n) {
    int t = target[int(pc.t_off) + int(n) * pc.sT];
    bool ignored = t == pc.ignore, bad = !ignored && (t < 0 || t >= int(pc.C));
    float gn = G_(int(pc.g_off) + int(n) * pc.g_st); // g_st is 0 for a reduced loss's scalar g
    if (pc.mode == 2u) gn /= COUNT_(pc.count_off);
    uint b4 = uint(int(pc.x_off) + int(n) * pc.sN) / 4u, o4 = (pc.dx_off + n * pc.C) / 4u;
    uint nc = ROW4 > 0u ? ROW4 : pc.C / 4u; // ROW4: a constant, and er holds the row, then exp(x - max)
    vec4 er[ROW4 > 0u ? ROW4 : 1u];
    vec4 m4 = vec4(-INF);
    for (uint c = 0u; c < nc; c++) {
        vec4 v = X4_(b4 + c);
        if (ROW4 > 0u) er[c] = v;
        m4 = max_nan(v, m4);
    }
    float m = max_nan4(m4);
    vec4 s4 = vec4(0.0);
    for (uint c = 0u; c < nc; c++) {
        vec4 e = exp((ROW4 > 0u ? er[c] : X4_(b4 + c)) - m);
        if (ROW4 > 0u) er[c] = e;
        s4 += e;
    }
    float s = sum4(s4);
    for (uint c = 0u; c < nc; c++) {
        vec4 p = (ROW4 > 0u ? er[c] : exp(X4_(b4 + c) - m)) / s;
        // the target's class gets p - 1: compare the lane's four class numbers with t
        vec4 hit = vec4(equal(ivec4(4 * int(c)) + ivec4(0, 1, 2, 3), ivec4(t)));
        dx4[o4 + c] = bad ? vec4(NAN) : ignored ? vec4(0.0) : gn * (p - hit);
    }
}

void main() {
    if (VEC4 && OP == 0u) {
        for (uint n = gl_GlobalInvocationID.x; n < pc.N; n += GRID_STRIDE) row_vec4(n);
        return;
    }
    for (uint n = gl_GlobalInvocationID.x; n < pc.N; n += GRID_STRIDE) {
        int t = target[int(pc.t_off) + int(n) * pc.sT];
        uint ob = pc.dx_off + n * pc.C;
        if (t == pc.ignore) {
            for (uint c = 0u; c < pc.C; c++) dx[ob + c] = 0.0;
            continue;
        }
        if (t < 0 || t >= int(pc.C)) {
            for (uint c = 0u; c < pc.C; c++) dx[ob + c] = NAN;
            continue;
        }
        float gn = pc.mode == 0u ? G_(int(pc.g_off) + int(n) * pc.g_st) : G_(pc.g_off);
        if (pc.mode == 2u) gn /= COUNT_(pc.count_off);
        if (OP == 1u) {
            for (uint c = 0u; c < pc.C; c++) dx[ob + c] = int(c) == t ? -gn : 0.0;
            continue;
        }
        int base = int(pc.x_off) + int(n) * pc.sN;
        float m = -INF;
        for (uint c = 0u; c < pc.C; c++) {
            float v = X_(base + int(c) * pc.sC);
            if (v > m || isnan(v)) m = v;
        }
        float s = 0.0;
        for (uint c = 0u; c < pc.C; c++) s += exp(X_(base + int(c) * pc.sC) - m);
        for (uint c = 0u; c < pc.C; c++) {
            float p = exp(X_(base + int(c) * pc.sC) - m) / s;
            dx[ob + c] = gn * (int(c) == t ? p - 1.0 : p);
        }
    }
}
