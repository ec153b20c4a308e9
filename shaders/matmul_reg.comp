#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// C = A @ B for CPU-like devices (lavapipe): register blocking, vec4 loads, no shared memory.
// Each invocation keeps a TM x TN block of C in registers and walks K four at a time. A and B
// are read in place as vec4 along whichever of their dims is contiguous (A_KC / B_KC say
// whether that is K), so A^T and B^T views cost nothing. That needs inner stride 1, other
// strides and offset multiples of 4, and every vec4 read (up to the next multiple of 4 of the
// contiguous dim) inside the binding (lib/ops/matmul.c checks); an operand that does not qualify
// (A_KC / B_KC = 2: a (128, 10) gradient, rows of 10) is read one float per load through both
// strides, still 4x fewer loads per FMA than the general kernel's.
// Edges: rows/cols past M/N are clamped on load and never stored; the K tail is masked.
// SG = 1 (subgroup size 8 only): the 8 lanes of a subgroup share their TM rows of A; each
// lane loads 1/8 of the A chunk and the others get it by subgroupShuffle, because on lavapipe
// every storage-buffer load is a per-lane loop, far dearer than a shuffle with a constant lane.
// K_TAIL (bit 2 of constant 5) is set only when K is not a multiple of 4: lavapipe runs both
// sides of every if with lanes masked off, even when the condition is the same for all lanes, so
// the masked tail chunk would otherwise cost one more trip of the K loop in every product.
// BATCH_GRID (bit 3 of constant 5, set when the dispatch has a workgroup row per batch entry):
// the product runs once, outside any loop. lavapipe stores a variable written inside a loop
// through the loop's lane mask (a blend with its old value), so the batch loop around the
// product made every write of the accumulators, including their zeroing, such a blend
// (2048x128x384 1.09x, attention's 64x32x64 1.18x in GFLOP per CPU-second).
// C_V4 (bit 1 of constant 5, set when N and C's offset and strides are multiples of 4): C is
// stored as vec4s, because every store, like every load, is a loop over the lanes, and in a
// product with a short K (the transformer's K = 128, attention's 32 and 64) TM x TN scalar
// stores cost as much as a third of the K loop. C is written through its offset, row stride and
// batch strides (c_off), so a product can land in place in a larger layout (vkg_matmul_into).
// Push constants mirror vkg_matmul_push in lib/ops/matmul.c (same block as matmul.comp). The store
// applies the epilogue (bias, relu) in the module built with MM_EPILOGUE: matmul_epilogue.glsl.
#include "common.glsl"

layout(local_size_y_id = 6) in;
layout(constant_id = 1) const uint TM = 8;     // rows per invocation (multiple of 4; of 8 if SG)
layout(constant_id = 2) const uint TN = 8;     // cols per invocation (multiple of 4)
layout(constant_id = 3) const uint A_KC = 1;   // 1: A's K dim is contiguous, 0: its M dim, 2: scalars
layout(constant_id = 4) const uint B_KC = 0;   // 1: B's K dim is contiguous (B^T rows), 0: its N dim, 2: scalars
layout(constant_id = 5) const uint MODE = 0;   // bit 0: SG, bit 1: C_V4, bit 2: K_TAIL, bit 3: BATCH_GRID
const uint SG = MODE & 1u;
const bool C_V4 = (MODE & 2u) != 0u;
const bool K_TAIL = (MODE & 4u) != 0u;
const bool BATCH_GRID = (MODE & 8u) != 0u;

layout(std430, binding = 0) writeonly buffer Cb { vec4 c4[]; };
#ifdef MM_TEXEL
// A and B as RGBA32F uniform texel buffers over their whole blocks (offsets count from the
// block's start, lib/ops/matmul.c): lavapipe fetches a texel for all 8 lanes in straight-line
// code, where a storage-buffer load is a loop over the lanes with a bounds check and branch per
// component (bench/MATMUL.md: a vec4 texel fetch measured ~0.3x the cost of a vec4 load).
layout(binding = 1) uniform samplerBuffer a_tex;
layout(binding = 2) uniform samplerBuffer b_tex;
vec4 a_ld(int i) { return texelFetch(a_tex, i); }
vec4 b_ld(int i) { return texelFetch(b_tex, i); }
#else
layout(std430, binding = 1) readonly buffer Ab { vec4 a4[]; };
layout(std430, binding = 2) readonly buffer Bb { vec4 b4[]; };
vec4 a_ld(int i) { return a4[i]; }
vec4 b_ld(int i) { return b4[i]; }
#endif

layout(push_constant) uniform Push {
    uvec4 mnk;      // M, N, K, batch count
    uvec4 bshape;   // batch dims (up to 3, outermost first; unused 1)
    ivec4 a_bst;    // A batch strides
    ivec4 b_bst;    // B batch strides
    ivec4 a_mat;    // A row stride, col stride, offset
    ivec4 b_mat;    // B row stride, col stride, offset
    uvec4 c_off;    // C offset, row stride, batch strides (slots 0-1 together, slot 2)
#ifdef MM_EPILOGUE
    ivec4 epi;      // bias offset, bias stride (matmul_epilogue.glsl)
#endif
} pc;
#ifdef MM_EPILOGUE
#include "matmul_epilogue.glsl"
#endif

float acc[TM][TN];
float av[TM][4];   // A[row0 + i][k0 + kk]
float bv[4][TN];   // B[k0 + kk][col0 + j]

#ifdef MM_CONV
// Convolution as an implicit GEMM (lib/ops/conv.c): B is not a matrix in memory but the
// unfolding of an image x (C, H, W), one image per batch entry, read in place: B[k][n] =
// x[c, ih, iw] at tap (c, r, s) and output position (oh, ow), with ih = oh sh + r dh + ph and
// iw = ow sw + s dw + pw, and 0 where (ih, iw) falls outside the image (padding). With
// CV_WGRAD, k is the position and n the tap (the weight gradient's g[n] @ unfold(x[n])^T); else
// k is the tap and n the position (the forward, and the input gradient, a convolution of the
// output gradient with the weights' first two dims swapped, its taps at minus the dilation and
// the padding on the other side: dh, dw < 0 and ph, pw > 0). No
// unfolded copy is written or read, and the K loop needs nothing the plain kernel does not
// have but the index arithmetic of B's elements: the column's part (its position or tap) is
// worked out once per invocation (cv_cols), the k part once per k for all lanes alike.
// Constant 8 packs the mode, the kernel's size and OW, so that the divisions that split k are
// by constants (lavapipe divides lane by lane): bit 0 CV_WGRAD, bits 1-7 kh, 8-14 kw, 15-31 OW.
// B's push fields: b_mat = (x's channel stride, row stride (columns are contiguous), offset,
// H | W << 16), b_bst.x = sh, sw, dh, dw as signed bytes, b_bst.y = ph, pw as signed 16-bit
// halves, b_bst.z = the image stride (batch slot 2). With MM_TEXEL, B is bound as an R32F texel
// buffer (vkg_dispatch_desc.texel_r32), where a float costs one fetch and no component select.
layout(constant_id = 8) const uint CV = 0;
const bool CV_WGRAD = (CV & 1u) != 0u;
const uint CV_KH = (CV >> 1) & 127u, CV_KW = (CV >> 8) & 127u, CV_OW = CV >> 15;
int cv_y[TN], cv_x[TN], cv_i[TN];   // the column's part of ih, iw and of x's index

void cv_cols(uint col0) {
    int sh = bitfieldExtract(pc.b_bst.x, 0, 8), sw = bitfieldExtract(pc.b_bst.x, 8, 8);
    int dh = bitfieldExtract(pc.b_bst.x, 16, 8), dw = bitfieldExtract(pc.b_bst.x, 24, 8);
    int ph = bitfieldExtract(pc.b_bst.y, 0, 16), pw = bitfieldExtract(pc.b_bst.y, 16, 16);
    for (uint j = 0; j < TN; j++) {
        uint n = min(col0 + j, pc.mnk.y - 1u);
        if (CV_WGRAD) { // n is the tap (c, r, s)
            uint c = n / (CV_KH * CV_KW), rs = n % (CV_KH * CV_KW);
            cv_y[j] = int(rs / CV_KW) * dh + ph;
            cv_x[j] = int(rs % CV_KW) * dw + pw;
            cv_i[j] = int(c) * pc.b_mat.x;
        } else { // n is the position (oh, ow)
            cv_y[j] = int(n / CV_OW) * sh + ph;
            cv_x[j] = int(n % CV_OW) * sw + pw;
            cv_i[j] = 0;
        }
        cv_i[j] += cv_y[j] * pc.b_mat.y + cv_x[j];
    }
}

// B[k][col0 + j] for the j of this invocation's columns (cv_cols), k inside [0, K)
void cv_load_b(int bbase, uint k, uint kk) {
    int ky, kx, kc;
    if (CV_WGRAD) { // k is the position
        ky = int(k / CV_OW) * bitfieldExtract(pc.b_bst.x, 0, 8);
        kx = int(k % CV_OW) * bitfieldExtract(pc.b_bst.x, 8, 8);
        kc = 0;
    } else { // k is the tap
        uint rs = k % (CV_KH * CV_KW);
        ky = int(rs / CV_KW) * bitfieldExtract(pc.b_bst.x, 16, 8);
        kx = int(rs % CV_KW) * bitfieldExtract(pc.b_bst.x, 24, 8);
        kc = int(k / (CV_KH * CV_KW)) * pc.b_mat.x;
    }
    uint H = uint(pc.b_mat.w) & 0xffffu, W = uint(pc.b_mat.w) >> 16;
    int ki = bbase + kc + ky * pc.b_mat.y + kx; // the k part of the index, the same in every lane
    for (uint j = 0; j < TN; j++) {
        bool inside = uint(cv_y[j] + ky) < H && uint(cv_x[j] + kx) < W;
        int i = inside ? cv_i[j] + ki : bbase; // never outside x
#ifdef MM_TEXEL
        float v = texelFetch(b_tex, i).x; // an R32F view here: one texel a float
#else
        float v = b_ld(i >> 2)[i & 3];
#endif
        bv[kk][j] = inside ? v : 0.0;
    }
}
#endif

// A[m][k] and B[k][n] one float at a time (A_KC / B_KC = 2), m, k, n inside the matrix
float a_at(int abase, uint m, uint k) {
    int i = abase + int(m) * pc.a_mat.x + int(k) * pc.a_mat.y;
    return a_ld(i >> 2)[i & 3];
}
float b_at(int bbase, uint k, uint n) {
    int i = bbase + int(k) * pc.b_mat.x + int(n) * pc.b_mat.y;
    return b_ld(i >> 2)[i & 3];
}

// A chunk (TM rows x 4 k) of this invocation into av; k beyond K reads a valid k, masked later.
void load_a(int abase, uint row0, uint k0) {
    uint M = pc.mnk.x, K = pc.mnk.z;
    if (SG == 0) {
        if (A_KC == 1) {
            for (uint i = 0; i < TM; i++) {
                uint m = min(row0 + i, M - 1u);
                vec4 v = a_ld((abase + int(m) * pc.a_mat.x + int(k0)) >> 2);
                for (uint kk = 0; kk < 4; kk++) av[i][kk] = v[kk];
            }
        } else if (A_KC == 2) {
            for (uint i = 0; i < TM; i++)
                for (uint kk = 0; kk < 4; kk++) av[i][kk] = a_at(abase, min(row0 + i, M - 1u), min(k0 + kk, K - 1u));
        } else {
            for (uint kk = 0; kk < 4; kk++) {
                uint k = min(k0 + kk, K - 1u);
                for (uint i4 = 0; i4 < TM / 4; i4++) {
                    uint m = min(row0 + 4u * i4, (M - 1u) & ~3u);
                    vec4 v = a_ld((abase + int(k) * pc.a_mat.y + int(m)) >> 2);
                    for (uint r = 0; r < 4; r++) av[4 * i4 + r][kk] = v[r];
                }
            }
        }
    } else {
        // the chunk is TM vec4s; lane l loads vec4 number q * 8 + l (4 k of row t when scalars)
        uint lane = gl_SubgroupInvocationID;
        for (uint q = 0; q < TM / 8; q++) {
            uint t = q * 8u + lane;
            vec4 v;
            if (A_KC == 1) {
                uint m = min(row0 + t, M - 1u);
                v = a_ld((abase + int(m) * pc.a_mat.x + int(k0)) >> 2);
            } else if (A_KC == 2) {
                uint m = min(row0 + t, M - 1u);
                for (uint e = 0; e < 4; e++) v[e] = a_at(abase, m, min(k0 + e, K - 1u));
            } else {
                uint kk = t / (TM / 4), i4 = t % (TM / 4);
                uint k = min(k0 + kk, K - 1u);
                uint m = min(row0 + 4u * i4, (M - 1u) & ~3u);
                v = a_ld((abase + int(k) * pc.a_mat.y + int(m)) >> 2);
            }
            for (uint s = 0; s < 8; s++) {
                uint t2 = q * 8u + s;
                for (uint e = 0; e < 4; e++) {
                    float x = subgroupShuffle(v[e], s);
                    if (A_KC != 0) av[t2][e] = x;
                    else av[4 * (t2 % (TM / 4)) + e][t2 / (TM / 4)] = x;
                }
            }
        }
    }
}

void load_b(int bbase, uint col0, uint k0) {
    uint N = pc.mnk.y, K = pc.mnk.z;
#ifdef MM_CONV
    for (uint kk = 0; kk < 4; kk++) cv_load_b(bbase, min(k0 + kk, K - 1u), kk);
#else
    if (B_KC == 1) {
        for (uint j = 0; j < TN; j++) {
            uint n = min(col0 + j, N - 1u);
            vec4 v = b_ld((bbase + int(n) * pc.b_mat.y + int(k0)) >> 2);
            for (uint kk = 0; kk < 4; kk++) bv[kk][j] = v[kk];
        }
    } else if (B_KC == 2) {
        for (uint kk = 0; kk < 4; kk++)
            for (uint j = 0; j < TN; j++) bv[kk][j] = b_at(bbase, min(k0 + kk, K - 1u), min(col0 + j, N - 1u));
    } else {
        for (uint kk = 0; kk < 4; kk++) {
            uint k = min(k0 + kk, K - 1u);
            for (uint j4 = 0; j4 < TN / 4; j4++) {
                uint n = min(col0 + 4u * j4, (N - 1u) & ~3u);
                vec4 v = b_ld((bbase + int(k) * pc.b_mat.x + int(n)) >> 2);
                for (uint r = 0; r < 4; r++) bv[kk][4 * j4 + r] = v[r];
            }
        }
    }
#endif
}

// kk innermost: an accumulator that does not fit in a register is loaded and stored once per
// chunk of 4 FMAs rather than once per FMA
void fma_chunk(uint kn) {
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) {
            float s = acc[i][j];
            for (uint kk = 0; kk < 4; kk++)
                if (kk < kn) s = fma(av[i][kk], bv[kk][j], s);
            acc[i][j] = s;
        }
}

#ifdef MM_EPILOGUE
float bj[TN];   // the epilogue's column bias, read once per column
#endif

// C[row0 + i][col0 + j]'s accumulator, plus the epilogue's bias where there is one (z)
float z_value(uint i, uint j, float bi) {
#ifdef MM_EPILOGUE
    return epi_z(acc[i][j], epi_pick(bj[j], bi));
#else
    return acc[i][j];
#endif
}

// Stores the TM x TN block at (row0, col0) of the matrix that starts at cbase (rows c_off.y
// apart); with act (a constant at each call) through the epilogue (epi_out), else z.
// The epilogue is applied as the values are stored, so the accumulators are not written again
// (on lavapipe each write of a variable inside a loop is a masked blend of a spilled register:
// the epilogue that rewrote them in place cost fc1's GELU product in the GPT more than a
// separate GELU pass).
void store_tile(uint cbase, uint row0, uint col0, uint M, uint N, bool act) {
    for (uint i = 0; i < TM; i++) {
        uint ci = cbase + (row0 + i) * pc.c_off.y + col0;
#ifdef MM_EPILOGUE
        float bi = epi_row_bias(min(row0 + i, M - 1u));
#else
        float bi = 0.0;
#endif
        if (C_V4) {
            // N % 4 == 0 and col0 % 4 == 0: a vec4 that starts inside N lies inside it
            for (uint j4 = 0; j4 < TN / 4; j4++)
                if (row0 + i < M && col0 + 4u * j4 < N) {
                    vec4 v = vec4(z_value(i, 4 * j4, bi), z_value(i, 4 * j4 + 1, bi), z_value(i, 4 * j4 + 2, bi),
                                  z_value(i, 4 * j4 + 3, bi));
#ifdef MM_EPILOGUE
                    if (act) v = epi_out4(v, ci + 4u * j4);
#endif
                    c4[(ci >> 2) + j4] = v;
                }
        } else {
            for (uint j = 0; j < TN; j++)
                if (row0 + i < M && col0 + j < N) {
                    float v = z_value(i, j, bi);
#ifdef MM_EPILOGUE
                    if (act) v = epi_out_z(v, ci + j);
#endif
                    c4[(ci + j) >> 2][(ci + j) & 3u] = v;
                }
        }
    }
}

// The product of batch entry bt: the TM x TN block at (row0, col0) (rowl, coll: clamped inside)
void product(uint bt, uint row0, uint col0, uint rowl, uint coll) {
    uint M = pc.mnk.x, N = pc.mnk.y, K = pc.mnk.z;
    uint b2 = bt % pc.bshape.z, r = bt / pc.bshape.z;
    uint b1 = r % pc.bshape.y, b0 = r / pc.bshape.y;
    int abase = pc.a_mat.z + int(b0) * pc.a_bst.x + int(b1) * pc.a_bst.y + int(b2) * pc.a_bst.z;
    int bbase = pc.b_mat.z + int(b0) * pc.b_bst.x + int(b1) * pc.b_bst.y + int(b2) * pc.b_bst.z;
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
    uint kfull = K & ~3u;
    for (uint k0 = 0; k0 < kfull; k0 += 4) {
        load_a(abase, rowl, k0);
        load_b(bbase, coll, k0);
        fma_chunk(4);
    }
    if (K_TAIL && kfull < K) {
        load_a(abase, rowl, kfull);
        load_b(bbase, coll, kfull);
        fma_chunk(K - kfull);
    }
    if (row0 < M && col0 < N) {
        uint cbase = pc.c_off.x + (b0 * pc.bshape.y + b1) * pc.c_off.z + b2 * pc.c_off.w;
#ifdef MM_EPILOGUE
        for (uint j = 0; j < TN; j++) bj[j] = epi_bias(min(col0 + j, N - 1u));
        if (EPI_Z) store_tile(cbase + uint(pc.epi.z), row0, col0, M, N, false); // z, then its activation
#endif
        store_tile(cbase, row0, col0, M, N, true);
    }
}

void main() {
    uint M = pc.mnk.x, N = pc.mnk.y;
    uint ly = SG == 1 ? gl_SubgroupID : gl_LocalInvocationID.y;
    uint lx = SG == 1 ? gl_SubgroupInvocationID : gl_LocalInvocationID.x;
    uint wy = SG == 1 ? gl_NumSubgroups : gl_WorkGroupSize.y;
    uint wx = SG == 1 ? 8u : gl_WorkGroupSize.x;
    uint row0 = (gl_WorkGroupID.y * wy + ly) * TM;
    uint col0 = (gl_WorkGroupID.x * wx + lx) * TN;
    // clamped, not returned: with SG every lane of the subgroup must reach the shuffles
    uint rowl = min(row0, ((M - 1u) / TM) * TM), coll = min(col0, ((N - 1u) / TN) * TN);
#ifdef MM_CONV
    cv_cols(coll);
#endif
    if (BATCH_GRID) {
        product(gl_WorkGroupID.z, row0, col0, rowl, coll);
    } else {
        for (uint bt = gl_WorkGroupID.z; bt < pc.mnk.w; bt += gl_NumWorkGroups.z) product(bt, row0, col0, rowl, coll);
    }
}
