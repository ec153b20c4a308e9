#version 450
// y = a * x + y, one element per invocation: the shader tutorial 03 dispatches.

// The workgroup size is specialization constant 0: the program picks it when it dispatches.
layout(local_size_x_id = 0) in;

// Binding i is the i-th tensor the program passes (std430: plain arrays of floats).
layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };

// Push constants: a few bytes of parameters sent with the dispatch (mirrors saxpy_push in main.c).
layout(push_constant) uniform Push {
    uint n;
    float a;
} p;

void main() {
    uint i = gl_GlobalInvocationID.x;   // = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x
    if (i < p.n)                        // the last workgroup may run past the end
        y[i] = p.a * x[i] + y[i];
}
