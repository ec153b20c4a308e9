// vkgrad-bench's FMA peak probe, after vkpeak and bench/rawvk/fma.comp: every invocation runs
// 8 independent chains of T (vec4 or f16vec4), 8 rounds per loop, so per invocation
// loops * 8 * 8 fma's of T = loops * 256 scalar fma's = loops * 512 FLOPs (counted in
// bench/cases.c). m and a are push constants, so nothing folds; the bench passes m = -1, a = 1,
// which makes each chain alternate x, 1 - x exactly, so the checked invocations must return the
// sum of their start values bit for bit. The includer defines T and includes this.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x_id = 0) in;                  // workgroup size: specialization constant 0
layout(push_constant) uniform Push {             // mirrors struct fma_push in bench/cases.c
    uint loops;
    uint n_check;                                // invocations below this write their result
    float m;
    float a;
} pc;
layout(std430, binding = 0) writeonly buffer Result { float result[]; };

float start(uint c) { return float((gl_GlobalInvocationID.x * 32u + c) & 255u) * (1.0 / 256.0); }
#define INIT(k) T(start(4u * k), start(4u * k + 1u), start(4u * k + 2u), start(4u * k + 3u))
#define SUM(v) (float(v.x) + float(v.y) + float(v.z) + float(v.w))
#define F(x) x = fma(x, m, a);
#define ROUND F(c0) F(c1) F(c2) F(c3) F(c4) F(c5) F(c6) F(c7)

void main() {
    const T m = T(pc.m), a = T(pc.a);
    T c0 = INIT(0u), c1 = INIT(1u), c2 = INIT(2u), c3 = INIT(3u);
    T c4 = INIT(4u), c5 = INIT(5u), c6 = INIT(6u), c7 = INIT(7u);
    for (uint i = 0u; i < pc.loops; i++) {
        ROUND ROUND ROUND ROUND ROUND ROUND ROUND ROUND
    }
    float s = SUM(c0) + SUM(c1) + SUM(c2) + SUM(c3) + SUM(c4) + SUM(c5) + SUM(c6) + SUM(c7);
    if (gl_GlobalInvocationID.x < pc.n_check) result[gl_GlobalInvocationID.x] = s;
}
