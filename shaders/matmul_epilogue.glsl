// The epilogue the matmul kernels apply as they store C: C = act(A @ B + bias), bias a vector
// over N (C's last dim) read through an offset and a stride, act none, relu or tanh-GELU. With
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
                                              // 2 gelu; bit 3: the bias is over rows instead, bias[m]
const bool EPI_BIAS = (EPI & 1u) != 0u;
const bool EPI_RELU = ((EPI >> 1) & 3u) == 1u;
const bool EPI_GELU = ((EPI >> 1) & 3u) == 2u;
const bool EPI_Z = EPI_GELU;                  // z stored at pc.epi.z past C
// A bias over C's rows (M): conv2d's y (K, OH OW) = w @ cols has one bias per output channel,
// a row of the product. The kernels read it once per row (epi_row_bias) beside the column
// bias they read once per column, and epi_pick takes the one EPI selects (a constant: the
// other read is compiled out).
const bool EPI_ROWS = (EPI & 8u) != 0u;

layout(std430, binding = 3) readonly buffer Biasb { float bias[]; };

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

// v = acc + b, then the activation
float epi_apply(float v, float b) { return epi_act(epi_z(v, b)); }
