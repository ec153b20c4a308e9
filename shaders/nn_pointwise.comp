#version 450
#extension GL_GOOGLE_include_directive : require
// The nn group's elementwise ops, forward and backward: y = f(a, b, c) with a, b, c read through
// up to 4 coalesced dims with their own strides (0 where broadcast); y is contiguous. OP is
// specialization constant 1; the table's codes (lib/include/vkgrad/op_list_nn.h) and the
// backward codes of lib/ops/nn.c (NN_PW_*) are the cases below: change both.
// Push constants mirror vkg_nn_pointwise_push in lib/ops/nn.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };
layout(std430, binding = 3) readonly buffer C { float c[]; };

layout(push_constant) uniform Push {
    uint n;          // output elements
    uint out_off;    // output offset, in elements
    uint pad0, pad1;
    uvec4 shape;     // output shape, outermost first; unused leading dims are 1
    ivec4 st0;       // strides of a (elements)
    ivec4 st1;       // b
    ivec4 st2;       // c
    uvec4 off;       // offsets of a, b, c
    vec4 s;          // scalar parameters
} pc;

uint src_index(uint i, ivec4 st, uint off) {
    uint i3 = i % pc.shape.w;
    uint r = i / pc.shape.w;
    uint i2 = r % pc.shape.z;
    r /= pc.shape.z;
    uint i1 = r % pc.shape.y;
    uint i0 = r / pc.shape.y;
    return uint(int(off) + int(i0) * st.x + int(i1) * st.y + int(i2) * st.z + int(i3) * st.w);
}

// log(1 + e) for e in [0, 1], accurate for small e (the classic log1p without a log1p).
float log1p_small(float e) {
    precise float u = 1.0 + e;
    if (u == 1.0) return e;
    precise float d = u - 1.0;
    return log(u) * (e / d);
}

float f(uint i) {
    float va = a[src_index(i, pc.st0, pc.off.x)];
    switch (OP) {
    case 0:                                               // clamp(a, s.x, s.y); NaN stays
        return isnan(va) ? va : min(max(va, pc.s.x), pc.s.y);
    case 1: {                                             // clamp backward: a = dy, b = x
        float vb = b[src_index(i, pc.st1, pc.off.y)];
        return (vb >= pc.s.x && vb <= pc.s.y) ? va : 0.0;
    }
    case 2: {                                             // masked_fill: a = x, b = mask
        float vb = b[src_index(i, pc.st1, pc.off.y)];
        return vb != 0.0 ? pc.s.x : va;
    }
    case 3:                                               // dropout (both ways): a * keep * scale
        return va * b[src_index(i, pc.st1, pc.off.y)] * pc.s.x;
    case 4: {                                             // mse: (a - b)^2
        float d = va - b[src_index(i, pc.st1, pc.off.y)];
        return d * d;
    }
    case 5: {                                             // mse backward: s.x (a - b) c
        float d = va - b[src_index(i, pc.st1, pc.off.y)];
        return pc.s.x * d * c[src_index(i, pc.st2, pc.off.z)];
    }
    case 6: {                                             // bce with logits: a = x, b = t
        float vb = b[src_index(i, pc.st1, pc.off.y)];
        return max(va, 0.0) - va * vb + log1p_small(exp(-abs(va)));
    }
    case 7: {                                             // bce backward, x: (sigmoid(a) - b) c s.x
        float vb = b[src_index(i, pc.st1, pc.off.y)];
        return (safe_sigmoid(va) - vb) * c[src_index(i, pc.st2, pc.off.z)] * pc.s.x;
    }
    case 8:                                               // bce backward, t: -a c s.x
        return -va * c[src_index(i, pc.st2, pc.off.z)] * pc.s.x;
    }
    return va;
}

void main() {
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += GRID_STRIDE) y[pc.out_off + i] = f(i);
}
