/* vkgrad random numbers: counter-based Philox4x32-10, so (seed, offset) gives the same bits on
 * every device and in the C reference below (DESIGN.md, "Randomness and determinism").
 *
 *   vkg_tensor *w = vkg_randn(VKG_SHAPE(784, 512), &(vkg_rand_desc){ .seed = 42, .std = 0.05f });
 *   vkg_rand_desc d = { .seed = 7 };
 *   vkg_tensor *mask = vkg_bernoulli(VKG_SHAPE(128, 512), 0.9f, &d);   // dropout keep-mask
 *   d.offset += 128 * 512;                                            // the next call continues
 *
 * The stream. Philox4x32-10 (Salmon et al., SC'11; the Random123 definition, its known-answer
 * vectors hold) maps a 128-bit counter and a 64-bit key to four 32-bit words. Element i of a
 * call (row-major, i = 0 .. numel-1) is value number j = offset + i of the stream of `seed`:
 *
 *   key     = { (uint32_t)seed, (uint32_t)(seed >> 32) }
 *   block   = j / 4  (64 bits)          counter = { (uint32_t)block, (uint32_t)(block >> 32), 0, 0 }
 *   x[0..3] = Philox4x32-10(counter, key)          lane = j % 4
 *
 * So `offset` counts values, not blocks: a call with offset k returns exactly the tail of a call
 * with offset 0 from its element k on, for every op below and every k (randn included: it pairs
 * lanes 0-1 and 2-3 of one block, never values of two blocks). Advance offset by the numel of a
 * call to get fresh numbers from the same seed. How each op turns words into a value, with
 * u24(w) = (w >> 8) * 2^-24 (exact in f32):
 *
 *   rand       x[lane] -> u24(x[lane])                                 f32 in [0, 1)
 *   bernoulli  u24(x[lane]) < p ? 1.0f : 0.0f                          f32
 *   randint    low + (int32_t)(((uint64_t)x[lane] * (high - low)) >> 32)   i32 in [low, high)
 *              (multiply-high: bias at most (high - low) / 2^32 per value)
 *   randn      pair p = lane / 2 of the block: a = x[2p], b = x[2p+1],
 *              u1 = ((a >> 8) + 1) * 2^-24 in (0, 1],  u2 = u24(b),
 *              r = sqrt(-2 log u1), z = lane even ? r cos(2 pi u2) : r sin(2 pi u2),
 *              value = mean + std * z
 *
 * randn's log, cos and sin are not libm's or GLSL's built-ins but short polynomials (Cephes
 * logf / sinf / cosf coefficients, written out in lib/ops/random_reference.c and
 * shaders/random.comp) evaluated with the same f32 adds and multiplies, unfused, on both sides:
 * on a device whose f32 add, multiply and sqrt are correctly rounded (lavapipe is) randn is
 * bitwise equal to the reference; elsewhere it agrees to 1e-5 relative (an NVIDIA H100, driver
 * 580, was 16 ulps off on a value near 0, within 1e-6 absolute). rand, randint and bernoulli
 * are integer work and exact f32 scaling: bitwise equal everywhere. */
#ifndef VKGRAD_RANDOM_H
#define VKGRAD_RANDOM_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

/* Zero means default: seed 0, offset 0, mean 0, std 0 -> 1 (so randn's std cannot be 0;
 * use vkg_full for a constant). A NULL desc is all defaults. */
typedef struct vkg_rand_desc {
    uint64_t seed;    /* the Philox key                                                     */
    uint64_t offset;  /* index of the first value in the stream of `seed` (counts values)    */
    float mean, std;  /* randn only; std must be >= 0 and both finite                        */
} vkg_rand_desc;

vkg_tensor *vkg_rand(vkg_shape shape, const vkg_rand_desc *desc);                     /* f32 [0, 1) */
vkg_tensor *vkg_randn(vkg_shape shape, const vkg_rand_desc *desc);                    /* f32 normal */
vkg_tensor *vkg_randint(vkg_shape shape, int32_t low, int32_t high, const vkg_rand_desc *desc); /* i32 */
vkg_tensor *vkg_bernoulli(vkg_shape shape, float p, const vkg_rand_desc *desc);       /* f32 0 / 1, p in [0, 1] */

/* The raw words on the device, as an i32 tensor (bit patterns): element i is lane i % 4 of
 * Philox4x32-10(counter + i / 4, key), where "+" is a 64-bit add on { counter[0], counter[1] }
 * (low word first) and counter[2], counter[3] stay as given. The ops above are this with
 * counter = { block low, block high, 0, 0 } and a conversion. It exists to check the device's
 * Philox against the known-answer vectors, and for distributions of your own. */
vkg_tensor *vkg_random_bits(vkg_shape shape, const uint32_t counter[4], const uint32_t key[2]);

/* A seeded permutation of 0 .. n-1 into out (host only, no device needed). Fisher-Yates: out
 * starts as 0 .. n-1; for i = n-1 down to 1, swap out[i] and out[j] with j = w % (i + 1), where w
 * is the next 64-bit draw not below 2^64 mod (i + 1) (rejection: unbiased). The draws are
 * x[0] | x[1] << 32, then x[2] | x[3] << 32, of blocks 0, 1, 2, ... with key as above and
 * counter { (uint32_t)block, (uint32_t)(block >> 32), 1, 0 }: counter[2] = 1 keeps them apart
 * from the tensor ops' streams of the same seed. n < 0, or a NULL out with n > 0, fails. */
void vkg_permutation(int64_t *out, int64_t n, uint64_t seed);

/* ---- C reference: the same values on the host (for tests, and to reproduce a stream) ------- */
void vkg_ref_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
void vkg_ref_random_bits(uint32_t *y, size_t n, const uint32_t counter[4], const uint32_t key[2]);
void vkg_ref_rand(float *y, size_t n, const vkg_rand_desc *desc);
void vkg_ref_randn(float *y, size_t n, const vkg_rand_desc *desc);
void vkg_ref_randint(int32_t *y, size_t n, int32_t low, int32_t high, const vkg_rand_desc *desc);
void vkg_ref_bernoulli(float *y, size_t n, float p, const vkg_rand_desc *desc);
/* randn's transform of one pair of words: z[0] = r cos, z[1] = r sin (before mean and std). */
void vkg_ref_box_muller(uint32_t a, uint32_t b, float z[2]);

#endif
