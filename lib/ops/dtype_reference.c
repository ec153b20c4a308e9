/* The C reference of dtype conversion: IEEE binary16 <-> binary32 with integer bit operations,
 * written out rather than left to the compiler or the CPU, so that the shaders (cast.comp, the
 * same steps in GLSL) can be checked against it bit for bit on any machine. */
#include <string.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"
#include "ops/bits.h"

uint16_t vkg_ref_f32_to_f16(float x) {
    uint32_t u = vkg_f32_to_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN, quieted */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (half-way past 65504): inf */
    if (a >= 0x38800000u) {                                  /* >= 2^-14: a normal half */
        a += 0xfffu + ((a >> 13) & 1u);                      /* round the 13 dropped bits to even */
        return (uint16_t)(sign | ((a - 0x38000000u) >> 13)); /* rebias the exponent 127 -> 15 */
    }
    if (a <= 0x33000000u) return (uint16_t)sign;             /* <= 2^-25: rounds to zero (tie to even) */
    /* a subnormal half: round(x * 2^24), x = m 2^(e-150) with m the 24-bit significand */
    uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e; /* 14..24 */
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    h += (rem > half || (rem == half && (h & 1u))) ? 1u : 0u;
    return (uint16_t)(sign | h);
}

float vkg_ref_f16_to_f32(uint16_t hb) {
    uint32_t h = hb, sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return vkg_bits_to_f32(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0u)); /* inf, NaN */
    if (e == 0) {
        if (m == 0) return vkg_bits_to_f32(sign);
        /* subnormal m 2^-24: normalise so that the top set bit p lands on the implicit 1 */
        int p = 9;
        while (!(m & (1u << p))) p--;
        return vkg_bits_to_f32(sign | ((uint32_t)(103 + p) << 23) | ((m << (10 - p)) & 0x3ffu) << 13);
    }
    return vkg_bits_to_f32(sign | ((e + 112u) << 23) | (m << 13));
}

void vkg_ref_to_dtype(void *y, vkg_dtype yt, const void *x, vkg_dtype xt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = xt == VKG_F16 ? vkg_ref_f16_to_f32(((const uint16_t *)x)[i]) : ((const float *)x)[i];
        if (yt == VKG_F16) {
            /* f16 -> f16 copies the bits (a NaN's payload is not touched) */
            ((uint16_t *)y)[i] = xt == VKG_F16 ? ((const uint16_t *)x)[i] : vkg_ref_f32_to_f16(v);
        } else {
            ((float *)y)[i] = v;
        }
    }
}
