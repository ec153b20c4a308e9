// Shared by every vkgrad shader: the workgroup size is specialization constant 0 (set by the
// runtime per pipeline), and every loop over elements is grid-stride, because the runtime caps
// the number of workgroups at the device's limit.
layout(local_size_x_id = 0) in;

#define GRID_STRIDE (gl_NumWorkGroups.x * gl_WorkGroupSize.x)

// tanh without overflow for large |x| (exp(2x)/exp(2x) would be inf/inf = NaN)
float safe_tanh(float x) {
    float e = exp(-2.0 * abs(x));
    float t = (1.0 - e) / (1.0 + e);
    return x < 0.0 ? -t : t;
}

float safe_sigmoid(float x) {
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    float e = exp(x);
    return e / (1.0 + e);
}

// GELU, tanh form (vkg_gelu in shaders/unary.comp, and the matmul epilogue's, which must give
// the same bits)
float gelu_tanh(float v) {
    float u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
    return 0.5 * v * (1.0 + safe_tanh(u));
}

// GELU's derivative, tanh form (vkg_gelu's backward in shaders/unary_backward.comp, and the
// matmul epilogue's that multiplies a product by it, which must give the same bits):
// y = x/2 (1 + tanh u), u = c (x + k x^3): y' = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3k x^2)
float gelu_tanh_grad(float v) {
    const float c = 0.7978845608028654, k = 0.044715;
    float x2 = v * v;
    float t = safe_tanh(c * (v + k * x2 * v));
    float left = (t + 1.0) * 0.5;
    float right = (v * 0.5) * ((1.0 - t * t) * ((x2 * (3.0 * k) + 1.0) * c));
    return left + right;
}

// The vec4 row paths' reductions (shaders/layer_norm.comp says why rows go as vec4): the four
// partial sums added in a fixed order, and maxima in which NaN wins, like the scalar loops'.
float sum4(vec4 v) { return (v.x + v.y) + (v.z + v.w); }
float max_nan(float a, float b) { return (isnan(a) || a > b) ? a : b; }
vec4 max_nan(vec4 a, vec4 b) { return mix(b, a, bvec4(uvec4(isnan(a)) | uvec4(greaterThan(a, b)))); }
float max_nan4(vec4 m) { return max_nan(max_nan(max_nan(m.x, m.y), m.z), m.w); }

// The same, four at a time (the same operations per component, so the same values)
vec4 safe_tanh(vec4 x) {
    vec4 e = exp(-2.0 * abs(x));
    vec4 t = (1.0 - e) / (1.0 + e);
    return mix(t, -t, lessThan(x, vec4(0.0)));
}

vec4 safe_sigmoid(vec4 x) {
    vec4 e = exp(-abs(x));
    return mix(e / (1.0 + e), 1.0 / (1.0 + e), greaterThanEqual(x, vec4(0.0)));
}
