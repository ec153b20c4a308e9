// Philox4x32-10 (Salmon et al., SC'11; the Random123 definition): a 128-bit counter and a 64-bit
// key to four 32-bit words. The C reference is vkg_ref_philox4x32_10 in
// lib/ops/random_reference.c (change both); the stream built on it is documented in
// lib/include/vkgrad/random.h.
const uint PHILOX_M0 = 0xD2511F53u;
const uint PHILOX_M1 = 0xCD9E8D57u;
const uint PHILOX_W0 = 0x9E3779B9u;  // golden ratio
const uint PHILOX_W1 = 0xBB67AE85u;  // sqrt(3) - 1

uvec4 philox4x32_10(uvec4 ctr, uvec2 key) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) key += uvec2(PHILOX_W0, PHILOX_W1);  // bumped between rounds, not before the first
        uint hi0, lo0, hi1, lo1;
        umulExtended(PHILOX_M0, ctr.x, hi0, lo0);       // 32x32 -> 64
        umulExtended(PHILOX_M1, ctr.z, hi1, lo1);
        ctr = uvec4(hi1 ^ ctr.y ^ key.x, lo1, hi0 ^ ctr.w ^ key.y, lo0);
    }
    return ctr;
}

// counter + b, the add carrying from word 0 into word 1 (words 2 and 3 stay).
uvec4 philox_counter_add(uvec4 ctr, uint b) {
    uint carry;
    uint lo = uaddCarry(ctr.x, b, carry);
    return uvec4(lo, ctr.y + carry, ctr.z, ctr.w);
}
