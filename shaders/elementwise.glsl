// Push constants and index walk of the elementwise shaders (unary, binary, unary_backward).
// Mirrors vkg_elementwise_push in lib/ops/elementwise.c: change both. The output is contiguous;
// inputs are read through up to 4 (coalesced) dims with per-input strides, 0 where an input is
// broadcast.
//
// Compiled twice (shaders/CMakeLists.txt): as is, one float per item, and with EW_VEC4 as the
// *_vec4 modules, four consecutive output elements per item, read and written as vec4 (on
// lavapipe a relu over 3.2M floats ran 3x faster so). lib/ops/elementwise.c picks the vec4 module
// only where every item is 4 elements of one innermost run: the output offset is a multiple of
// 4, the innermost coalesced dim is a multiple of 4 (or the only dim: then the last n % 4
// elements are the tail loop's), and every input either runs along it (innermost stride 1, an
// offset and outer strides that are multiples of 4: a vec4 load) or is constant along it
// (innermost stride 0: one float, repeated).
//
// Each of those compiled once more with EW_TEX (the *_tex and *_vec4_tex modules): the inputs
// read through uniform texel buffers (R32F views, RGBA32F for vec4) of their whole blocks, so
// their offsets count from the block's start (the host adds vkg_texel_base). Devices that fetch
// texels faster than they load storage buffers run those (vkg_texel_read: lavapipe, which loads
// a storage buffer a lane at a time). The output is a storage buffer either way.
#include "common.glsl"

// Specialization constant 2 (lib/ops/elementwise.c): bit j (0-2) says input j is constant along
// the innermost run (stride 0, vec4 modules), bit 3 that binary's b is the scalar pc.s.x. These
// are constants rather than push fields because lavapipe runs both sides of every branch, even
// one all lanes take alike: a push-constant choice between a vec4 load and a broadcast float
// paid for both loads, and a relu over 16M floats ran 2.5x slower than with the choice compiled
// away (bench: elementwise/relu 4096x4096, 54.9 against 22.0 ms).
layout(constant_id = 2) const uint EW_LAYOUT = 0;
#define BROADCAST(j) ((EW_LAYOUT & (1u << (j))) != 0u)
const bool EW_SCALAR = (EW_LAYOUT & 8u) != 0u;

// An input binding, and its reads: FETCH4 the vec4 at item i, FETCH1 the float at element e
#ifdef EW_TEX
#define INPUT(b, name) layout(binding = b) uniform samplerBuffer name
#define FETCH4(buf, i) texelFetch(buf, int(i))
#ifdef EW_VEC4
#define FETCH1(buf, e) texelFetch(buf, int((e) >> 2))[(e) & 3u]
#else
#define FETCH1(buf, e) texelFetch(buf, int(e)).x
#endif
#else
#define INPUT(b, name) layout(std430, binding = b) readonly buffer name##_ { ELEM name[]; }
#define FETCH4(buf, i) buf[i]
#ifdef EW_VEC4
#define FETCH1(buf, e) buf[(e) >> 2][(e) & 3u]
#else
#define FETCH1(buf, e) buf[e]
#endif
#endif

#ifdef EW_VEC4
#define UNIT 4u
#define ELEM vec4
// f applied to each element (the ops are scalar code; a GPU's lanes and lavapipe's SIMD lanes
// are invocations, so nothing is lost)
#define EACH1(f, u) vec4(f(u.x), f(u.y), f(u.z), f(u.w))
#define EACH2(f, u, v) vec4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w))
#define EACH3(f, u, v, t) vec4(f(u.x, v.x, t.x), f(u.y, v.y, t.y), f(u.z, v.z, t.z), f(u.w, v.w, t.w))
// the item at element e of input j (its layout bit in EW_LAYOUT says whether it is constant along
// the run: one float, repeated)
#define LOAD(buf, e, j) (BROADCAST(j) ? vec4(FETCH1(buf, e)) : FETCH4(buf, (e) >> 2))
// one element of the output, for the tail
#define AT(buf, e) buf[(e) >> 2][(e) & 3u]
#else
#define UNIT 1u
#define ELEM float
#define EACH1(f, u) f(u)
#define EACH2(f, u, v) f(u, v)
#define EACH3(f, u, v, t) f(u, v, t)
#define LOAD(buf, e, j) FETCH1(buf, e)
#define AT(buf, e) buf[e]
#endif

layout(push_constant) uniform Push {
    uint n;          // output elements
    uint out_off;    // output offset, in elements
    uint unused;     // (the layout is specialization constant 2)
    uint pad;
    uvec4 shape;     // output shape, outermost first; unused leading dims are 1
    ivec4 st0;       // strides of input 0 (elements)
    ivec4 st1;       // input 1
    ivec4 st2;       // input 2
    uvec4 off;       // offsets of inputs 0, 1, 2
    vec4 s;          // scalar parameters
} pc;

// An invocation's position in the output as digits of pc.shape, the innermost counting items.
// Moving on by the grid stride adds the stride's digits with carries: each digit stays below
// twice its size, so one compare and subtract a digit replaces the per-item divisions (llvmpipe
// scalarises vector integer division; six of them an input made the index cost more than the
// memory traffic). Divisions happen once, at the start.
struct Walk {
    uvec4 d, step, size;
};

uvec4 digits(uint k, uvec4 size) {
    uvec4 d;
    d.w = k % size.w;
    k /= size.w;
    d.z = k % size.z;
    k /= size.z;
    d.y = k % size.y;
    d.x = k / size.y;
    return d;
}

Walk walk_start() {
    Walk w;
    w.size = uvec4(pc.shape.xyz, max(pc.shape.w / UNIT, 1u));
    if (pc.shape.x * pc.shape.y * pc.shape.z == 1u) {
        // one dim (every contiguous operand): no divisions at all, which a GPU running one
        // item an invocation would otherwise pay for every item
        w.d = uvec4(0u, 0u, 0u, gl_GlobalInvocationID.x);
        w.step = uvec4(0u, 0u, 0u, GRID_STRIDE);
    } else {
        w.d = digits(gl_GlobalInvocationID.x, w.size);
        // a GPU's invocation takes one item and never steps: it skips the stride's divisions
        w.step = uvec4(0u);
        if (gl_GlobalInvocationID.x + GRID_STRIDE < pc.n / UNIT) w.step = digits(GRID_STRIDE, w.size);
    }
    return w;
}

void walk_next(inout Walk w) {
    w.d.w += w.step.w;
    uint c = w.d.w >= w.size.w ? 1u : 0u;
    w.d.w -= c * w.size.w;
    w.d.z += w.step.z + c;
    c = w.d.z >= w.size.z ? 1u : 0u;
    w.d.z -= c * w.size.z;
    w.d.y += w.step.y + c;
    c = w.d.y >= w.size.y ? 1u : 0u;
    w.d.y -= c * w.size.y;
    w.d.x += w.step.x + c;
}

// Element index of the item's first element in an input with strides st and offset off.
uint src_index(Walk w, ivec4 st, uint off) {
    ivec4 d = ivec4(w.d.xyz, w.d.w * UNIT);
    return uint(int(off) + d.x * st.x + d.y * st.y + d.z * st.z + d.w * st.w);
}

// The tail: elements past the last whole item, only in a one-dim vec4 launch (n % 4 of them).
#define TAIL_BEGIN (pc.n / UNIT * UNIT + gl_GlobalInvocationID.x)
// element i of a one-dim input
#define TAIL_INDEX(i, st, off) uint(int(off) + int(i) * (st).w)
