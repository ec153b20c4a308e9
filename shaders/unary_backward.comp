#version 450
#extension GL_GOOGLE_include_directive : require
// dx = g f'(x) for a unary op in one pass, where the chain rule written with tensor ops takes up
// to 14 (tanh-form GELU): each pass reads and writes every element, so on a bandwidth-bound
// device one fused pass is worth ten. The op is specialization constant 1, with unary.comp's
// codes (VKG_OP_LIST, lib/include/vkgrad/ops.h: change both). Inputs: a = x, b = g.
#include "elementwise.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { ELEM dx[]; };
INPUT(1, x);
INPUT(2, g);
INPUT(3, unused);

float grad(float v, float gv) {
    switch (OP) {
    case 0: return -gv;                                                   // neg
    case 1: return gv * ((v > 0.0 ? 1.0 : 0.0) - (v < 0.0 ? 1.0 : 0.0));  // abs
    case 2: return gv * exp(v);                                           // exp
    case 3: return gv / v;                                                // log
    case 4: return (gv * 0.5) / sqrt(v);                                  // sqrt
    case 5: {                                                             // rsqrt
        float r = inversesqrt(v);
        return gv * (r * r * r * -0.5);
    }
    case 6: {                                                             // tanh
        float t = safe_tanh(v);
        return gv * (1.0 - t * t);
    }
    case 7: {                                                             // sigmoid
        float s = safe_sigmoid(v);
        return gv * (s * (1.0 - s));
    }
    case 8: return gv * (v > 0.0 ? 1.0 : 0.0);                            // relu
    case 9: return gv * gelu_tanh_grad(v);                                // gelu, tanh form
    case 10: {                                                            // silu: s (1 + x (1 - s))
        float s = safe_sigmoid(v);
        return gv * (s * (v * (1.0 - s) + 1.0));
    }
    }
    return gv;
}

void main() {
    Walk w = walk_start();
    for (uint k = gl_GlobalInvocationID.x; k < pc.n / UNIT; k += GRID_STRIDE, walk_next(w)) {
        ELEM v = LOAD(x, src_index(w, pc.st0, pc.off.x), 0), gv = LOAD(g, src_index(w, pc.st1, pc.off.y), 1);
        dx[pc.out_off / UNIT + k] = EACH2(grad, v, gv);
    }
    for (uint i = TAIL_BEGIN; i < pc.n; i += GRID_STRIDE)
        AT(dx, pc.out_off + i) =
            grad(FETCH1(x, TAIL_INDEX(i, pc.st0, pc.off.x)), FETCH1(g, TAIL_INDEX(i, pc.st1, pc.off.y)));
}
