#version 450
#extension GL_GOOGLE_include_directive : require
// y = f(x) for every unary op; the op is specialization constant 1 (its code in VKG_OP_LIST,
// lib/include/vkgrad/ops.h: change both), so each op's pipeline compiles to just its branch.
#include "elementwise.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { ELEM y[]; };
INPUT(1, x);

float f(float v) {
    switch (OP) {
    case 0: return -v;                                    // neg
    case 1: return abs(v);                                // abs
    case 2: return exp(v);                                // exp
    case 3: return log(v);                                // log
    case 4: return sqrt(v);                               // sqrt
    case 5: return inversesqrt(v);                        // rsqrt
    case 6: return safe_tanh(v);                          // tanh
    case 7: return safe_sigmoid(v);                       // sigmoid
    case 8: return max(v, 0.0);                           // relu
    case 9: return gelu_tanh(v);                          // gelu, tanh form
    case 10: return v * safe_sigmoid(v);                  // silu
    case 11: {                                            // pow by scalar s.x
        float e = pc.s.x;
        if (e == 2.0) return v * v;
        if (e == 1.0) return v;
        if (e == 0.0) return 1.0;
        if (e == 0.5) return sqrt(v);
        if (v < 0.0) {                                    // integral exponents keep the sign
            if (floor(e) != e) return 0.0 / 0.0;
            float m = pow(-v, e);
            return mod(e, 2.0) == 1.0 ? -m : m;
        }
        return pow(v, e);
    }
    }
    return v;
}

void main() {
    Walk w = walk_start();
    for (uint k = gl_GlobalInvocationID.x; k < pc.n / UNIT; k += GRID_STRIDE, walk_next(w))
        y[pc.out_off / UNIT + k] = EACH1(f, LOAD(x, src_index(w, pc.st0, pc.off.x), 0));
    for (uint i = TAIL_BEGIN; i < pc.n; i += GRID_STRIDE)
        AT(y, pc.out_off + i) = f(FETCH1(x, TAIL_INDEX(i, pc.st0, pc.off.x)));
}
