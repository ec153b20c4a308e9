#version 450
// f16 FMA peak (vkgrad-bench micro suite): f16vec4 x 8 chains; needs shaderFloat16.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define T f16vec4
#include "bench_fma.glsl"
