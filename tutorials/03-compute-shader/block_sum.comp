#version 450
// Sums each block of 64 numbers with a tree in shared memory: the barrier() calls make every
// invocation of the workgroup wait until all have written their part.
layout(local_size_x = 64) in;

layout(std430, binding = 0) writeonly buffer S { float sums[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform Push { uint n; } p;

shared float part[64];

void main() {
    uint t = gl_LocalInvocationID.x, i = gl_GlobalInvocationID.x;
    part[t] = i < p.n ? x[i] : 0.0;
    barrier();
    for (uint half_ = 32u; half_ > 0u; half_ >>= 1) {
        if (t < half_) part[t] += part[t + half_];
        barrier();
    }
    if (t == 0u) sums[gl_WorkGroupID.x] = part[0];
}
