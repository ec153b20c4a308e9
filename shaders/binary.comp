#version 450
#extension GL_GOOGLE_include_directive : require
// y = f(a, b) with broadcasting (strides 0), and where(c, a, b); the op is specialization
// constant 1 (its code in VKG_OP_LIST, lib/include/vkgrad/ops.h: change both).
#include "elementwise.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(std430, binding = 0) writeonly buffer Y { ELEM y[]; };
INPUT(1, a);
INPUT(2, b);
INPUT(3, c);   // where's condition only

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

float select_where(float cond, float u, float v) { return cond != 0.0 ? u : v; }

void main() {
    Walk w = walk_start();
    for (uint k = gl_GlobalInvocationID.x; k < pc.n / UNIT; k += GRID_STRIDE, walk_next(w)) {
        ELEM u = LOAD(a, src_index(w, pc.st0, pc.off.x), 0);
        ELEM v = EW_SCALAR ? ELEM(pc.s.x) : LOAD(b, src_index(w, pc.st1, pc.off.y), 1);
        if (OP == 9) {
            ELEM cond = LOAD(c, src_index(w, pc.st2, pc.off.z), 2);
            y[pc.out_off / UNIT + k] = EACH3(select_where, cond, u, v);
        } else {
            y[pc.out_off / UNIT + k] = EACH2(f, u, v);
        }
    }
    for (uint i = TAIL_BEGIN; i < pc.n; i += GRID_STRIDE) {
        float u = FETCH1(a, TAIL_INDEX(i, pc.st0, pc.off.x));
        float v = EW_SCALAR ? pc.s.x : FETCH1(b, TAIL_INDEX(i, pc.st1, pc.off.y));
        AT(y, pc.out_off + i) = OP == 9 ? select_where(FETCH1(c, TAIL_INDEX(i, pc.st2, pc.off.z)), u, v) : f(u, v);
    }
}
