#version 450
#extension GL_GOOGLE_include_directive : require
// C = A @ B for GPUs: the workgroup (WX x WY invocations) stages a BM x BK tile of A and a
// BK x BN tile of B in shared memory, then each invocation accumulates TM x TN outputs in
// registers (rows ty + i*WY, cols tx + j*WX, so neighbouring invocations read neighbouring
// shared words). Operands are read through their strides (any layout, transposed views in
// place); out-of-range elements are staged as 0, so edges need no padding. On lavapipe the
// barriers and shared-memory traffic cost more than they save: see matmul_reg.comp.
// Push constants mirror vkg_matmul_push in lib/ops/matmul.c (same block as matmul.comp). The store
// applies the epilogue (bias, relu) in the module built with MM_EPILOGUE: matmul_epilogue.glsl.
#include "common.glsl"

layout(local_size_y_id = 6) in;
layout(constant_id = 1) const uint TM = 4;
layout(constant_id = 2) const uint TN = 4;
layout(constant_id = 3) const uint BK = 16;
const uint WX = gl_WorkGroupSize.x, WY = gl_WorkGroupSize.y;
const uint BM = TM * WY, BN = TN * WX;

layout(std430, binding = 0) writeonly buffer Cb { float c[]; };
layout(std430, binding = 1) readonly buffer Ab { float a[]; };
layout(std430, binding = 2) readonly buffer Bb { float b[]; };

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

shared float As[BK * BM];   // [kk][row]
shared float Bs[BK * BN];   // [kk][col]

void main() {
    uint M = pc.mnk.x, N = pc.mnk.y, K = pc.mnk.z;
    uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
    uint tid = ty * WX + tx, nt = WX * WY;
    uint rowb = gl_WorkGroupID.y * BM, colb = gl_WorkGroupID.x * BN;
    for (uint bt = gl_WorkGroupID.z; bt < pc.mnk.w; bt += gl_NumWorkGroups.z) {
        uint b2 = bt % pc.bshape.z, r = bt / pc.bshape.z;
        uint b1 = r % pc.bshape.y, b0 = r / pc.bshape.y;
        int abase = pc.a_mat.z + int(b0) * pc.a_bst.x + int(b1) * pc.a_bst.y + int(b2) * pc.a_bst.z;
        int bbase = pc.b_mat.z + int(b0) * pc.b_bst.x + int(b1) * pc.b_bst.y + int(b2) * pc.b_bst.z;
        float acc[TM][TN];
        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
        for (uint k0 = 0; k0 < K; k0 += BK) {
            for (uint e = tid; e < BM * BK; e += nt) {      // k fastest: rows of A are often K-contiguous
                uint row = e / BK, kk = e % BK, m = rowb + row, k = k0 + kk;
                As[kk * BM + row] = (m < M && k < K) ? a[abase + int(m) * pc.a_mat.x + int(k) * pc.a_mat.y] : 0.0;
            }
            for (uint e = tid; e < BK * BN; e += nt) {      // n fastest
                uint kk = e / BN, col = e % BN, n = colb + col, k = k0 + kk;
                Bs[kk * BN + col] = (n < N && k < K) ? b[bbase + int(k) * pc.b_mat.x + int(n) * pc.b_mat.y] : 0.0;
            }
            barrier();
            for (uint kk = 0; kk < BK; kk++) {
                float av[TM], bv[TN];
                for (uint i = 0; i < TM; i++) av[i] = As[kk * BM + ty + i * WY];
                for (uint j = 0; j < TN; j++) bv[j] = Bs[kk * BN + tx + j * WX];
                for (uint i = 0; i < TM; i++)
                    for (uint j = 0; j < TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
            }
            barrier();
        }
        uint cbase = pc.c_off.x + (b0 * pc.bshape.y + b1) * pc.c_off.z + b2 * pc.c_off.w;
#ifdef MM_EPILOGUE
        float bj[TN];   // the epilogue's bias, once per column
        for (uint j = 0; j < TN; j++) bj[j] = epi_bias(min(colb + tx + j * WX, N - 1u));
#endif
        for (uint i = 0; i < TM; i++) {
#ifdef MM_EPILOGUE
            float bi = epi_row_bias(min(rowb + ty + i * WY, M - 1u));
#endif
            for (uint j = 0; j < TN; j++) {
                uint m = rowb + ty + i * WY, n = colb + tx + j * WX;
#ifdef MM_EPILOGUE
                float b = epi_pick(bj[j], bi);
                if (m < M && n < N && EPI_Z) c[cbase + m * pc.c_off.y + n + uint(pc.epi.z)] = epi_z(acc[i][j], b);
                if (m < M && n < N) c[cbase + m * pc.c_off.y + n] = epi_out(acc[i][j], b, cbase + m * pc.c_off.y + n);
#else
                if (m < M && n < N) c[cbase + m * pc.c_off.y + n] = acc[i][j];
#endif
            }
        }
    }
}
