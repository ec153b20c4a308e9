#version 450
#extension GL_GOOGLE_include_directive : require
// Reductions over the middle axis of a contiguous (outer, R, inner) view, in a fixed order so
// that results are bitwise reproducible. Specialization constants: 1 = op (sum, mean, max,
// min, argmax: codes of VKG_OP_LIST, change both), 2 = variant:
//   0 one invocation per output (many outputs);
//   1 one workgroup per output (few outputs, long rows; a tree in shared memory);
//   2 split: one workgroup per (output, chunk of pc.chunk along R), writing the chunk's value to
//     Y and its index to I (the first pass for rows too long for one workgroup: lavapipe ends an
//     invocation's loops after 65535 iterations);
//   3 merge: one invocation per output combines its pc.nchunk (value, index) pairs, read from X
//     and XI, in chunk order (the second pass);
//   4 columns: one invocation per (output, chunk of pc.chunk along R), writing like 2 (a first
//     pass on CPU devices for few outputs side by side, inner > 1: a bias's gradient over the
//     rows of a batch). Neighbouring lanes take neighbouring outputs, so they read neighbouring
//     words, and there is no barrier tree (lavapipe pays for each barrier). With VEC4 and one
//     chunk it writes the final sums or means (many columns of short reductions).
// Push constants mirror vkg_reduce_push in lib/ops/reduce.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint OP = 0;
layout(constant_id = 2) const uint VARIANT = 0;
// VEC4 (3), sums and means only: in variant 0 over contiguous rows (inner 1) of a multiple of 4
// that start at multiples of 4, a row is read as vec4s into four partial sums; in variant 4 an
// invocation sums four neighbouring columns (inner a multiple of 4, starting at a multiple of
// 4) with one vec4 load per row, each column in the same order as alone. lavapipe loads a
// lane's vec4 for about the cost of a float. X4 aliases X.
layout(constant_id = 3) const bool VEC4 = false;
layout(std430, binding = 0) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer I { int yi[]; };   // argmax output (may alias Y)
layout(std430, binding = 3) readonly buffer XI { int xi[]; };   // merge: the chunks' indices
// Compiled a second time with RED_TEX (reduce_tex): X read through a uniform texel buffer, a view
// of its whole block (RGBA32F for the VEC4 forms, else R32F; pc.in_off counts from the block's
// start), on devices that fetch texels faster than they load storage buffers (lavapipe).
#ifdef RED_TEX
layout(binding = 1) uniform samplerBuffer xt;
#define X(i) texelFetch(xt, int(i)).x
#define X4(i) texelFetch(xt, int(i))
#else
layout(std430, binding = 1) readonly buffer X_ { float x[]; };
layout(std430, binding = 1) readonly buffer X4_ { vec4 x4[]; };
#define X(i) x[i]
#define X4(i) x4[i]
#endif

layout(push_constant) uniform Push {
    uint outer, R, inner, in_off;  // merge: R is the whole row (for mean), X holds nchunk per output
    uint out_off;
    uint chunk, nchunk;            // split and merge
    uint idx_off;                  // split: I's offset; merge: XI's offset
} pc;

const bool IS_MAX = OP == 2 || OP == 4;
const bool IS_MIN = OP == 3;
const bool INDEXED = IS_MAX || IS_MIN;  // the chunks' indices matter (ties, argmax); sums skip them

// Combines (v, iv) into (acc, ia); indices break ties toward the first, NaN wins like PyTorch.
void combine(inout float acc, inout int ia, float v, int iv) {
    if (IS_MAX || IS_MIN) {
        bool take;
        if (isnan(acc)) take = isnan(v) && iv < ia;
        else if (isnan(v)) take = true;
        else if (IS_MAX) take = v > acc || (v == acc && iv < ia);
        else take = v < acc || (v == acc && iv < ia);
        if (take) { acc = v; ia = iv; }
    } else {
        acc += v;
    }
}

float init_value() { return IS_MAX ? uintBitsToFloat(0xff800000u) : IS_MIN ? uintBitsToFloat(0x7f800000u) : 0.0; }

void store(uint o, float acc, int ia) {
    if (OP == 4) yi[pc.out_off + o] = ia;
    else if (OP == 1) y[pc.out_off + o] = acc / float(pc.R);
    else y[pc.out_off + o] = acc;
}

shared float s_val[256];
shared int s_idx[256];

void main() {
    uint nout = pc.outer * pc.inner;
    if (VARIANT == 0 && VEC4) {
        for (uint o = gl_GlobalInvocationID.x; o < nout; o += GRID_STRIDE) {
            uint base = (pc.in_off + o * pc.R) / 4u;
            vec4 acc = vec4(0.0);
            for (uint r = 0; r < pc.R / 4u; r++) acc += X4(base + r);
            store(o, sum4(acc), 0);
        }
    } else if (VARIANT == 0) {
        for (uint o = gl_GlobalInvocationID.x; o < nout; o += GRID_STRIDE) {
            uint ob = o / pc.inner, ii = o % pc.inner;
            uint base = pc.in_off + ob * pc.R * pc.inner + ii;
            float acc = init_value();
            int ia = 0x7fffffff;
            for (uint r = 0; r < pc.R; r++) combine(acc, ia, X(base + r * pc.inner), int(r));
            store(o, acc, pc.R == 0u ? 0 : ia);
        }
    } else if (VARIANT == 4 && VEC4) {
        uint n4 = nout / 4u, step = pc.inner / 4u;
        for (uint it = gl_GlobalInvocationID.x; it < n4 * pc.nchunk; it += GRID_STRIDE) {
            uint c = it / n4, o = (it % n4) * 4u;
            uint base = (pc.in_off + (o / pc.inner) * pc.R * pc.inner + o % pc.inner) / 4u;
            uint r1 = min(pc.R, (c + 1u) * pc.chunk);
            vec4 acc = vec4(0.0);
            for (uint r = c * pc.chunk; r < r1; r++) acc += X4(base + r * step);
            if (OP == 1 && pc.nchunk == 1u) acc /= float(pc.R); // one chunk: the final value (a split has 2+)
            for (uint j = 0; j < 4u; j++) y[pc.out_off + (o + j) * pc.nchunk + c] = acc[j];
        }
    } else if (VARIANT == 4) {
        for (uint it = gl_GlobalInvocationID.x; it < nout * pc.nchunk; it += GRID_STRIDE) {
            uint c = it / nout, o = it % nout;
            uint base = pc.in_off + (o / pc.inner) * pc.R * pc.inner + o % pc.inner;
            uint r1 = min(pc.R, (c + 1u) * pc.chunk);
            float acc = init_value();
            int ia = 0x7fffffff;
            for (uint r = c * pc.chunk; r < r1; r++) combine(acc, ia, X(base + r * pc.inner), int(r));
            y[pc.out_off + o * pc.nchunk + c] = acc;
            if (INDEXED) yi[pc.idx_off + o * pc.nchunk + c] = ia;
        }
    } else if (VARIANT == 3) {
        for (uint o = gl_GlobalInvocationID.x; o < nout; o += GRID_STRIDE) {
            float acc = init_value();
            int ia = 0x7fffffff;
            for (uint c = 0; c < pc.nchunk; c++)
                combine(acc, ia, X(pc.in_off + o * pc.nchunk + c), INDEXED ? xi[pc.idx_off + o * pc.nchunk + c] : 0);
            store(o, acc, ia);
        }
    } else {
        uint t = gl_LocalInvocationID.x;
        uint L = gl_WorkGroupSize.x;
        uint nc = VARIANT == 2 ? pc.nchunk : 1u;
        for (uint oc = gl_WorkGroupID.x; oc < nout * nc; oc += gl_NumWorkGroups.x) {
            uint o = oc / nc, c = oc % nc;
            uint ob = o / pc.inner, ii = o % pc.inner;
            uint base = pc.in_off + ob * pc.R * pc.inner + ii;
            uint r0 = VARIANT == 2 ? c * pc.chunk : 0u, r1 = VARIANT == 2 ? min(pc.R, r0 + pc.chunk) : pc.R;
            float acc = init_value();
            int ia = 0x7fffffff;
            for (uint r = r0 + t; r < r1; r += L) combine(acc, ia, X(base + r * pc.inner), int(r));
            s_val[t] = acc;
            s_idx[t] = ia;
            barrier();
            for (uint w = L / 2u; w > 0u; w >>= 1) {
                if (t < w) {
                    float a = s_val[t];
                    int i = s_idx[t];
                    combine(a, i, s_val[t + w], s_idx[t + w]);
                    s_val[t] = a;
                    s_idx[t] = i;
                }
                barrier();
            }
            if (t == 0u) {
                if (VARIANT == 2) {
                    y[pc.out_off + oc] = s_val[0];
                    yi[pc.idx_off + oc] = s_idx[0];
                } else {
                    store(o, s_val[0], s_idx[0]);
                }
            }
            barrier();
        }
    }
}
