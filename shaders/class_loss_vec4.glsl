// Shared by shaders/class_loss.comp and class_loss_backward.comp (their VEC4 paths): the max of
// the row of pc.C classes starting at vec4 b4 of X4 and the sum of exp(x - max), as (max, sum).
// NaN wins the max, like the scalar loops.
vec2 max_sumexp4(uint b4) {
    uint n = pc.C / 4u;
    vec4 m4 = vec4(-INF);
    for (uint c = 0u; c < n; c++) {
        vec4 v = x4[b4 + c];
        m4 = mix(m4, v, bvec4(uvec4(greaterThan(v, m4)) | uvec4(isnan(v))));
    }
    float m = m4.x;
    for (int k = 1; k < 4; k++)
        if (m4[k] > m || isnan(m4[k])) m = m4[k];
    vec4 s4 = vec4(0.0);
    for (uint c = 0u; c < n; c++) s4 += exp(x4[b4 + c] - m);
    return vec2(m, (s4.x + s4.y) + (s4.z + s4.w));
}
