#version 450
#extension GL_GOOGLE_include_directive : require
// fill (op 0): y = value; arange (op 1): y[i] = start + i * step. Codes of VKG_OP_LIST in
// lib/include/vkgrad/ops.h (change both). Push constants mirror lib/ops/elementwise.c.
// Compiled a second time with FILL_VEC4 (fill_vec4, shaders/CMakeLists.txt): four elements a
// store, for an output offset that is a multiple of 4; the last n % 4 go one at a time.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
#ifdef FILL_VEC4
layout(std430, binding = 0) writeonly buffer Y { vec4 y[]; };
#define AT(i) y[(i) >> 2][(i) & 3u]
#define FIRST (pc.n & ~3u)   // the first element the one-at-a-time loop writes
#else
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
#define AT(i) y[i]
#define FIRST 0u
#endif

layout(push_constant) uniform Push {
    uint n, out_off;
    float value, step;
} pc;

float value(uint i) { return OP == 0u ? pc.value : pc.value + float(i) * pc.step; }

void main() {
#ifdef FILL_VEC4
    for (uint k = gl_GlobalInvocationID.x; k < pc.n / 4u; k += GRID_STRIDE)
        y[pc.out_off / 4u + k] = vec4(value(4u * k), value(4u * k + 1u), value(4u * k + 2u), value(4u * k + 3u));
#endif
    for (uint i = FIRST + gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE)
        AT(pc.out_off + i) = value(i);
}
