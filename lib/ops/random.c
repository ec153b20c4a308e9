/* The random ops (rand, randn, randint, bernoulli, raw Philox words) on the device, and the
 * host-side seeded permutation. One dispatch of shaders/random.comp per call, one invocation per
 * Philox block; the stream they share is defined in vkgrad/random.h and computed on the host by
 * lib/ops/random_reference.c. */
#include <math.h>

#include "ops/ops.h"

/* Mirrors the Push block of shaders/random.comp: change both. */
typedef struct vkg_random_push {
    uint32_t n, out_off;
    uint32_t lane0;     /* lane of element 0 in its block (offset % 4) */
    uint32_t nblocks;
    uint32_t ctr[4];    /* counter of the first block                  */
    uint32_t key[2];
    float mean, std;    /* randn                                        */
    float p;            /* bernoulli                                    */
    int32_t low;        /* randint                                      */
    uint32_t range;     /* randint: high - low                          */
} vkg_random_push;

_Static_assert(sizeof(vkg_random_push) <= VKG_PUSH_SIZE, "push constants too large");

#define LOCAL 128
#define CODE_BITS 4u /* shaders/random.comp's OP for vkg_random_bits (not a table row) */

/* pc carries the op's parameters; the counter, sizes and offset are filled in here. */
static vkg_tensor *random_fill(vkg_op op, uint32_t code, vkg_shape shape, vkg_dtype dtype, vkg_random_push pc,
                               const char *name) {
    vkg_tensor *y = vkg_tensor_alloc(shape, dtype, false, name);
    if (!y) return NULL;
    uint64_t n = (uint64_t)vkg_numel(y);
    if (n == 0) return y;
    uint64_t nblocks = ((uint64_t)pc.lane0 + n + 3) / 4;
    if (nblocks > (1ull << 30)) { /* the shader's value index b * 4 + lane is 32 bits */
        vkg_free(y);
        return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: %llu elements is more than one call can make", name,
                             (unsigned long long)n);
    }
    pc.n = (uint32_t)n;
    pc.out_off = (uint32_t)y->offset;
    pc.nblocks = (uint32_t)nblocks;
    if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = "random", .op = op, .name = name, .spec = { code }, .nspec = 1,
                                           .local_size = LOCAL, .groups = { vkg_groups_for(nblocks, LOCAL) },
                                           .bind = { y }, .nout = 1, .push = &pc, .push_size = sizeof pc }) != VKG_OK) {
        vkg_free(y);
        return NULL;
    }
    return y;
}

/* The push constants of a table op: key from the seed, first block and lane from the offset. */
static vkg_random_push stream_push(const vkg_rand_desc *d) {
    uint64_t seed = d ? d->seed : 0, off = d ? d->offset : 0, blk = off / 4;
    return (vkg_random_push){ .lane0 = (uint32_t)(off % 4), .ctr = { (uint32_t)blk, (uint32_t)(blk >> 32), 0, 0 },
                              .key = { (uint32_t)seed, (uint32_t)(seed >> 32) } };
}

static vkg_tensor *table_op(vkg_op op, vkg_shape shape, vkg_dtype dtype, vkg_random_push pc) {
    char name[32];
    snprintf(name, sizeof name, "vkg_%s", vkg_op_table[op].name);
    return random_fill(op, vkg_op_table[op].code, shape, dtype, pc, name);
}

vkg_tensor *vkg_rand(vkg_shape shape, const vkg_rand_desc *desc) {
    return table_op(VKG_OP_RAND, shape, VKG_F32, stream_push(desc));
}

vkg_tensor *vkg_randn(vkg_shape shape, const vkg_rand_desc *desc) {
    vkg_random_push pc = stream_push(desc);
    pc.mean = desc ? desc->mean : 0.0f;
    pc.std = desc && desc->std != 0.0f ? desc->std : 1.0f;
    if (!isfinite(pc.mean) || !isfinite(pc.std) || pc.std < 0.0f)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_randn: mean %g and std %g: both must be finite and std >= 0",
                             (double)pc.mean, (double)pc.std);
    return table_op(VKG_OP_RANDN, shape, VKG_F32, pc);
}

vkg_tensor *vkg_randint(vkg_shape shape, int32_t low, int32_t high, const vkg_rand_desc *desc) {
    if (high <= low)
        return vkg_fail_null(VKG_ERR_INVALID,
                             "vkg_randint: high %d must be greater than low %d (the range is [low, high))", (int)high,
                             (int)low);
    vkg_random_push pc = stream_push(desc);
    pc.low = low;
    pc.range = (uint32_t)((int64_t)high - (int64_t)low);
    return table_op(VKG_OP_RANDINT, shape, VKG_I32, pc);
}

vkg_tensor *vkg_bernoulli(vkg_shape shape, float p, const vkg_rand_desc *desc) {
    if (!(p >= 0.0f && p <= 1.0f)) /* NaN fails too */
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_bernoulli: p = %g is outside [0, 1]", (double)p);
    vkg_random_push pc = stream_push(desc);
    pc.p = p;
    return table_op(VKG_OP_BERNOULLI, shape, VKG_F32, pc);
}

vkg_tensor *vkg_random_bits(vkg_shape shape, const uint32_t counter[4], const uint32_t key[2]) {
    if (!counter || !key) return vkg_fail_null(VKG_ERR_INVALID, "vkg_random_bits: counter and key must not be NULL");
    vkg_random_push pc = { .ctr = { counter[0], counter[1], counter[2], counter[3] }, .key = { key[0], key[1] } };
    return random_fill(VKG_OP_RANDINT, CODE_BITS, shape, VKG_I32, pc, "vkg_random_bits");
}

/* ---- host permutation ---------------------------------------------------------------------- */
typedef struct draws {
    uint32_t key[2];
    uint64_t block;
    uint32_t x[4];
    int used; /* 64-bit draws taken from x: 0, 1 or 2 (2: make the next block) */
} draws;

static uint64_t next_draw(draws *d) {
    if (d->used == 2) {
        uint32_t ctr[4] = { (uint32_t)d->block, (uint32_t)(d->block >> 32), 1, 0 };
        vkg_ref_philox4x32_10(ctr, d->key, d->x);
        d->block++;
        d->used = 0;
    }
    int q = d->used++;
    return (uint64_t)d->x[2 * q] | (uint64_t)d->x[2 * q + 1] << 32;
}

void vkg_permutation(int64_t *out, int64_t n, uint64_t seed) {
    if (n < 0) {
        vkg_fail(VKG_ERR_INVALID, "vkg_permutation: n = %lld is negative", (long long)n);
        return;
    }
    if (n > 0 && !out) {
        vkg_fail(VKG_ERR_INVALID, "vkg_permutation: out is NULL");
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = i;
    draws d = { .key = { (uint32_t)seed, (uint32_t)(seed >> 32) }, .used = 2 };
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t bound = (uint64_t)i + 1;
        uint64_t reject_below = (0 - bound) % bound; /* 2^64 mod bound: draws below it are biased */
        uint64_t w;
        do w = next_draw(&d);
        while (w < reject_below);
        int64_t j = (int64_t)(w % bound);
        int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}
