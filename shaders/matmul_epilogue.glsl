// The epilogue the matmul kernels apply as they store C: C = act(A @ B + bias), bias a vector
// over N (C's last dim) read through an offset and a stride, act none, relu or tanh-GELU, plus
// a residual read at binding 4 (EPI_RES); or C = (A @ B) gelu'(z) with z read at binding 4
// (EPI_GELU_GRAD, below). With
// GELU (EPI_Z) the pre-activation z = A @ B + bias, which GELU's backward needs, is stored too,
// pc.epi.z elements after each element of C (in the same binding: a second written binding would
// need a binding of its own in every _epi module). Each kernel's
// .comp is compiled twice (shaders/CMakeLists.txt): as itself, with no trace of this, and with
// MM_EPILOGUE defined as <name>_epi, which includes this after the Push block (it reads
// pc.epi) and binds the bias at binding 3. The plain modules keep 3 bindings because the
// validation layer counts binding 3 as used whatever EPI is, and a 4-binding layout for every
// plain matmul made GPU-assisted validation's instrumented reg kernels take minutes to compile
// in lavapipe's LLVM (ctest ops_sync_validation: 17 s to a timeout).
layout(constant_id = 7) const uint EPI = 0;   // bit 0: add bias[n]; bits 1-2: 0 none, 1 relu,
                                              // 2 gelu, 3 gelu's derivative at z (no bias);
                                              // bit 3: the bias is over rows instead, bias[m]
const bool EPI_BIAS = (EPI & 1u) != 0u;
const bool EPI_RELU = ((EPI >> 1) & 3u) == 1u;
const bool EPI_GELU = ((EPI >> 1) & 3u) == 2u;
const bool EPI_Z = EPI_GELU;                  // z stored at pc.epi.z past C
// GELU's backward in the product that makes its upstream gradient (lib/autograd: the product
// dL/dh = g W of a layer whose input h = gelu(z) has no other consumer): C = (A @ B) gelu'(z),
// the same float operations as vkg_gelu's backward over the stored product, so the same bits,
// without writing the product and reading it back. z has C's shape and layout (contiguous, as
// C is then), its element for C's element ci at pc.epi.z + ci - pc.c_off.x; binding 4, a
// texel buffer in the texel modules (pc.epi.z then counts from its block's start, a multiple of
// 4), bound to A where there is no z.
const bool EPI_GELU_GRAD = ((EPI >> 1) & 3u) == 3u;
// A bias over C's rows (M): conv2d's y (K, OH OW) = w @ cols has one bias per output channel,
// a row of the product. The kernels read it once per row (epi_row_bias) beside the column
// bias they read once per column, and epi_pick takes the one EPI selects (a constant: the
// other read is compiled out).
const bool EPI_ROWS = (EPI & 8u) != 0u;
// bit 4: a residual r (C's shape and layout, read at binding 4 like GELU_GRAD's z) added last:
// C = r + act(A @ B + bias), the same add as vkg_add(r, product) (the transformer's residual
// branches end so: the stream is not written, read and written again)
const bool EPI_RES = (EPI & 16u) != 0u;

layout(std430, binding = 3) readonly buffer Biasb { float bias[]; };
// binding 4's element for C's element ci (its index in binding 0), and the four from there
// (ci a multiple of 4: vec4 stores)
#ifdef MM_TEXEL
layout(binding = 4) uniform samplerBuffer zin_tex;
float epi_zin(uint ci) {
    uint i = uint(pc.epi.z) + ci - pc.c_off.x;
    return texelFetch(zin_tex, int(i >> 2))[i & 3u];
}
vec4 epi_zin4(uint ci) { return texelFetch(zin_tex, int((uint(pc.epi.z) + ci - pc.c_off.x) >> 2)); }
#else
layout(std430, binding = 4) readonly buffer Zinb { float zin[]; };
float epi_zin(uint ci) { return zin[uint(pc.epi.z) + ci - pc.c_off.x]; }
vec4 epi_zin4(uint ci) {
    uint i = uint(pc.epi.z) + ci - pc.c_off.x;
    return vec4(zin[i], zin[i + 1u], zin[i + 2u], zin[i + 3u]);
}
#endif

// bias[n] (n already clamped inside [0, N)), or 0 without a bias
float epi_bias(uint n) {
    if (EPI_BIAS && !EPI_ROWS) return bias[pc.epi.x + int(n) * pc.epi.y];
    return 0.0;
}

// bias[m] (m already clamped inside [0, M)) when the bias is over rows, else 0
float epi_row_bias(uint m) {
    if (EPI_BIAS && EPI_ROWS) return bias[pc.epi.x + int(m) * pc.epi.y];
    return 0.0;
}

// the bias of an element: its row's or its column's, as EPI says
float epi_pick(float col_bias, float row_bias) { return EPI_ROWS ? row_bias : col_bias; }

// z = acc + b (b from epi_pick): what the activation takes
float epi_z(float v, float b) {
    if (EPI_BIAS) v += b;
    return v;
}

// the activation of z: vkg_relu's max(v, 0.0), gelu_tanh (common.glsl, vkg_gelu's)
float epi_act(float v) {
    if (EPI_RELU) v = max(v, 0.0);
    if (EPI_GELU) v = gelu_tanh(v);
    return v;
}

// C's element ci (its index in binding 0) from z = acc + bias: the activation of z (plus the
// residual), or z gelu'(binding 4's z)
float epi_out_z(float z, uint ci) {
    if (EPI_GELU_GRAD) return z * gelu_tanh_grad(epi_zin(ci));
    if (EPI_RES) return epi_zin(ci) + epi_act(z);
    return epi_act(z);
}

// the same from the accumulator v and the bias b
float epi_out(float v, float b, uint ci) { return epi_out_z(epi_z(v, b), ci); }

// epi_out_z of four consecutive elements from ci (a multiple of 4: vec4 stores), binding 4
// read as one vec4
vec4 epi_out4(vec4 v, uint ci) {
    if (EPI_GELU_GRAD) {
        vec4 z = epi_zin4(ci);
        return vec4(v.x * gelu_tanh_grad(z.x), v.y * gelu_tanh_grad(z.y), v.z * gelu_tanh_grad(z.z),
                    v.w * gelu_tanh_grad(z.w));
    }
    vec4 y = vec4(epi_act(v.x), epi_act(v.y), epi_act(v.z), epi_act(v.w));
    if (EPI_RES) y = epi_zin4(ci) + y;
    return y;
}
