#version 450
#extension GL_GOOGLE_include_directive : require
// The random ops: one invocation per Philox block, which writes the (up to) four elements of
// the call that fall in it. OP codes are those of VKG_OP_LIST in lib/include/vkgrad/ops.h
// (change both): rand 0, randn 1, randint 2, bernoulli 3; 4 is vkg_random_bits (raw words, not
// a table row). The value transforms, and randn's polynomials step for step, mirror
// lib/ops/random_reference.c; every float step of randn is `precise` so that no compiler fuses
// or reorders it (change both). Push constants mirror vkg_random_push in lib/ops/random.c.
#include "common.glsl"
#include "philox.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { uint y[]; };  // f32 bits or i32

layout(push_constant) uniform Push {
    uint n, out_off;   // elements of the call; the output's offset in elements
    uint lane0;        // lane of element 0 in its block (offset % 4)
    uint nblocks;      // blocks the call touches
    uvec4 ctr;         // counter of the first block
    uvec2 key;
    float mean, std;   // randn
    float p;           // bernoulli
    int low;           // randint
    uint range;        // randint: high - low
} pc;

float u24(uint w) { return float(w >> 8) * (1.0 / 16777216.0); }

// ln u for u in (0, 1], normal: Cephes logf, as poly_log in lib/ops/random_reference.c.
float poly_log(float u) {
    uint bits = floatBitsToUint(u);
    int e = int(bits >> 23) - 126;
    float m = uintBitsToFloat((bits & 0x007FFFFFu) | 0x3F000000u);
    precise float x;
    if (m < uintBitsToFloat(0x3F3504F3u)) {
        e -= 1;
        x = m + m;
        x = x - 1.0;
    } else {
        x = m - 1.0;
    }
    precise float z = x * x;
    precise float y = uintBitsToFloat(0x3D9021BBu) * x;
    y = y + uintBitsToFloat(0xBDEBD1B8u);
    y = y * x;
    y = y + uintBitsToFloat(0x3DEF251Au);
    y = y * x;
    y = y + uintBitsToFloat(0xBDFE5D4Fu);
    y = y * x;
    y = y + uintBitsToFloat(0x3E11E9BFu);
    y = y * x;
    y = y + uintBitsToFloat(0xBE2AAE50u);
    y = y * x;
    y = y + uintBitsToFloat(0x3E4CCEACu);
    y = y * x;
    y = y + uintBitsToFloat(0xBE7FFFFCu);
    y = y * x;
    y = y + uintBitsToFloat(0x3EAAAAAAu);
    y = y * x;
    y = y * z;
    float fe = float(e);
    precise float t = uintBitsToFloat(0xB95E8083u) * fe;
    y = y + t;
    t = 0.5 * z;
    y = y - t;
    precise float r = x + y;
    t = uintBitsToFloat(0x3F318000u) * fe;
    r = r + t;
    return r;
}

// Two normals from two words, as vkg_ref_box_muller.
vec2 box_muller(uint a, uint b) {
    precise float u1 = float((a >> 8) + 1u) * (1.0 / 16777216.0);
    precise float l = poly_log(u1);
    l = -2.0 * l;
    precise float r = sqrt(l);
    uint w = b >> 8;
    uint k = (w + (1u << 21)) >> 22;
    precise float q = float(int(w) - int(k << 22)) * (1.0 / 4194304.0);
    precise float x = q * uintBitsToFloat(0x3FC90FDBu);
    precise float x2 = x * x;
    precise float s = uintBitsToFloat(0xB94CA1F9u) * x2;
    s = s + uintBitsToFloat(0x3C08839Eu);
    s = s * x2;
    s = s + uintBitsToFloat(0xBE2AAAA3u);
    s = s * x2;
    s = s * x;
    s = s + x;
    precise float c = uintBitsToFloat(0x37CCF5CEu) * x2;
    c = c + uintBitsToFloat(0xBAB6061Au);
    c = c * x2;
    c = c + uintBitsToFloat(0x3D2AAAA5u);
    c = c * x2;
    c = c * x2;
    precise float h = 0.5 * x2;
    c = c - h;
    c = c + 1.0;
    float cs, sn;
    switch (k & 3u) {
    case 0u: cs = c; sn = s; break;
    case 1u: cs = -s; sn = c; break;
    case 2u: cs = -c; sn = -s; break;
    default: cs = s; sn = -c; break;
    }
    precise vec2 z = vec2(r * cs, r * sn);
    return z;
}

void main() {
    for (uint b = gl_GlobalInvocationID.x; b < pc.nblocks; b += GRID_STRIDE) {
        uvec4 x = philox4x32_10(philox_counter_add(pc.ctr, b), pc.key);
        vec4 z = vec4(0.0);
        if (OP == 1u) z = vec4(box_muller(x.x, x.y), box_muller(x.z, x.w));
        for (uint l = 0u; l < 4u; l++) {
            uint j = b * 4u + l;                      // < 2^32: the host checks nblocks
            if (j < pc.lane0 || j - pc.lane0 >= pc.n) continue;
            uint e = j - pc.lane0;                    // element index
            uint v;
            if (OP == 0u) {
                v = floatBitsToUint(u24(x[l]));
            } else if (OP == 1u) {
                precise float t = pc.std * z[l];
                precise float o = pc.mean + t;
                v = floatBitsToUint(o);
            } else if (OP == 2u) {
                uint hi, lo;
                umulExtended(x[l], pc.range, hi, lo);
                v = uint(pc.low) + hi;
            } else if (OP == 3u) {
                v = floatBitsToUint(u24(x[l]) < pc.p ? 1.0 : 0.0);
            } else {
                v = x[l];
            }
            y[pc.out_off + e] = v;
        }
    }
}
