#version 450
#extension GL_GOOGLE_include_directive : require
// One optimizer update of one parameter, fused: reads the gradient, updates the parameter and
// its state buffers in place. The algorithm is specialization constant 1 (ALGO: 0 SGD, 1 Adam
// and AdamW, 2 RMSprop; lib/optim/optim.c: change both). The formulas are torch.optim's
// single-tensor (non-fused, non-foreach) paths, written out in lib/include/vkgrad/optim.h.
// Coefficients that PyTorch computes in Python (double) are computed on the host and rounded
// once to f32 (1 - beta1, step size, bias corrections), as PyTorch's CPU kernels do with them.
#include "common.glsl"

layout(constant_id = 1) const uint ALGO = 0;

// A state slot the algorithm does not use is bound to the parameter and never touched.
layout(std430, binding = 0) buffer P { float p[]; };    // parameter
layout(std430, binding = 1) buffer S0 { float s0[]; };  // SGD momentum_buffer | exp_avg     | square_avg
layout(std430, binding = 2) buffer S1 { float s1[]; };  //                     | exp_avg_sq  | momentum_buffer
layout(std430, binding = 3) buffer S2 { float s2[]; };  //                     | max_exp_avg_sq | grad_avg
layout(std430, binding = 4) readonly buffer G { float g[]; };  // gradient
// Per-step values when F_COEF is set (a captured step, vkgrad/graph.h: written by the host before
// every replay), at c_off: lr, step_size, bc2_sqrt, decay, first (1 or 0); lib/optim/optim.c's
// C_* order: change both. Without F_COEF the same values come from the push constants.
layout(std430, binding = 5) readonly buffer C { float c[]; };

// Mirrors vkg_optim_push in lib/optim/optim.c: change both.
layout(push_constant) uniform Push {
    uint n;          // elements
    uint p_off;      // parameter offset, elements (state tensors are contiguous, offset 0)
    uint g_off;      // gradient offset, elements
    uint flags;      // see F_* below
    float lr;
    float wd;        // L2 weight decay added to the gradient (0: none)
    float momentum;  // SGD, RMSprop
    float damp1;     // SGD: 1 - dampening
    float w1;        // Adam: 1 - beta1 (lerp weight); RMSprop: 1 - alpha
    float beta2;     // Adam: beta2;                    RMSprop: alpha
    float w2;        // Adam: 1 - beta2
    float eps;
    float step_size; // Adam: lr / (1 - beta1^t)
    float bc2_sqrt;  // Adam: sqrt(1 - beta2^t)
    float decay;     // AdamW: 1 - lr * weight_decay
    uint c_off;      // F_COEF: the slot of the per-step values in c[]
} pc;

const uint F_NESTEROV = 1u, F_FIRST = 2u, F_AMSGRAD = 4u, F_DECOUPLED = 8u, F_CENTERED = 16u, F_MAXIMIZE = 32u,
           F_MOMENTUM = 64u, F_COEF = 128u;

void main() {
    float lr = pc.lr, step_size = pc.step_size, bc2_sqrt = pc.bc2_sqrt, decay = pc.decay;
    bool first = (pc.flags & F_FIRST) != 0u;
    if ((pc.flags & F_COEF) != 0u) {   // a branch, not a select: eager steps bind no slot buffer
        lr = c[pc.c_off];
        step_size = c[pc.c_off + 1u];
        bc2_sqrt = c[pc.c_off + 2u];
        decay = c[pc.c_off + 3u];
        first = c[pc.c_off + 4u] != 0.0;
    }
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        float x = p[pc.p_off + i];
        float gr = g[pc.g_off + i];
        if ((pc.flags & F_MAXIMIZE) != 0u) gr = -gr;
        if (ALGO == 1u && (pc.flags & F_DECOUPLED) != 0u) x = x * decay;   // AdamW: param.mul_(1 - lr wd)
        else if (pc.wd != 0.0) gr = gr + pc.wd * x;                            // grad.add(param, alpha=wd)
        if (ALGO == 0u) {                                                      // SGD
            if ((pc.flags & F_MOMENTUM) != 0u) {
                float buf = first ? gr : s0[i] * pc.momentum + pc.damp1 * gr;
                s0[i] = buf;
                gr = (pc.flags & F_NESTEROV) != 0u ? gr + pc.momentum * buf : buf;
            }
            x = x - lr * gr;
        } else if (ALGO == 1u) {                                               // Adam, AdamW
            float m = s0[i];
            m = m + pc.w1 * (gr - m);                                          // exp_avg.lerp_(grad, 1 - beta1)
            float v = s1[i] * pc.beta2 + pc.w2 * gr * gr;                      // mul_(beta2).addcmul_(g, g, 1 - beta2)
            s0[i] = m;
            s1[i] = v;
            if ((pc.flags & F_AMSGRAD) != 0u) {
                v = max(s2[i], v);
                s2[i] = v;
            }
            float denom = sqrt(v) / bc2_sqrt + pc.eps;
            x = x - step_size * (m / denom);                                // addcdiv_(m, denom, -step_size)
        } else {                                                               // RMSprop
            float sq = s0[i] * pc.beta2 + pc.w1 * gr * gr;                     // mul_(alpha).addcmul_(g, g, 1 - alpha)
            s0[i] = sq;
            float avg;
            if ((pc.flags & F_CENTERED) != 0u) {
                float ga = s2[i];
                ga = ga + pc.w1 * (gr - ga);                                   // grad_avg.lerp_(grad, 1 - alpha)
                s2[i] = ga;
                avg = sqrt(sq - ga * ga);                                      // addcmul(ga, ga, -1).sqrt_()
            } else {
                avg = sqrt(sq);
            }
            avg = avg + pc.eps;
            if ((pc.flags & F_MOMENTUM) != 0u) {
                float buf = s1[i] * pc.momentum + gr / avg;                    // mul_(momentum).addcdiv_(g, avg)
                s1[i] = buf;
                x = x - lr * buf;
            } else {
                x = x - lr * (gr / avg);                                    // addcdiv_(g, avg, -lr)
            }
        }
        p[pc.p_off + i] = x;
    }
}
