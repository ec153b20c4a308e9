#version 450
#extension GL_GOOGLE_include_directive : require
// Per-sample class losses over x (N, C) read through strides (sN, sC), target (N,) i32 with
// stride sT; one invocation per sample. OP (specialization constant 1) is the op's code in
// lib/include/vkgrad/op_list_nn.h (change both):
//   0 cross_entropy  loss = logsumexp(x[n]) - x[n, t]  (max-subtracted)
//   1 nll_loss       loss = -x[n, t]
// A target equal to ignore gives loss 0 and valid 0; one outside [0, C) gives NaN (valid 1).
// The reduction (sum, or sum / sum(valid)) is done by the caller in a fixed order.
// Compiled a second time with CL_TEX (class_loss_tex): x read through a uniform texel buffer, a
// view of its whole block (RGBA32F with VEC4, else R32F; x_off counts from the block's start), on
// devices that fetch texels faster than they load storage buffers (lavapipe).
// Push constants mirror vkg_class_loss_push in lib/ops/loss.c: change both.
// VEC4 (specialization constant 2), cross_entropy: the host sets it where x's rows are
// contiguous, C and every row's start multiples of 4: the classes are read as vec4 (lavapipe
// moves a lane's vec4 for about the cost of a float: shaders/layer_norm.comp).
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const bool VEC4 = false;
layout(std430, binding = 0) writeonly buffer L { float loss[]; };
layout(std430, binding = 1) writeonly buffer V { float valid[]; };
#ifdef CL_TEX
layout(binding = 2) uniform samplerBuffer x_view;
#define X_(i) (VEC4 ? texelFetch(x_view, int(i) >> 2)[int(i) & 3] : texelFetch(x_view, int(i)).x)
#define X4_(i) texelFetch(x_view, int(i))
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };
#define X_(i) x[i]
#define X4_(i) x4[i]
#endif
layout(std430, binding = 3) readonly buffer T { int target[]; };

layout(push_constant) uniform Push {
    uint N, C, x_off, t_off;
    int sN, sC, sT, ignore;
    uint loss_off, valid_off;
} pc;

#define INF uintBitsToFloat(0x7f800000u)
#define NAN uintBitsToFloat(0x7fc00000u)

// The VEC4 path's row: the max of the row of pc.C classes starting at vec4 b4 of X4 and the
// sum of exp(x - max), as (max, sum).
// NaN wins the max, like the scalar loops.
vec2 max_sumexp4(uint b4) {
    uint n = pc.C / 4u;
    vec4 m4 = vec4(-INF);
    for (uint c = 0u; c < n; c++) m4 = max_nan(X4_(b4 + c), m4);
    float m = max_nan4(m4);
    vec4 s4 = vec4(0.0);
    for (uint c = 0u; c < n; c++) s4 += exp(X4_(b4 + c) - m);
    return vec2(m, sum4(s4));
}

void main() {
    for (uint n = gl_GlobalInvocationID.x; n < pc.N; n += GRID_STRIDE) {
        int t = target[int(pc.t_off) + int(n) * pc.sT];
        int base = int(pc.x_off) + int(n) * pc.sN;
        float l;
        if (t == pc.ignore) l = 0.0;
        else if (t < 0 || t >= int(pc.C)) l = NAN;
        else if (OP == 1u) l = -X_(base + t * pc.sC);
        else if (VEC4) {
            vec2 ms = max_sumexp4(uint(base) / 4u);
            l = ms.x + log(ms.y) - X_(base + t);
        } else {
            float m = -INF;
            for (uint c = 0u; c < pc.C; c++) {
                float v = X_(base + int(c) * pc.sC);
                if (v > m || isnan(v)) m = v;
            }
            float s = 0.0;
            for (uint c = 0u; c < pc.C; c++) s += exp(X_(base + int(c) * pc.sC) - m);
            l = m + log(s) - X_(base + t * pc.sC);
        }
        loss[pc.loss_off + n] = l;
        valid[pc.valid_off + n] = t == pc.ignore ? 0.0 : 1.0;
    }
}
