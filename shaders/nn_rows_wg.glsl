// Shared by shaders/nn_rows.comp and nn_rows_backward.comp: the workgroup-per-row variant's
// reduction across the workgroup, a fixed tree in shared memory (so the result is the same on
// every run). The workgroup size must be a power of two, at most 256.
shared float s_red[256];

// Every invocation of the workgroup calls it (uniform control flow); all get the result.
float wg_reduce(float v, bool is_max) {
    uint t = gl_LocalInvocationID.x;
    s_red[t] = v;
    barrier();
    for (uint w = gl_WorkGroupSize.x / 2u; w > 0u; w >>= 1) {
        if (t < w) s_red[t] = is_max ? max_nan(s_red[t], s_red[t + w]) : s_red[t] + s_red[t + w];
        barrier();
    }
    float r = s_red[0];
    barrier();
    return r;
}
