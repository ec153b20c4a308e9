#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// C (f32) = A (f16) @ B (f16) on the device's matrix units (tensor cores): cooperative matrices
// of 16 x 16 f16 multiplied into 16 x 16 f32 accumulators, the products exact and the sums in
// f32. Debian 12's glslang knows GL_NV_cooperative_matrix, not yet the KHR form, so this runs
// where the device offers VK_NV_cooperative_matrix with that shape (lib/runtime/context.c).
// A workgroup of 4 subgroups of 32 computes a BM x BN block of C: for each BK slice of K the
// 128 invocations stage A's and B's tiles in shared memory with 16-byte loads (a tile loaded
// straight from memory by each subgroup, the first version, ran at a twentieth of the matrix
// units' rate: bench/README.md), then each subgroup multiplies its 32 x 64 quarter out of shared
// memory. A is row-major; B row-major or column-major (B_COL: a weight (N, K) used as W^T, in
// place). M, N and K are multiples of 16, offsets and strides multiples of 8 halves (16 bytes),
// which lib/ops/matmul.c checks; rows and columns past M and N are loaded clamped and never
// stored, and the K tail of a BK slice is staged as zeros.
// Push constants mirror vkg_matmul_push in lib/ops/matmul.c (the block of matmul.comp).
#include "common.glsl"

layout(constant_id = 4) const uint B_COL = 0;
const uint BM = 64, BN = 128, BK = 32;   // the workgroup's block and K slice
const uint WM = 2, WN = 4;               // 16 x 16 tiles of a subgroup's quarter (32 x 64)
// shared row strides in halves: multiples of 8 (16-byte rows for the matrix loads), skewed by
// 8 so that neighbouring rows start in other banks
const uint SA = BK + 8, SB_ROW = BN + 8, SB_COL = BK + 8;

layout(std430, binding = 0) writeonly buffer Cb { float c[]; };
layout(std430, binding = 1) readonly buffer Ab { uvec4 a8[]; };   // 8 halves a load
layout(std430, binding = 2) readonly buffer Bb { uvec4 b8[]; };

layout(push_constant) uniform Push {
    uvec4 mnk;      // M, N, K, batch count
    uvec4 bshape;   // batch dims (up to 3, outermost first; unused 1)
    ivec4 a_bst;    // A batch strides
    ivec4 b_bst;    // B batch strides
    ivec4 a_mat;    // A row stride, col stride, offset
    ivec4 b_mat;    // B row stride, col stride, offset
    uvec4 c_off;    // C offset, row stride, batch strides (slots 0-1 together, slot 2)
} pc;

shared float16_t sa[BM * SA];
shared float16_t sb[BN * SB_COL > BK * SB_ROW ? BN * SB_COL : BK * SB_ROW];

void unpack8(uvec4 v, out f16vec2 h[4]) {
    for (uint e = 0; e < 4; e++) h[e] = unpackFloat2x16(v[e]);
}

// A's and B's tiles of the K slice at k0 into shared memory, zeros past K
void stage(int abase, int bbase, uint row0, uint col0, uint k0) {
    uint M = pc.mnk.x, N = pc.mnk.y, K = pc.mnk.z, t = gl_LocalInvocationID.x;
    f16vec2 h[4];
    for (uint q = t; q < BM * BK / 8; q += gl_WorkGroupSize.x) { // A (m, k): 8 halves of a row
        uint r = q / (BK / 8), k = k0 + 8u * (q % (BK / 8)), m = min(row0 + r, M - 1u);
        uvec4 v = k < K ? a8[(abase + int(m) * pc.a_mat.x + int(k)) >> 3] : uvec4(0);
        unpack8(v, h);
        for (uint e = 0; e < 8; e++) sa[r * SA + k - k0 + e] = h[e >> 1][e & 1u];
    }
    if (B_COL == 0u) {
        for (uint q = t; q < BK * BN / 8; q += gl_WorkGroupSize.x) { // B (k, n): 8 halves of a row
            uint r = q / (BN / 8), n = min(col0 + 8u * (q % (BN / 8)), N - 8u), k = k0 + r;
            uvec4 v = k < K ? b8[(bbase + int(k) * pc.b_mat.x + int(n)) >> 3] : uvec4(0);
            unpack8(v, h);
            for (uint e = 0; e < 8; e++) sb[r * SB_ROW + 8u * (q % (BN / 8)) + e] = h[e >> 1][e & 1u];
        }
    } else {
        for (uint q = t; q < BN * BK / 8; q += gl_WorkGroupSize.x) { // B^T (n, k): 8 halves of a column
            uint r = q / (BK / 8), k = k0 + 8u * (q % (BK / 8)), n = min(col0 + r, N - 1u);
            uvec4 v = k < K ? b8[(bbase + int(n) * pc.b_mat.y + int(k)) >> 3] : uvec4(0);
            unpack8(v, h);
            for (uint e = 0; e < 8; e++) sb[r * SB_COL + k - k0 + e] = h[e >> 1][e & 1u];
        }
    }
}

void main() {
    uint M = pc.mnk.x, N = pc.mnk.y, K = pc.mnk.z;
    uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
    uint sy = gl_SubgroupID / 2u, sx = gl_SubgroupID % 2u; // this subgroup's quarter
    uint qr = sy * 16u * WM, qc = sx * 16u * WN;
    for (uint bt = gl_WorkGroupID.z; bt < pc.mnk.w; bt += gl_NumWorkGroups.z) {
        uint b2 = bt % pc.bshape.z, r = bt / pc.bshape.z;
        uint b1 = r % pc.bshape.y, b0 = r / pc.bshape.y;
        int abase = pc.a_mat.z + int(b0) * pc.a_bst.x + int(b1) * pc.a_bst.y + int(b2) * pc.a_bst.z;
        int bbase = pc.b_mat.z + int(b0) * pc.b_bst.x + int(b1) * pc.b_bst.y + int(b2) * pc.b_bst.z;
        uint cbase = pc.c_off.x + (b0 * pc.bshape.y + b1) * pc.c_off.z + b2 * pc.c_off.w;
        fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[WM][WN];
        for (uint i = 0; i < WM; i++)
            for (uint j = 0; j < WN; j++) acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
        for (uint k0 = 0; k0 < K; k0 += BK) {
            barrier(); // the last slice's tiles are read
            stage(abase, bbase, row0, col0, k0);
            barrier();
            for (uint kk = 0; kk < BK; kk += 16u) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> ta[WM], tb[WN];
                for (uint i = 0; i < WM; i++) coopMatLoadNV(ta[i], sa, (qr + 16u * i) * SA + kk, SA, false);
                for (uint j = 0; j < WN; j++) {
                    if (B_COL == 0u) coopMatLoadNV(tb[j], sb, kk * SB_ROW + qc + 16u * j, SB_ROW, false);
                    else coopMatLoadNV(tb[j], sb, (qc + 16u * j) * SB_COL + kk, SB_COL, true);
                }
                for (uint i = 0; i < WM; i++)
                    for (uint j = 0; j < WN; j++) acc[i][j] = coopMatMulAddNV(ta[i], tb[j], acc[i][j]);
            }
        }
        for (uint i = 0; i < WM; i++)
            for (uint j = 0; j < WN; j++) {
                uint m = row0 + qr + 16u * i, n = col0 + qc + 16u * j;
                if (m < M && n < N) coopMatStoreNV(acc[i][j], c, cbase + m * pc.c_off.y + n, pc.c_off.y, false);
            }
    }
}
