#version 450
#extension GL_GOOGLE_include_directive : require
// One optimizer update of one parameter, fused: reads the gradient, updates the parameter and
// its state buffers in place. The algorithm is specialization constant 1 (ALGO: 0 SGD, 1 Adam
// and AdamW, 2 RMSprop; lib/optim/optim.c: change both). The formulas are torch.optim's
// single-tensor (non-fused, non-foreach) paths, written out in lib/include/vkgrad/optim.h.
// Coefficients that PyTorch computes in Python (double) are computed on the host and rounded
// once to f32 (1 - beta1, step size, bias corrections), as PyTorch's CPU kernels do with them.
// Compiled a second time with OPTIM_VEC4 (optim_step_vec4, shaders/CMakeLists.txt) for a
// parameter and gradient at offsets that are multiples of 4: each item is four elements, read
// and written as vec4, and the last n % 4 elements go one at a time.
// Compiled a third time with OPTIM_MULTI (optim_multi): one dispatch steps up to MULTI
// parameters (lib/optim/optim.c groups them: the same step count, offsets 0), vec4 as above.
// Compiled a fourth time with OPTIM_TEX (optim_step_tex): optim_step_vec4 reading the parameter,
// its state and the gradient through uniform texel buffers (RGBA32F views of their blocks, bound
// beside the storage buffers it writes), on devices that read those faster (lib/runtime/stream.c's
// vkg_texel_reads: lavapipe gathers a texel fetch in straight-line code, but loads a storage
// buffer one lane at a time).
// Workgroup row y steps parameter y, and each binding but the coefficients' is an array with
// one buffer per parameter, indexed by y: the same index for the whole workgroup, as Vulkan's
// shaderStorageBufferArrayDynamicIndexing requires. One dispatch instead of one per parameter
// saves the per-dispatch cost (about 44 us on lavapipe), which dominates a model's many small
// biases and norms.
#include "common.glsl"

#ifdef OPTIM_MULTI
#define OPTIM_VEC4 1
#define MULTI 6   /* lib/optim/optim.c's MULTI: change both */
#endif
#ifdef OPTIM_TEX
#define OPTIM_VEC4 1
#endif

#ifdef OPTIM_VEC4
#define T vec4
#define UNIT 4u
#else
#define T float
#define UNIT 1u
#endif

layout(constant_id = 1) const uint ALGO = 0;
// The F_* flags that the optimizer's configuration fixes (all but F_FIRST and F_COEF), as a
// constant: lavapipe runs both sides of an if even when every lane takes the same one, so a
// state slot switched off by a push-constant flag still cost its masked load and store loops.
layout(constant_id = 2) const uint CONFIG = 0;

// A state slot the algorithm does not use is bound to the parameter and never touched.
#ifdef OPTIM_MULTI
layout(std430, binding = 0) buffer P { T v[]; } pa[MULTI];
layout(std430, binding = 1) buffer S0 { T v[]; } s0a[MULTI];
layout(std430, binding = 2) buffer S1 { T v[]; } s1a[MULTI];
layout(std430, binding = 3) buffer S2 { T v[]; } s2a[MULTI];
layout(std430, binding = 4) readonly buffer G { T v[]; } ga[MULTI];
#define P_(i) pa[gl_WorkGroupID.y].v[i]
#define S0_(i) s0a[gl_WorkGroupID.y].v[i]
#define S1_(i) s1a[gl_WorkGroupID.y].v[i]
#define S2_(i) s2a[gl_WorkGroupID.y].v[i]
#define G_(i) ga[gl_WorkGroupID.y].v[i]
#else
layout(std430, binding = 0) buffer P { T p[]; };    // parameter
layout(std430, binding = 1) buffer S0 { T s0[]; };  // SGD momentum_buffer | exp_avg     | square_avg
layout(std430, binding = 2) buffer S1 { T s1[]; };  //                     | exp_avg_sq  | momentum_buffer
layout(std430, binding = 3) buffer S2 { T s2[]; };  //                     | max_exp_avg_sq | grad_avg
#ifdef OPTIM_TEX
layout(binding = 4) uniform samplerBuffer gt;               // gradient
#else
layout(std430, binding = 4) readonly buffer G { T g[]; };  // gradient
#endif
#define P_(i) p[i]
#define S0_(i) s0[i]
#define S1_(i) s1[i]
#define S2_(i) s2[i]
#define G_(i) g[i]
#endif
// What the loop reads: the storage buffers above, or (OPTIM_TEX) the texel views of the same
// tensors at bindings 6-9 and the gradient's at 4, indexed from their blocks' starts (pc.aux)
#ifdef OPTIM_TEX
layout(binding = 6) uniform samplerBuffer pt;
layout(binding = 7) uniform samplerBuffer s0t;
layout(binding = 8) uniform samplerBuffer s1t;
layout(binding = 9) uniform samplerBuffer s2t;
#define P_R(i) texelFetch(pt, int(pc.aux[0] + (i)))
#define S0_R(i) texelFetch(s0t, int(pc.aux[1] + (i)))
#define S1_R(i) texelFetch(s1t, int(pc.aux[2] + (i)))
#define S2_R(i) texelFetch(s2t, int(pc.aux[3] + (i)))
#define G_R(i) texelFetch(gt, int(pc.aux[4] + (i)))
#else
#define P_R(i) P_(i)
#define S0_R(i) S0_(i)
#define S1_R(i) S1_(i)
#define S2_R(i) S2_(i)
#define G_R(i) G_(i)
#endif
// Per-step values when F_COEF is set (a captured step, vkgrad/graph.h: written by the host before
// every replay), at c_off (optim_multi: parameter y's at c_off + y * C_SLOT): lr, step_size,
// bc2_sqrt, decay, first (1 or 0); lib/optim/optim.c's C_* order: change both. Without F_COEF the
// same values come from the push constants.
layout(std430, binding = 5) readonly buffer C { float c[]; };
const uint C_SLOT = 8u;  // floats per slot: lib/optim/optim.c's C_SLOT, change both

// Mirrors vkg_optim_push in lib/optim/optim.c: change both.
layout(push_constant) uniform Push {
    uint n;          // elements
    uint p_off;      // parameter offset, elements (state tensors are contiguous, offset 0)
    uint g_off;      // gradient offset, elements
    uint flags;      // see F_* below (only F_FIRST and F_COEF are read: CONFIG has the others)
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
    // optim_multi: each parameter's elements (n, p_off and g_off above are unused: 0);
    // optim_step_tex: the texel bases (vkg_texel_base / 4) of P, S0, S1, S2 and G
    uint aux[6];

} pc;

const uint F_NESTEROV = 1u, F_FIRST = 2u, F_AMSGRAD = 4u, F_DECOUPLED = 8u, F_CENTERED = 16u, F_MAXIMIZE = 32u,
           F_MOMENTUM = 64u, F_COEF = 128u;

// The per-step values (push constants, or the slot of c[] under F_COEF)
float lr, step_size, bc2_sqrt, decay;
bool first;

// Which state slots the algorithm reads and writes (the others are bound to the parameter)
bool uses(uint slot) {
    if (ALGO == 0u) return slot == 0u && (CONFIG & F_MOMENTUM) != 0u;
    if (ALGO == 1u) return slot < 2u || (CONFIG & F_AMSGRAD) != 0u;
    return slot == 0u || (slot == 1u ? (CONFIG & F_MOMENTUM) != 0u : (CONFIG & F_CENTERED) != 0u);
}

// One update of parameter x with gradient gr and the state slots s0..s2 (in, out). All of it is
// `precise`: NVIDIA's compiler fuses x - lr * g into one FMA otherwise, and every vendor's step
// should equal the C reference (lib/optim) bit for bit, as on lavapipe.
void update(inout precise T x, T gr, inout precise T a, inout precise T b, inout precise T c2) {
    if ((CONFIG & F_MAXIMIZE) != 0u) gr = -gr;
    if (ALGO == 1u && (CONFIG & F_DECOUPLED) != 0u) x = x * decay;   // AdamW: param.mul_(1 - lr wd)
    else if (pc.wd != 0.0) gr = gr + pc.wd * x;                            // grad.add(param, alpha=wd)
    if (ALGO == 0u) {                                                      // SGD
        if ((CONFIG & F_MOMENTUM) != 0u) {
            T buf = first ? gr : a * pc.momentum + pc.damp1 * gr;
            a = buf;
            gr = (CONFIG & F_NESTEROV) != 0u ? gr + pc.momentum * buf : buf;
        }
        x = x - lr * gr;
    } else if (ALGO == 1u) {                                               // Adam, AdamW
        T m = a + pc.w1 * (gr - a);                                        // exp_avg.lerp_(grad, 1 - beta1)
        T v = b * pc.beta2 + pc.w2 * gr * gr;                              // mul_(beta2).addcmul_(g, g, 1 - beta2)
        a = m;
        b = v;
        if ((CONFIG & F_AMSGRAD) != 0u) {
            v = max(c2, v);
            c2 = v;
        }
        T denom = sqrt(v) / bc2_sqrt + pc.eps;
        x = x - step_size * (m / denom);                                   // addcdiv_(m, denom, -step_size)
    } else {                                                               // RMSprop
        T sq = a * pc.beta2 + pc.w1 * gr * gr;                             // mul_(alpha).addcmul_(g, g, 1 - alpha)
        a = sq;
        T avg;
        if ((CONFIG & F_CENTERED) != 0u) {
            T ga = c2 + pc.w1 * (gr - c2);                                 // grad_avg.lerp_(grad, 1 - alpha)
            c2 = ga;
            avg = sqrt(sq - ga * ga);                                      // addcmul(ga, ga, -1).sqrt_()
        } else {
            avg = sqrt(sq);
        }
        avg = avg + pc.eps;
        if ((CONFIG & F_MOMENTUM) != 0u) {
            T buf = b * pc.momentum + gr / avg;                            // mul_(momentum).addcdiv_(g, avg)
            b = buf;
            x = x - lr * buf;
        } else {
            x = x - lr * (gr / avg);                                       // addcdiv_(g, avg, -lr)
        }
    }
}

void main() {
    lr = pc.lr;
    step_size = pc.step_size;
    bc2_sqrt = pc.bc2_sqrt;
    decay = pc.decay;
    first = (pc.flags & F_FIRST) != 0u;
    if ((pc.flags & F_COEF) != 0u) {   // a branch, not a select: eager steps bind no slot buffer
#ifdef OPTIM_MULTI
        uint c0 = pc.c_off + gl_WorkGroupID.y * C_SLOT;  // parameter y's: a group's slots follow one another
#else
        uint c0 = pc.c_off;
#endif
        lr = c[c0];
        step_size = c[c0 + 1u];
        bc2_sqrt = c[c0 + 2u];
        decay = c[c0 + 3u];
        first = c[c0 + 4u] != 0.0;
    }
    bool u0 = uses(0u), u1 = uses(1u), u2 = uses(2u);
#ifdef OPTIM_MULTI
    uint n = pc.aux[gl_WorkGroupID.y];
#else
    uint n = pc.n;
#endif
    uint po = pc.p_off / UNIT, go = pc.g_off / UNIT;
    for (uint i = gl_GlobalInvocationID.x; i < n / UNIT; i += GRID_STRIDE) {
        T x = P_R(po + i), a = u0 ? S0_R(i) : T(0.0), b = u1 ? S1_R(i) : T(0.0), c2 = u2 ? S2_R(i) : T(0.0);
        update(x, G_R(go + i), a, b, c2);
        P_(po + i) = x;
        if (u0) S0_(i) = a;
        if (u1) S1_(i) = b;
        if (u2) S2_(i) = c2;
    }
#ifdef OPTIM_VEC4
    // the last n % 4 elements, one a lane: the update is the same code on a vec4 of which only
    // .x is kept
    for (uint i = (n & ~3u) + gl_GlobalInvocationID.x; i < n; i += GRID_STRIDE) {
        uint pe = pc.p_off + i, ge = pc.g_off + i;
        vec4 x = vec4(P_R(pe >> 2)[pe & 3u]), a = vec4(u0 ? S0_R(i >> 2)[i & 3u] : 0.0),
             b = vec4(u1 ? S1_R(i >> 2)[i & 3u] : 0.0), c2 = vec4(u2 ? S2_R(i >> 2)[i & 3u] : 0.0);
        update(x, vec4(G_R(ge >> 2)[ge & 3u]), a, b, c2);
        P_(pe >> 2)[pe & 3u] = x.x;
        if (u0) S0_(i >> 2)[i & 3u] = a.x;
        if (u1) S1_(i >> 2)[i & 3u] = b.x;
        if (u2) S2_(i >> 2)[i & 3u] = c2.x;
    }
#endif
}
