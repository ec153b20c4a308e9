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
