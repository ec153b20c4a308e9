#version 450
#extension GL_GOOGLE_include_directive : require
// The matmul path's bias, added in place: y[n, k, p] += bias[k], one pass over the batched
// matmul's output (lib/ops/conv.c). Bindings: 0 y contiguous (N, K, OH OW) at off.x, read and
// written, 1 bias (K) at off.y. Push constants: conv.glsl; each invocation walks runs of items
// (RUNS there). Compiled a second time with VEC4 as conv_bias4, where an item is 4 consecutive
// values of one channel, read and written as one vec4 (y's offset and OH OW multiples of 4;
// items then counts vec4s).
#include "conv.glsl"

#ifdef VEC4
layout(std430, binding = 0) buffer Y { vec4 y[]; };
const uint W = 4u;
#else
layout(std430, binding = 0) buffer Y { float y[]; };
const uint W = 1u;
#endif
layout(std430, binding = 1) readonly buffer B { float bias[]; };

void main() {
    uint P = pc.OH * pc.OW / W, base = pc.off.x / W;   // in items
    for (uint j = gl_GlobalInvocationID.x; j < RUNS; j += GRID_STRIDE) {
        uint it = j * pc.per, end = min(pc.items, it + pc.per);
        uint p = it % P, k = (it / P) % pc.K;
        float b = bias[pc.off.y + k];
        for (; it < end; it++) {
            y[base + it] += b;
            // the next item: p, then k carry (and its bias)
            p++;
            if (p == P) {
                p = 0u;
                k = k + 1u == pc.K ? 0u : k + 1u;
                b = bias[pc.off.y + k];
            }
        }
    }
}
