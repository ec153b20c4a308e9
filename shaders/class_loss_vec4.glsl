// Shared by shaders/class_loss.comp and class_loss_backward.comp (their VEC4 paths): the max of
// the row of pc.C classes starting at vec4 b4 of X4 and the sum of exp(x - max), as (max, sum).
// NaN wins the max, like the scalar loops.
vec2 max_sumexp4(uint b4) {
    uint n = pc.C / 4u;
    vec4 m4 = vec4(-INF);
    for (uint c = 0u; c < n; c++) m4 = max_nan(x4[b4 + c], m4);
    float m = max_nan4(m4);
    vec4 s4 = vec4(0.0);
    for (uint c = 0u; c < n; c++) s4 += exp(x4[b4 + c] - m);
    return vec2(m, sum4(s4));
}
