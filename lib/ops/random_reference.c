/* The C reference of the random ops: Philox4x32-10 and the word-to-value transforms exactly as
 * shaders/random.comp computes them (the stream is defined in vkgrad/random.h). randn's log and
 * sincos are polynomials in plain f32 adds and multiplies, one operation per statement so that
 * no compiler fuses them (C11 mode has -ffp-contract=off; clang's default contracts only within
 * an expression): the shader marks the same steps `precise`. Change both sides together. */
#include <math.h>
#include <string.h>

#include "vkgrad.h"
#include "ops/bits.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

void vkg_ref_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) { /* the key is bumped between rounds, not before the first */
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* Calls f(block's words, index of the block's first value relative to element 0) for each block
 * that holds values offset .. offset + n - 1 of the stream. */
static void for_blocks(size_t n, const uint32_t base[4], const uint32_t key[2], uint32_t lane0,
                       void (*f)(const uint32_t x[4], int64_t first, void *user), void *user) {
    uint64_t nblocks = ((uint64_t)lane0 + n + 3) / 4;
    uint64_t start = (uint64_t)base[0] | (uint64_t)base[1] << 32;
    for (uint64_t b = 0; b < nblocks; b++) {
        uint64_t blk = start + b;
        uint32_t ctr[4] = { (uint32_t)blk, (uint32_t)(blk >> 32), base[2], base[3] }, x[4];
        vkg_ref_philox4x32_10(ctr, key, x);
        f(x, (int64_t)(b * 4) - (int64_t)lane0, user);
    }
}

static void seed_key(const vkg_rand_desc *d, uint32_t ctr[4], uint32_t key[2], uint32_t *lane0) {
    uint64_t seed = d ? d->seed : 0, off = d ? d->offset : 0, blk = off / 4;
    key[0] = (uint32_t)seed, key[1] = (uint32_t)(seed >> 32);
    ctr[0] = (uint32_t)blk, ctr[1] = (uint32_t)(blk >> 32), ctr[2] = 0, ctr[3] = 0;
    *lane0 = (uint32_t)(off % 4);
}

static float u24(uint32_t w) { return (float)(w >> 8) * 0x1p-24f; }

/* Natural log of u in (0, 1] (normal floats only): Cephes logf. m in [sqrt(1/2), sqrt(2)) - 1 and
 * the exponent are exact; the polynomial is evaluated step by step. */
static float poly_log(float u) {
    uint32_t bits = vkg_f32_to_bits(u);
    int e = (int)(bits >> 23) - 126;                               /* u = m 2^e, m in [0.5, 1) */
    float m = vkg_bits_to_f32((bits & 0x007FFFFFu) | 0x3F000000u);
    float x;
    if (m < vkg_bits_to_f32(0x3F3504F3u)) { /* sqrt(1/2) */
        e -= 1;
        x = m + m;
        x = x - 1.0f;
    } else {
        x = m - 1.0f;
    }
    float z = x * x;
    float y = vkg_bits_to_f32(0x3D9021BBu) * x;
    y = y + vkg_bits_to_f32(0xBDEBD1B8u);
    y = y * x;
    y = y + vkg_bits_to_f32(0x3DEF251Au);
    y = y * x;
    y = y + vkg_bits_to_f32(0xBDFE5D4Fu);
    y = y * x;
    y = y + vkg_bits_to_f32(0x3E11E9BFu);
    y = y * x;
    y = y + vkg_bits_to_f32(0xBE2AAE50u);
    y = y * x;
    y = y + vkg_bits_to_f32(0x3E4CCEACu);
    y = y * x;
    y = y + vkg_bits_to_f32(0xBE7FFFFCu);
    y = y * x;
    y = y + vkg_bits_to_f32(0x3EAAAAAAu);
    y = y * x;
    y = y * z;
    float fe = (float)e;
    float t = vkg_bits_to_f32(0xB95E8083u) * fe; /* -2.12194440e-4: ln 2 - 0.693359375 */
    y = y + t;
    t = 0.5f * z;
    y = y - t;
    float r = x + y;
    t = vkg_bits_to_f32(0x3F318000u) * fe; /* 0.693359375 */
    r = r + t;
    return r;
}

void vkg_ref_box_muller(uint32_t a, uint32_t b, float z[2]) {
    float u1 = (float)((a >> 8) + 1u) * 0x1p-24f; /* (0, 1]: log never sees 0 */
    float l = poly_log(u1);
    l = -2.0f * l;
    float r = sqrtf(l);
    /* 2 pi u2 = k pi/2 + x, k the nearest quarter turn, |x| <= pi/4, all but x's product exact */
    uint32_t w = b >> 8;                            /* u2 = w 2^-24 */
    uint32_t k = (w + (1u << 21)) >> 22;            /* 0 .. 4 */
    float q = (float)((int32_t)w - (int32_t)(k << 22)) * 0x1p-22f; /* in [-0.5, 0.5] */
    float x = q * vkg_bits_to_f32(0x3FC90FDBu);            /* pi / 2 */
    float x2 = x * x;
    float s = vkg_bits_to_f32(0xB94CA1F9u) * x2;           /* Cephes sinf */
    s = s + vkg_bits_to_f32(0x3C08839Eu);
    s = s * x2;
    s = s + vkg_bits_to_f32(0xBE2AAAA3u);
    s = s * x2;
    s = s * x;
    s = s + x;
    float c = vkg_bits_to_f32(0x37CCF5CEu) * x2;           /* Cephes cosf */
    c = c + vkg_bits_to_f32(0xBAB6061Au);
    c = c * x2;
    c = c + vkg_bits_to_f32(0x3D2AAAA5u);
    c = c * x2;
    c = c * x2;
    float h = 0.5f * x2;
    c = c - h;
    c = c + 1.0f;
    float sn, cs;
    switch (k & 3u) {
    case 0: cs = c, sn = s; break;
    case 1: cs = -s, sn = c; break;
    case 2: cs = -c, sn = -s; break;
    default: cs = s, sn = -c; break;
    }
    z[0] = r * cs;
    z[1] = r * sn;
}

void vkg_ref_random_bits(uint32_t *y, size_t n, const uint32_t counter[4], const uint32_t key[2]) {
    uint64_t start = (uint64_t)counter[0] | (uint64_t)counter[1] << 32;
    for (size_t i = 0; i < n; i += 4) {
        uint64_t blk = start + i / 4;
        uint32_t ctr[4] = { (uint32_t)blk, (uint32_t)(blk >> 32), counter[2], counter[3] }, x[4];
        vkg_ref_philox4x32_10(ctr, key, x);
        for (size_t l = 0; l < 4 && i + l < n; l++) y[i + l] = x[l];
    }
}

/* One transform for every op: which one and its parameters travel in `fill`. */
typedef struct fill {
    vkg_op op;
    size_t n;
    void *y;
    float mean, std, p;
    int32_t low;
    uint32_t range;
} fill;

static void fill_block(const uint32_t x[4], int64_t first, void *user) {
    fill *f = user;
    float z[4];
    if (f->op == VKG_OP_RANDN) {
        vkg_ref_box_muller(x[0], x[1], z);
        vkg_ref_box_muller(x[2], x[3], z + 2);
    }
    for (int l = 0; l < 4; l++) {
        int64_t e = first + l;
        if (e < 0 || (uint64_t)e >= f->n) continue;
        switch (f->op) {
        case VKG_OP_RAND: ((float *)f->y)[e] = u24(x[l]); break;
        case VKG_OP_BERNOULLI: ((float *)f->y)[e] = u24(x[l]) < f->p ? 1.0f : 0.0f; break;
        case VKG_OP_RANDINT:
            ((int32_t *)f->y)[e] = (int32_t)((uint32_t)f->low + (uint32_t)(((uint64_t)x[l] * f->range) >> 32));
            break;
        default: {
            float t = f->std * z[l];
            ((float *)f->y)[e] = f->mean + t;
        }
        }
    }
}

static void ref_fill(fill *f, const vkg_rand_desc *d) {
    uint32_t ctr[4], key[2], lane0;
    seed_key(d, ctr, key, &lane0);
    for_blocks(f->n, ctr, key, lane0, fill_block, f);
}

void vkg_ref_rand(float *y, size_t n, const vkg_rand_desc *desc) {
    ref_fill(&(fill){ .op = VKG_OP_RAND, .n = n, .y = y }, desc);
}

void vkg_ref_randn(float *y, size_t n, const vkg_rand_desc *desc) {
    float mean = desc ? desc->mean : 0.0f, std = desc && desc->std != 0.0f ? desc->std : 1.0f;
    ref_fill(&(fill){ .op = VKG_OP_RANDN, .n = n, .y = y, .mean = mean, .std = std }, desc);
}

void vkg_ref_randint(int32_t *y, size_t n, int32_t low, int32_t high, const vkg_rand_desc *desc) {
    ref_fill(&(fill){ .op = VKG_OP_RANDINT, .n = n, .y = y, .low = low,
                      .range = (uint32_t)((int64_t)high - (int64_t)low) }, desc);
}

void vkg_ref_bernoulli(float *y, size_t n, float p, const vkg_rand_desc *desc) {
    ref_fill(&(fill){ .op = VKG_OP_BERNOULLI, .n = n, .y = y, .p = p }, desc);
}
