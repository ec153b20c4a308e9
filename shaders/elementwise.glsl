// Push constants of the elementwise shaders (unary, binary). Mirrors vkg_elementwise_push in
// lib/ops/elementwise.c: change both. The output is contiguous; inputs are read through up to
// 4 (coalesced) dims with per-input strides, 0 where an input is broadcast.
#include "common.glsl"

layout(push_constant) uniform Push {
    uint n;          // output elements
    uint out_off;    // output offset, in elements
    uint flags;      // bit 0: b is the scalar s.x (binary); bit 1: one dim (no index arithmetic)
    uint pad;
    uvec4 shape;     // output shape, outermost first; unused leading dims are 1
    ivec4 st0;       // strides of input 0 (elements)
    ivec4 st1;       // input 1
    ivec4 st2;       // input 2
    uvec4 off;       // offsets of inputs 0, 1, 2
    vec4 s;          // scalar parameters
} pc;

uint src_index(uint i, ivec4 st, uint off) {
    // contiguous and broadcast-free operands coalesce to one dim: skip the divisions (uniform branch)
    if ((pc.flags & 2u) != 0u) return uint(int(off) + int(i) * st.w);
    uint i3 = i % pc.shape.w;
    uint r = i / pc.shape.w;
    uint i2 = r % pc.shape.z;
    r /= pc.shape.z;
    uint i1 = r % pc.shape.y;
    uint i0 = r / pc.shape.y;
    return uint(int(off) + int(i0) * st.x + int(i1) * st.y + int(i2) * st.z + int(i3) * st.w);
}
