#version 450
#extension GL_GOOGLE_include_directive : require
// C = A @ B, batched with broadcast batch dims, A and B read through strides (so transposed
// views need no copy). Each invocation computes a TM x TN block in registers; the workgroup
// is 16 x 16 invocations. Push constants mirror vkg_matmul_push in lib/ops/matmul.c. The store
// applies the epilogue (bias, relu) in the module built with MM_EPILOGUE: matmul_epilogue.glsl.
#include "common.glsl"

layout(local_size_y = 16) in;
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

const uint TM = 4;
const uint TN = 4;

void main() {
    uint M = pc.mnk.x, N = pc.mnk.y, K = pc.mnk.z;
    uint row0 = (gl_WorkGroupID.y * 16u + gl_LocalInvocationID.y) * TM;
    uint col0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TN;
    for (uint bt = gl_WorkGroupID.z; bt < pc.mnk.w; bt += gl_NumWorkGroups.z) {
        uint b2 = bt % pc.bshape.z, r = bt / pc.bshape.z;
        uint b1 = r % pc.bshape.y, b0 = r / pc.bshape.y;
        int abase = pc.a_mat.z + int(b0) * pc.a_bst.x + int(b1) * pc.a_bst.y + int(b2) * pc.a_bst.z;
        int bbase = pc.b_mat.z + int(b0) * pc.b_bst.x + int(b1) * pc.b_bst.y + int(b2) * pc.b_bst.z;
        float acc[TM][TN];
        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;
        if (row0 < M && col0 < N) {
            for (uint k = 0; k < K; k++) {
                float av[TM], bv[TN];
                for (uint i = 0; i < TM; i++) {
                    uint m = min(row0 + i, M - 1u);   // clamp: edge lanes compute, never store
                    av[i] = a[abase + int(m) * pc.a_mat.x + int(k) * pc.a_mat.y];
                }
                for (uint j = 0; j < TN; j++) {
                    uint n = min(col0 + j, N - 1u);
                    bv[j] = b[bbase + int(k) * pc.b_mat.x + int(n) * pc.b_mat.y];
                }
                for (uint i = 0; i < TM; i++)
                    for (uint j = 0; j < TN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
            }
            uint cbase = pc.c_off.x + (b0 * pc.bshape.y + b1) * pc.c_off.z + b2 * pc.c_off.w;
#ifdef MM_EPILOGUE
            float bj[TN];   // the epilogue's bias, once per column
            for (uint j = 0; j < TN; j++) bj[j] = epi_bias(min(col0 + j, N - 1u));
            for (uint i = 0; i < TM; i++) {
                float bi = epi_row_bias(min(row0 + i, M - 1u));
                for (uint j = 0; j < TN; j++)
                    if (row0 + i < M && col0 + j < N) {
                        uint ci = cbase + (row0 + i) * pc.c_off.y + col0 + j;
                        float b = epi_pick(bj[j], bi);
                        if (EPI_Z) c[ci + uint(pc.epi.z)] = epi_z(acc[i][j], b);
                        c[ci] = epi_out(acc[i][j], b, ci);
                    }
            }
#else
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++)
                    if (row0 + i < M && col0 + j < N) c[cbase + (row0 + i) * pc.c_off.y + col0 + j] = acc[i][j];
#endif
        }
    }
}
