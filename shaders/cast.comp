#version 450
#extension GL_GOOGLE_include_directive : require
// Dtype conversion (vkg_to_dtype) and f16 copies: gathers a strided view of up to 8 dims into a
// new contiguous tensor, converting f32 <-> f16 on the way. f16 data are halves packed two to a
// 32-bit word (element 2k in the low bits), read and written as uint words with integer bit
// conversions, so no 16-bit storage or shaderFloat16 feature is needed and every device gives
// the same bits (lavapipe flushes float denormals; integer code cannot). An f16 output is owned
// a whole word per invocation (it writes elements 2k and 2k+1 together), so no two invocations
// share a word and no atomics are needed; the output is always a fresh tensor at offset 0.
// The conversions are lib/ops/dtype_reference.c's, step for step: change both.
// Push constants mirror vkg_cast_push in lib/ops/cast.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint SRC_F16 = 0;   // 1: the input is f16, else f32
layout(constant_id = 2) const uint DST_F16 = 0;   // 1: the output is f16, else f32

layout(std430, binding = 0) writeonly buffer Y { uint y[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };

layout(push_constant) uniform Push {
    uint n, ndim, in_off, pad;
    uvec4 shape_lo, shape_hi;      // dims 0-3, 4-7 (outermost first)
    ivec4 st_lo, st_hi;            // input strides, elements
} pc;

uint f32_to_f16(uint u) {
    uint sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);   // NaN, quieted
    if (a >= 0x477ff000u) return sign | 0x7c00u;                          // >= 65520: inf
    if (a >= 0x38800000u) {                                               // a normal half
        a += 0xfffu + ((a >> 13) & 1u);                                   // round to nearest even
        return sign | ((a - 0x38000000u) >> 13);
    }
    if (a <= 0x33000000u) return sign;                                    // <= 2^-25: zero
    uint e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;  // a subnormal half
    uint h = m >> shift, rem = m & ((1u << shift) - 1u), half_ = 1u << (shift - 1u);
    if (rem > half_ || (rem == half_ && (h & 1u) != 0u)) h += 1u;
    return sign | h;
}

uint f16_to_f32(uint h) {
    uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return sign | 0x7f800000u | (m != 0u ? 0x400000u | (m << 13) : 0u);
    if (e == 0u) {
        if (m == 0u) return sign;
        int p = findMSB(m);                                               // 0..9
        return sign | (uint(103 + p) << 23) | (((m << uint(10 - p)) & 0x3ffu) << 13);
    }
    return sign | ((e + 112u) << 23) | (m << 13);
}

uint src_index(uint i) {
    uint shape[8] = uint[8](pc.shape_lo.x, pc.shape_lo.y, pc.shape_lo.z, pc.shape_lo.w,
                            pc.shape_hi.x, pc.shape_hi.y, pc.shape_hi.z, pc.shape_hi.w);
    int st[8] = int[8](pc.st_lo.x, pc.st_lo.y, pc.st_lo.z, pc.st_lo.w, pc.st_hi.x, pc.st_hi.y, pc.st_hi.z, pc.st_hi.w);
    uint r = i;
    int src = int(pc.in_off);
    for (int d = int(pc.ndim) - 1; d >= 0; d--) {
        src += int(r % shape[d]) * st[d];
        r /= shape[d];
    }
    return uint(src);
}

// element i of the output, converted, as the output dtype's bits
uint element(uint i) {
    uint e = src_index(i), b;
    if (SRC_F16 != 0u) b = (x[e >> 1] >> ((e & 1u) * 16u)) & 0xffffu;
    else b = x[e];
    if (SRC_F16 == DST_F16) return b;
    return DST_F16 != 0u ? f32_to_f16(b) : f16_to_f32(b);
}

void main() {
    if (DST_F16 != 0u) {
        uint words = (pc.n + 1u) / 2u;
        for (uint w = gl_GlobalInvocationID.x; w < words; w += GRID_STRIDE) {
            uint lo = element(2u * w), hi = 2u * w + 1u < pc.n ? element(2u * w + 1u) : 0u;
            y[w] = lo | (hi << 16);
        }
    } else {
        for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) y[i] = element(i);
    }
}
