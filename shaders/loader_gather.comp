#version 450
#extension GL_GOOGLE_include_directive : require
// The loader's batch gather (datasets/loader.c, "loader_gather" in the profiler): row r of the
// batch is item order[first + r] of the dataset (or item r of an uploaded batch, when
// streaming), x[r, c] = convert(data[item * size + c]) and y[r] = labels[item].
// u8 data is bound as uint[] (four bytes per word, the first byte in the low bits: Vulkan
// buffers hold the host's little-endian bytes) and each byte is extracted with a shift and a
// mask, so no 8-bit storage feature is needed; the byte indexes a 256-entry table the host
// computed (exact x/255, optional normalisation), so the values are the host's, bit for bit.
// Push constants mirror vkg_loader_push in datasets/loader.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint MODE = 0;   // 0: u8 bytes through the table; 1: 32-bit words copied

layout(std430, binding = 0) writeonly buffer X { uint x[]; };     // (rows, size) f32 bits
layout(std430, binding = 1) writeonly buffer Y { int y[]; };      // (rows,)
layout(std430, binding = 2) readonly buffer D { uint data[]; };   // the dataset or the uploaded batch
layout(std430, binding = 3) readonly buffer L { int labels[]; };  // (count,)
layout(std430, binding = 4) readonly buffer O { uint order[]; };  // the epoch's order (count,)
layout(std430, binding = 5) readonly buffer T { float table[]; }; // (256,)

layout(push_constant) uniform Push {
    uint rows, size, first, flags;     // flags: 1 rows in order (streaming), 2 gather labels
} pc;

uint item_of(uint r) { return (pc.flags & 1u) != 0u ? r : order[pc.first + r]; }

void main() {
    uint n = pc.rows * pc.size;
    for (uint i = gl_GlobalInvocationID.x; i < n; i += GRID_STRIDE) {
        uint r = i / pc.size;
        uint src = item_of(r) * pc.size + (i - r * pc.size);
        if (MODE == 0u) {
            uint b = (data[src >> 2] >> ((src & 3u) * 8u)) & 0xFFu;
            x[i] = floatBitsToUint(table[b]);
        } else {
            x[i] = data[src];
        }
    }
    if ((pc.flags & 2u) != 0u)
        for (uint r = gl_GlobalInvocationID.x; r < pc.rows; r += GRID_STRIDE) y[r] = labels[item_of(r)];
}
