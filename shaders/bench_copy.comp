#version 450
// Device-memory copy bandwidth (vkgrad-bench micro suite): dst = src with one vec4 (16 bytes)
// per load and store, grid-stride, like bench/rawvk/copy.comp; bytes read + written are counted.
layout(local_size_x_id = 0) in;                  // workgroup size: specialization constant 0
layout(push_constant) uniform Push {             // mirrors struct copy_push in bench/cases.c
    uint n;                                      // number of vec4s
} pc;
layout(std430, binding = 0) writeonly buffer Dst { vec4 dst[]; };
layout(std430, binding = 1) readonly  buffer Src { vec4 src[]; };

void main() {
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) dst[i] = src[i];
}
