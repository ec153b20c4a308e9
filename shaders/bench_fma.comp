#version 450
// f32 FMA peak (vkgrad-bench micro suite): vec4 x 8 independent chains; see bench_fma.glsl.
#extension GL_GOOGLE_include_directive : require
#define T vec4
#include "bench_fma.glsl"
