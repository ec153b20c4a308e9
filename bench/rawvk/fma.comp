#version 450
// FMA peak probe: every invocation runs NACC independent chains of T-typed fma's (T is float,
// vec4, float16_t or f16vec4, picked by -D at build time), so the chains hide the FMA latency.
// Per invocation: loops * 8 * NACC fma's of T, i.e. loops * 8 * NACC * VEC * 2 FLOPs.
// m and a come from push constants so nothing can be folded; rawvk.c passes m = -1, a = 1,
// which makes every chain alternate x, 1 - x exactly in any precision and rounding mode, so the
// checked invocations must return their start values bit for bit.
#if F16
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#if VEC == 4
#define T f16vec4
#else
#define T float16_t
#endif
#else
#if VEC == 4
#define T vec4
#else
#define T float
#endif
#endif

layout(local_size_x_id = 0) in;                  // workgroup size: specialization constant 0
layout(push_constant) uniform Push {             // mirrors struct fma_push in rawvk.c
    uint loops;
    uint n_check;                                // invocations below this write their result
    float m;
    float a;
} pc;
layout(std430, binding = 0) writeonly buffer Result { float result[]; };

// Start value of chain c (component j of accumulator k is chain k * VEC + j): k/256 steps,
// all different so that no two chains can be merged by the compiler.
float start(uint c) {
    return float((gl_GlobalInvocationID.x * uint(NACC * VEC) + c) & 255u) * (1.0 / 256.0);
}
#if VEC == 4
#define INIT(k) T(start(4u * k), start(4u * k + 1u), start(4u * k + 2u), start(4u * k + 3u))
#define SUM(v) (float(v.x) + float(v.y) + float(v.z) + float(v.w))
#else
#define INIT(k) T(start(k))
#define SUM(v) float(v)
#endif

#define F(x) x = fma(x, m, a);
#if NACC == 4
#define ROUND F(c0) F(c1) F(c2) F(c3)
#elif NACC == 8
#define ROUND F(c0) F(c1) F(c2) F(c3) F(c4) F(c5) F(c6) F(c7)
#elif NACC == 16
#define ROUND F(c0) F(c1) F(c2) F(c3) F(c4) F(c5) F(c6) F(c7) \
              F(c8) F(c9) F(c10) F(c11) F(c12) F(c13) F(c14) F(c15)
#else
#error NACC must be 4, 8 or 16
#endif

void main() {
    const T m = T(pc.m), a = T(pc.a);
    // All 16 are declared; the ones a variant leaves unused are only summed, never iterated.
    T c0 = INIT(0u), c1 = INIT(1u), c2 = INIT(2u), c3 = INIT(3u);
    T c4 = INIT(4u), c5 = INIT(5u), c6 = INIT(6u), c7 = INIT(7u);
    T c8 = INIT(8u), c9 = INIT(9u), c10 = INIT(10u), c11 = INIT(11u);
    T c12 = INIT(12u), c13 = INIT(13u), c14 = INIT(14u), c15 = INIT(15u);
    for (uint i = 0u; i < pc.loops; i++) {
        ROUND ROUND ROUND ROUND ROUND ROUND ROUND ROUND      // 8 rounds: the "8" in the count
    }
    float s = SUM(c0) + SUM(c1) + SUM(c2) + SUM(c3);
#if NACC >= 8
    s += SUM(c4) + SUM(c5) + SUM(c6) + SUM(c7);
#endif
#if NACC >= 16
    s += SUM(c8) + SUM(c9) + SUM(c10) + SUM(c11) + SUM(c12) + SUM(c13) + SUM(c14) + SUM(c15);
#endif
    // A store the compiler cannot prove dead (n_check is a push constant), but that costs
    // nothing in the timed runs' memory traffic: only a few invocations take it.
    if (gl_GlobalInvocationID.x < pc.n_check) result[gl_GlobalInvocationID.x] = s;
}
