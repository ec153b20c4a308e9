/* f32 <-> its IEEE-754 bits, for the C references and their tests (memcpy: no aliasing). */
#ifndef VKG_OPS_BITS_H
#define VKG_OPS_BITS_H
#include <stdint.h>
#include <string.h>

static inline uint32_t vkg_f32_to_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float vkg_bits_to_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
#endif
