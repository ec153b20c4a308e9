// The epilogue every matmul kernel applies as it stores C: C = act(A @ B + bias), bias a
// vector over N (C's last dim) read through an offset and a stride, act none or relu.
// Include after the Push block (it reads pc.epi). EPI = 0, the plain matmul's value, makes
// every branch below dead after specialization: the plain kernels store acc as before (no
// "+ 0.0", which would turn -0 into +0) and never read binding 3 (lib/ops/matmul.c binds A
// there, since the validation layer counts it as used whatever the constant).
layout(constant_id = 7) const uint EPI = 0;   // bit 0: add bias[n]; bits 1-2: 0 none, 1 relu
const bool EPI_BIAS = (EPI & 1u) != 0u;
const bool EPI_RELU = ((EPI >> 1) & 3u) == 1u;

layout(std430, binding = 3) readonly buffer Biasb { float bias[]; };

// bias[n] (n already clamped inside [0, N)), or 0 without a bias
float epi_bias(uint n) {
    if (EPI_BIAS) return bias[pc.epi.x + int(n) * pc.epi.y];
    return 0.0;
}

// v = acc + b (b from epi_bias), then the activation; vkg_relu's max(v, 0.0)
float epi_apply(float v, float b) {
    if (EPI_BIAS) v += b;
    if (EPI_RELU) v = max(v, 0.0);
    return v;
}
