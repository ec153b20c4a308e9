/* The random ops: Philox4x32-10 against the Random123 known-answer vectors in the C reference
 * and on the device; every op bitwise against its reference for several (seed, offset) and
 * sizes that are not multiples of the workgroup size; determinism and the stream's tail
 * property; loose statistics on 100k samples; ranges; the bad inputs each op refuses; the
 * host permutation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Random123's kat_vectors, "philox4x32 10": counter, key, expected. */
static const struct {
    uint32_t ctr[4], key[2], out[4];
} kat[] = {
    { { 0, 0, 0, 0 }, { 0, 0 }, { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 } },
    { { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff }, { 0xffffffff, 0xffffffff },
      { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd } },
    { { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 }, { 0xa4093822, 0x299f31d0 },
      { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 } },
};
#define NKAT (sizeof kat / sizeof kat[0])

static const int64_t sizes[] = { 0, 1, 5, 129, 1000 };
static const vkg_rand_desc descs[] = {
    { 0 },
    { .seed = 42 },
    { .seed = 42, .offset = 3 },
    { .seed = 0x123456789abcdef0ull, .offset = 4 * 1000 + 1 },
    { .seed = 7, .offset = 0xfffffffffffffff0ull }, /* the block count wraps past 2^64 */
    { .seed = 7, .offset = (1ull << 34) + 2 },      /* the counter's high word is in use */
};
#define NDESC (sizeof descs / sizeof descs[0])

static void *read_bytes(const vkg_tensor *t, size_t elem) {
    cr_assert_not_null(t, "tensor is NULL: %s", vkg_last_error());
    size_t n = (size_t)vkg_numel(t);
    void *buf = malloc((n ? n : 1) * elem);
    cr_assert_eq(vkg_tensor_read(t, buf, n * elem), VKG_OK, "read: %s", vkg_last_error());
    return buf;
}

static void assert_same_bits(const void *got, const void *want, size_t n, const char *what, const vkg_rand_desc *d) {
    const uint32_t *g = got, *w = want;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(g[i], w[i], "%s (seed %llu, offset %llu, n %zu): element %zu is 0x%08x, want 0x%08x", what,
                     (unsigned long long)d->seed, (unsigned long long)d->offset, n, i, g[i], w[i]);
}

VKG_TEST(random, philox_known_answers_reference) {
    for (size_t k = 0; k < NKAT; k++) {
        uint32_t out[4];
        vkg_ref_philox4x32_10(kat[k].ctr, kat[k].key, out);
        for (int l = 0; l < 4; l++)
            cr_assert_eq(out[l], kat[k].out[l], "vector %zu word %d: 0x%08x, want 0x%08x", k, l, out[l], kat[k].out[l]);
    }
}

/* The device's Philox directly: vkg_random_bits with each vector's counter and key; a second
 * block checks the counter add (carry from word 0 into word 1, as the reference does it). */
VKG_TEST(random, philox_known_answers_device) {
    for (size_t k = 0; k < NKAT; k++) {
        vkg_tensor *t = vkg_random_bits(VKG_SHAPE(8), kat[k].ctr, kat[k].key);
        uint32_t *got = read_bytes(t, 4), want[8];
        for (int l = 0; l < 4; l++)
            cr_assert_eq(got[l], kat[k].out[l], "vector %zu word %d on the device: 0x%08x, want 0x%08x", k, l, got[l],
                         kat[k].out[l]);
        vkg_ref_random_bits(want, 8, kat[k].ctr, kat[k].key);
        for (int l = 4; l < 8; l++) cr_assert_eq(got[l], want[l], "vector %zu, next block, word %d", k, l - 4);
        free(got);
    }
}

VKG_TEST(random, device_matches_reference) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t k = 0; k < NDESC; k++) {
            vkg_scope_begin();
            const vkg_rand_desc *d = &descs[k];
            size_t n = (size_t)sizes[s];
            vkg_shape shape = VKG_SHAPE(sizes[s]);
            float *want = malloc((n ? n : 1) * sizeof *want);
            int32_t *wanti = malloc((n ? n : 1) * sizeof *wanti);

            vkg_ref_rand(want, n, d);
            float *got = read_bytes(vkg_rand(shape, d), 4);
            assert_same_bits(got, want, n, "rand", d);
            free(got);

            vkg_ref_bernoulli(want, n, 0.3f, d);
            got = read_bytes(vkg_bernoulli(shape, 0.3f, d), 4);
            assert_same_bits(got, want, n, "bernoulli", d);
            free(got);

            vkg_ref_randint(wanti, n, -5, 17, d);
            int32_t *goti = read_bytes(vkg_randint(shape, -5, 17, d), 4);
            assert_same_bits(goti, wanti, n, "randint", d);
            free(goti);

            vkg_ref_randint(wanti, n, INT32_MIN, INT32_MAX, d); /* the widest range */
            goti = read_bytes(vkg_randint(shape, INT32_MIN, INT32_MAX, d), 4);
            assert_same_bits(goti, wanti, n, "randint (full range)", d);
            free(goti);

            vkg_rand_desc dn = *d;
            dn.mean = 0.5f, dn.std = 2.0f;
            vkg_ref_randn(want, n, &dn);
            got = read_bytes(vkg_randn(shape, &dn), 4);
            vkgt_assert_close(got, want, n, 1e-5f, 1e-6f, "randn");
            /* the shader evaluates the same unfused f32 steps; lavapipe's add, mul and sqrt are
             * correctly rounded, so there randn is bitwise equal too (random.h); NVIDIA's sqrt is
             * not, and an H100 was 16 ulps off on a value near 0 */
            if (strstr(vkg_device()->driver_name, "llvmpipe")) assert_same_bits(got, want, n, "randn", d);
            free(got);
            free(want);
            free(wanti);
            vkg_scope_end();
        }
}

/* A multi-dim shape is the same stream in row-major order. */
VKG_TEST(random, shape_is_row_major) {
    vkg_rand_desc d = { .seed = 11, .offset = 2 };
    float *a = read_bytes(vkg_rand(VKG_SHAPE(3, 7, 5), &d), 4);
    float *b = read_bytes(vkg_rand(VKG_SHAPE(105), &d), 4);
    assert_same_bits(a, b, 105, "rand (3, 7, 5) vs (105,)", &d);
    float s;
    vkg_tensor *t = vkg_rand(VKG_SCALAR, &d);
    cr_assert_eq(vkg_tensor_read(t, &s, sizeof s), VKG_OK);
    cr_assert_eq(s, a[0]);
    free(a);
    free(b);
}

VKG_TEST(random, deterministic) {
    vkg_rand_desc d = { .seed = 1234, .offset = 77 };
    uint32_t *a = read_bytes(vkg_randn(VKG_SHAPE(1000), &d), 4);
    uint32_t *b = read_bytes(vkg_randn(VKG_SHAPE(1000), &d), 4);
    cr_assert_eq(memcmp(a, b, 1000 * 4), 0, "same seed and offset twice gave different bits");
    /* another seed, another offset: different streams */
    vkg_rand_desc e = d;
    e.seed++;
    uint32_t *c = read_bytes(vkg_randn(VKG_SHAPE(1000), &e), 4);
    e = d;
    e.offset += 1000;
    uint32_t *f = read_bytes(vkg_randn(VKG_SHAPE(1000), &e), 4);
    int same_c = 0, same_f = 0;
    for (int i = 0; i < 1000; i++) same_c += a[i] == c[i], same_f += a[i] == f[i];
    cr_assert_lt(same_c, 5, "seed+1 repeats %d of 1000 values", same_c);
    cr_assert_lt(same_f, 5, "offset+1000 repeats %d of 1000 values", same_f);
    free(a), free(b), free(c), free(f);
}

/* offset counts values: a call with offset k is the tail of a call with offset 0 from element k,
 * for any k (not only multiples of 4), for every op. */
VKG_TEST(random, offset_continues_the_stream) {
    const int64_t n = 300;
    for (uint64_t k = 0; k < 10; k++) {
        vkg_scope_begin();
        vkg_rand_desc whole = { .seed = 99, .std = 3.0f }, tail = whole;
        tail.offset = k;
        uint32_t *a = read_bytes(vkg_rand(VKG_SHAPE(n), &whole), 4);
        uint32_t *b = read_bytes(vkg_rand(VKG_SHAPE(n - (int64_t)k), &tail), 4);
        assert_same_bits(b, a + k, (size_t)n - k, "rand tail", &tail);
        free(a), free(b);
        a = read_bytes(vkg_randn(VKG_SHAPE(n), &whole), 4);
        b = read_bytes(vkg_randn(VKG_SHAPE(n - (int64_t)k), &tail), 4);
        assert_same_bits(b, a + k, (size_t)n - k, "randn tail", &tail);
        free(a), free(b);
        a = read_bytes(vkg_randint(VKG_SHAPE(n), 0, 1000, &whole), 4);
        b = read_bytes(vkg_randint(VKG_SHAPE(n - (int64_t)k), 0, 1000, &tail), 4);
        assert_same_bits(b, a + k, (size_t)n - k, "randint tail", &tail);
        free(a), free(b);
        vkg_scope_end();
    }
    /* two consecutive calls, offset advanced by numel, equal one call */
    vkg_rand_desc d = { .seed = 5 };
    uint32_t *one = read_bytes(vkg_bernoulli(VKG_SHAPE(1001), 0.5f, &d), 4);
    uint32_t *first = read_bytes(vkg_bernoulli(VKG_SHAPE(333), 0.5f, &d), 4);
    d.offset += 333;
    uint32_t *second = read_bytes(vkg_bernoulli(VKG_SHAPE(668), 0.5f, &d), 4);
    assert_same_bits(first, one, 333, "bernoulli, first call", &d);
    assert_same_bits(second, one + 333, 668, "bernoulli, second call", &d);
    free(one), free(first), free(second);
}

static void moments(const float *x, size_t n, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(s2 / (double)n);
}

VKG_TEST(random, statistics) {
    const size_t n = 100000;
    vkg_rand_desc d = { .seed = 2026 };
    double m, s;
    float *u = read_bytes(vkg_rand(VKG_SHAPE((int64_t)n), &d), 4);
    moments(u, n, &m, &s);
    cr_assert(fabs(m - 0.5) < 0.01, "rand mean %g", m);
    cr_assert(fabs(s - sqrt(1.0 / 12)) < 0.01, "rand std %g", s);
    for (size_t i = 0; i < n; i++) cr_assert(u[i] >= 0.0f && u[i] < 1.0f, "rand[%zu] = %g", i, (double)u[i]);
    free(u);

    float *z = read_bytes(vkg_randn(VKG_SHAPE((int64_t)n), &d), 4);
    moments(z, n, &m, &s);
    cr_assert(fabs(m) < 0.02, "randn mean %g", m);
    cr_assert(fabs(s - 1.0) < 0.02, "randn std %g", s);
    size_t within1 = 0;
    for (size_t i = 0; i < n; i++) within1 += fabsf(z[i]) < 1.0f;
    cr_assert(fabs((double)within1 / (double)n - 0.6827) < 0.01, "randn: %zu of %zu within one std", within1, n);
    free(z);

    vkg_rand_desc dn = { .seed = 2027, .mean = -3.0f, .std = 0.5f };
    z = read_bytes(vkg_randn(VKG_SHAPE((int64_t)n), &dn), 4);
    moments(z, n, &m, &s);
    cr_assert(fabs(m + 3.0) < 0.01 && fabs(s - 0.5) < 0.01, "randn(-3, 0.5): mean %g std %g", m, s);
    free(z);

    float *b = read_bytes(vkg_bernoulli(VKG_SHAPE((int64_t)n), 0.3f, &d), 4);
    moments(b, n, &m, &s);
    cr_assert(fabs(m - 0.3) < 0.01, "bernoulli(0.3) mean %g", m);
    for (size_t i = 0; i < n; i++) cr_assert(b[i] == 0.0f || b[i] == 1.0f, "bernoulli[%zu] = %g", i, (double)b[i]);
    free(b);
    float *b0 = read_bytes(vkg_bernoulli(VKG_SHAPE(1000), 0.0f, &d), 4);
    float *b1 = read_bytes(vkg_bernoulli(VKG_SHAPE(1000), 1.0f, &d), 4);
    for (int i = 0; i < 1000; i++) cr_assert(b0[i] == 0.0f && b1[i] == 1.0f, "bernoulli p = 0 / 1 at %d", i);
    free(b0), free(b1);
}

VKG_TEST(random, randint_range) {
    const size_t n = 100000;
    vkg_rand_desc d = { .seed = 3 };
    cr_assert_eq(vkg_tensor_dtype(vkg_randint(VKG_SHAPE(1), 0, 2, &d)), VKG_I32);
    int32_t *x = read_bytes(vkg_randint(VKG_SHAPE((int64_t)n), -3, 7, &d), 4);
    size_t count[10] = { 0 };
    for (size_t i = 0; i < n; i++) {
        cr_assert(x[i] >= -3 && x[i] < 7, "randint[%zu] = %d outside [-3, 7)", i, x[i]);
        count[x[i] + 3]++;
    }
    for (int v = 0; v < 10; v++)
        cr_assert(count[v] > 9000 && count[v] < 11000, "value %d drawn %zu times", v - 3, count[v]);
    free(x);
    x = read_bytes(vkg_randint(VKG_SHAPE(100), 41, 42, &d), 4);
    for (int i = 0; i < 100; i++) cr_assert_eq(x[i], 41);
    free(x);
    x = read_bytes(vkg_randint(VKG_SHAPE(1000), INT32_MIN, INT32_MAX, &d), 4);
    int neg = 0;
    for (int i = 0; i < 1000; i++) {
        neg += x[i] < 0;
        cr_assert_neq(x[i], INT32_MAX);
    }
    cr_assert(neg > 400 && neg < 600, "full range: %d of 1000 negative", neg);
    free(x);
}

static void expect_refused(vkg_tensor *t, const char *what, const char *fragment) {
    cr_assert_null(t, "%s was not refused", what);
    cr_assert_eq(vkg_last_status(), VKG_ERR_INVALID, "%s: status %s", what, vkg_status_name(vkg_last_status()));
    cr_assert(strstr(vkg_last_error(), fragment), "%s: message \"%s\" lacks \"%s\"", what, vkg_last_error(), fragment);
    vkg_clear_error();
}

VKG_TEST(random, bad_input_refused) {
    vkg_rand_desc d = { .seed = 1 };
    expect_refused(vkg_randint(VKG_SHAPE(4), 5, 5, &d), "randint high == low", "high 5 must be greater than low 5");
    expect_refused(vkg_randint(VKG_SHAPE(4), 5, -1, &d), "randint high < low", "vkg_randint: high -1");
    expect_refused(vkg_bernoulli(VKG_SHAPE(4), 1.5f, &d), "bernoulli p 1.5",
                   "vkg_bernoulli: p = 1.5 is outside [0, 1]");
    expect_refused(vkg_bernoulli(VKG_SHAPE(4), -0.1f, &d), "bernoulli p -0.1", "outside [0, 1]");
    expect_refused(vkg_bernoulli(VKG_SHAPE(4), NAN, &d), "bernoulli p NaN", "outside [0, 1]");
    expect_refused(vkg_randn(VKG_SHAPE(4), &(vkg_rand_desc){ .std = -1.0f }), "randn std -1", "vkg_randn");
    expect_refused(vkg_randn(VKG_SHAPE(4), &(vkg_rand_desc){ .mean = INFINITY }), "randn mean inf", "finite");
    expect_refused(vkg_rand(VKG_SHAPE(2, -3), &d), "rand negative shape",
                   "vkg_rand: shape (2, -3) has a negative size");
    expect_refused(vkg_randn(VKG_SHAPE(-1), &d), "randn negative shape", "vkg_randn");
    expect_refused(vkg_randint(VKG_SHAPE(-1), 0, 2, &d), "randint negative shape", "vkg_randint");
    expect_refused(vkg_bernoulli(VKG_SHAPE(-1), 0.5f, &d), "bernoulli negative shape", "vkg_bernoulli");
    expect_refused(vkg_random_bits(VKG_SHAPE(4), NULL, kat[0].key), "random_bits NULL counter", "vkg_random_bits");
    /* a NULL desc is all defaults: seed 0, offset 0, std 1 */
    uint32_t *a = read_bytes(vkg_randn(VKG_SHAPE(10), NULL), 4);
    uint32_t *b = read_bytes(vkg_randn(VKG_SHAPE(10), &(vkg_rand_desc){ .std = 1.0f }), 4);
    cr_assert_eq(memcmp(a, b, 40), 0);
    free(a), free(b);
    cr_assert_str_empty(vkg_last_error());
}

VKG_TEST(random, permutation) {
    enum { N = 1000 };
    int64_t p[N], q[N];
    vkg_permutation(p, N, 42);
    vkg_permutation(q, N, 42);
    cr_assert_eq(memcmp(p, q, sizeof p), 0, "same seed, different permutation");
    bool seen[N] = { false };
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        cr_assert(p[i] >= 0 && p[i] < N && !seen[p[i]], "not a permutation at %d (%lld)", i, (long long)p[i]);
        seen[p[i]] = true;
        fixed += p[i] == i;
    }
    cr_assert_lt(fixed, 10, "%d fixed points", fixed);
    vkg_permutation(q, N, 43);
    cr_assert_neq(memcmp(p, q, sizeof p), 0, "seeds 42 and 43 gave the same permutation");
    /* every arrangement of 3 is reachable and roughly equally likely */
    int hist[9] = { 0 };
    for (uint64_t s = 0; s < 6000; s++) {
        int64_t r[3];
        vkg_permutation(r, 3, s);
        hist[r[0] * 3 + r[1]]++;
    }
    int arrangements = 0;
    for (int i = 0; i < 9; i++)
        if (hist[i]) {
            arrangements++;
            cr_assert(hist[i] > 850 && hist[i] < 1150, "arrangement %d seen %d times of 6000", i, hist[i]);
        }
    cr_assert_eq(arrangements, 6);
    int64_t one = -1;
    vkg_permutation(&one, 1, 9);
    cr_assert_eq(one, 0);
    vkg_permutation(NULL, 0, 9);
    cr_assert_str_empty(vkg_last_error());
    vkg_permutation(p, -1, 9);
    cr_assert(strstr(vkg_last_error(), "vkg_permutation: n = -1 is negative"), "%s", vkg_last_error());
    vkg_clear_error();
}
