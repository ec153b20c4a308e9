#version 450
// Device-memory copy bandwidth with the reads through a uniform texel buffer (vkgrad-bench's
// "peak/copy ... texel read"): dst = src, one RGBA32F texel (16 bytes) per load and one vec4 per
// store, one per invocation, as shaders/bench_copy.comp. Next to that case it shows what a
// device's texel path is worth against its storage-buffer loads (on lavapipe the two differ by
// up to 5x depending on the CPU: bench/README.md).
layout(local_size_x_id = 0) in;                  // workgroup size: specialization constant 0
layout(push_constant) uniform Push {             // mirrors struct copy_push in bench/measure.c
    uint n;                                      // number of vec4s
    uint src_off;                                // src's first texel in its block's view
} pc;
layout(std430, binding = 0) writeonly buffer Dst { vec4 dst[]; };
layout(binding = 1) uniform samplerBuffer src;  // RGBA32F view of src's whole block

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) dst[i] = texelFetch(src, int(pc.src_off + i));
}
