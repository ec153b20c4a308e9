#version 450
#extension GL_GOOGLE_include_directive : require
// fill (op 0): y = value; arange (op 1): y[i] = start + i * step. Codes of VKG_OP_LIST in
// lib/include/vkgrad/ops.h (change both). Push constants mirror lib/ops/elementwise.c.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint n, out_off;
    float value, step;
} pc;

void main() {
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE)
        y[pc.out_off + i] = OP == 0u ? pc.value : pc.value + float(i) * pc.step;
}
