#version 450
#extension GL_GOOGLE_include_directive : require
// y = f(a, b) with broadcasting (strides 0), and where(c, a, b); the op is specialization
// constant 1 (its code in VKG_OP_LIST, lib/include/vkgrad/ops.h: change both).
#include "elementwise.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(std430, binding = 3) readonly buffer C { float c[]; };   // where's condition only

float f(float u, float v) {
    switch (OP) {
    case 0: return u + v;
    case 1: return u - v;
    case 2: return u * v;
    case 3: return u / v;
    case 4: return (isnan(u) || isnan(v)) ? u + v : max(u, v);   // NaN propagates, like PyTorch
    case 5: return (isnan(u) || isnan(v)) ? u + v : min(u, v);
    case 6: return u < v ? 1.0 : 0.0;
    case 7: return u > v ? 1.0 : 0.0;
    case 8: return u == v ? 1.0 : 0.0;
    }
    return u;
}

void main() {
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) {
        float u = a[src_index(i, pc.st0, pc.off.x)];
        float v = (pc.flags & 1u) != 0u ? pc.s.x : b[src_index(i, pc.st1, pc.off.y)];
        if (OP == 9) {
            y[pc.out_off + i] = c[src_index(i, pc.st2, pc.off.z)] != 0.0 ? u : v;
        } else {
            y[pc.out_off + i] = f(u, v);
        }
    }
}
