#version 450
#extension GL_GOOGLE_include_directive : require
// The loader's batch gather (datasets/loader.c, "loader_gather" in the profiler): row r of the
// batch is item order[first + r] of the dataset (or item r of an uploaded batch, when
// streaming), x[r, c] = convert(data[item * size + c]) and y[r] = labels[item].
// u8 data is bound as uint[] (four bytes per word, the first byte in the low bits: Vulkan
// buffers hold the host's little-endian bytes) and each byte is extracted with a shift and a
// mask, so no 8-bit storage feature is needed; the byte indexes a 256-entry table the host
// computed (exact x/255, optional normalisation), so the values are the host's, bit for bit.
// Compiled a second time with LG_TEX (loader_gather_tex): the table read through an R32F texel
// view, four reads a word, on devices that fetch texels faster than they load storage buffers
// (lavapipe). The data stay a storage buffer: their words are not floats.
// Push constants mirror vkg_loader_push in datasets/loader.c: change both.
#include "common.glsl"

layout(constant_id = 1) const uint MODE = 0;   // 0: u8 bytes through the table; 1: 32-bit words copied
// MODE 0 with items of a multiple of 4 bytes (Fashion-MNIST's 784): an invocation converts a
// whole word, four pixels, and stores them as one uvec4 (one division and one data load per 4
// pixels; lavapipe moves a lane's vector for about the cost of a word). Set by the host.
layout(constant_id = 2) const bool WORDS = false;

layout(std430, binding = 0) writeonly buffer X { uint x[]; };     // (rows, size) f32 bits
layout(std430, binding = 1) writeonly buffer Y { int y[]; };      // (rows,)
layout(std430, binding = 2) readonly buffer D { uint data[]; };   // the dataset or the uploaded batch
layout(std430, binding = 3) readonly buffer L { int labels[]; };  // (count,)
layout(std430, binding = 4) readonly buffer O { uint order[]; };  // the epoch's order (count,)
#ifdef LG_TEX
layout(binding = 5) uniform samplerBuffer table_view;             // (256,), from pc.table_tex
#define TABLE(b) texelFetch(table_view, int(pc.table_tex + (b))).x
#else
layout(std430, binding = 5) readonly buffer T { float table[]; }; // (256,)
#define TABLE(b) table[b]
#endif
layout(std430, binding = 0) writeonly buffer X4 { uvec4 x4[]; };  // X as vec4s, for WORDS

layout(push_constant) uniform Push {
    uint rows, size, first, flags;     // flags: 1 rows in order (streaming), 2 gather labels
    uint table_tex;                    // LG_TEX: the table's first float in its view
} pc;

uint item_of(uint r) { return (pc.flags & 1u) != 0u ? r : order[pc.first + r]; }

uint pixel(uint word, uint k) { return floatBitsToUint(TABLE((word >> (8u * k)) & 0xFFu)); }

void main() {
    uint n = pc.rows * pc.size, sw = pc.size / 4u;
    for (uint w = gl_GlobalInvocationID.x; WORDS && w < n / 4u; w += GRID_STRIDE) {
        uint r = w / sw, word = data[item_of(r) * sw + (w - r * sw)];
        x4[w] = uvec4(pixel(word, 0u), pixel(word, 1u), pixel(word, 2u), pixel(word, 3u));
    }
    for (uint i = gl_GlobalInvocationID.x; !WORDS && i < n; i += GRID_STRIDE) {
        uint r = i / pc.size;
        uint src = item_of(r) * pc.size + (i - r * pc.size);
        if (MODE == 0u) {
            uint b = (data[src >> 2] >> ((src & 3u) * 8u)) & 0xFFu;
            x[i] = floatBitsToUint(TABLE(b));
        } else {
            x[i] = data[src];
        }
    }
    if ((pc.flags & 2u) != 0u)
        for (uint r = gl_GlobalInvocationID.x; r < pc.rows; r += GRID_STRIDE) y[r] = labels[item_of(r)];
}
