/* The loader (datasets/loader.h): batches gathered on the device equal a host-side gather of
 * the same permutation, bit for bit (u8 -> exact x/255, normalised, f32, labels u8 and i32);
 * epochs differ, the same seed gives the same order, drop-last and the counters, seek, the
 * streaming path equals the device path, bad descriptions are refused; Fashion-MNIST's whole
 * training set on the device, one batch against the host decode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fashion_mnist.h"
#include "loader.h"
#include "support.h"

#define N 1000
#define ITEM 15 /* (3, 5): not a multiple of 4 bytes, so rows straddle words */

static uint8_t img[N * ITEM];
static uint8_t lab8[N];
static int32_t lab32[N];
static float imgf[N * ITEM];

static void make_data(void) {
    uint64_t s = 12345;
    for (size_t i = 0; i < sizeof img; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        img[i] = (uint8_t)(s >> 56);
    }
    img[0] = 0;
    img[1] = 255; /* both ends of the table */
    for (int i = 0; i < N; i++) {
        lab8[i] = (uint8_t)(i * 7 % 10);
        lab32[i] = i * 31 - 5000;
    }
    vkgt_fill(imgf, N * ITEM, -3.0f, 3.0f, 77);
}

static vkg_loader_desc base_desc(void) {
    return (vkg_loader_desc){ .images = img, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(3, 5), .labels = lab8,
                              .labels_dtype = VKG_U8, .count = N, .batch_size = 64, .seed = 42 };
}

static vkg_loader *create(vkg_loader_desc d) {
    vkg_loader *l = vkg_loader_create(&d);
    cr_assert_not_null(l, "vkg_loader_create: %s", vkg_last_error());
    return l;
}

/* The value the device must give for byte v. */
static float convert(const vkg_loader_desc *d, uint8_t v) {
    float x = (float)v / 255.0f;
    return d->normalize ? (x - d->mean) / (d->std ? d->std : 1.0f) : x;
}

static int32_t label_of(const vkg_loader_desc *d, int64_t i) {
    return d->labels_dtype == VKG_U8 ? ((const uint8_t *)d->labels)[i] : ((const int32_t *)d->labels)[i];
}

/* Checks one batch against a host gather of `order` (the epoch's, from vkg_permutation). */
static void check_batch(const vkg_loader_desc *d, const vkg_batch *b, const int64_t *order) {
    int64_t bs = d->batch_size, first = b->index * bs, item_size = vkg_shape_numel(d->item_shape);
    cr_assert_eq(vkg_ndim(b->x), d->item_shape.ndim + 1);
    cr_assert_eq(vkg_dim(b->x, 0), b->size);
    for (int i = 0; i < d->item_shape.ndim; i++) cr_assert_eq(vkg_dim(b->x, i + 1), d->item_shape.d[i]);
    float *x = vkgt_read(b->x);
    int32_t *y = malloc((size_t)b->size * sizeof *y);
    if (d->labels) {
        cr_assert_eq(vkg_tensor_dtype(b->y), VKG_I32);
        cr_assert_eq(vkg_tensor_read(b->y, y, (size_t)b->size * sizeof *y), VKG_OK, "%s", vkg_last_error());
    } else {
        cr_assert_null(b->y);
    }
    for (int64_t r = 0; r < b->size; r++) {
        int64_t item = order[first + r];
        for (int64_t c = 0; c < item_size; c++) {
            float want = d->images_dtype == VKG_U8 ? convert(d, ((const uint8_t *)d->images)[item * item_size + c])
                                                   : ((const float *)d->images)[item * item_size + c];
            uint32_t gb, wb;
            memcpy(&gb, &x[r * item_size + c], 4);
            memcpy(&wb, &want, 4);
            cr_assert_eq(gb, wb, "epoch %lld batch %lld row %lld (item %lld) col %lld: %a, want %a", (long long)b->epoch,
                         (long long)b->index, (long long)r, (long long)item, (long long)c, x[r * item_size + c], want);
        }
        if (d->labels)
            cr_assert_eq(y[r], label_of(d, item), "epoch %lld batch %lld row %lld: label %d, want %d",
                         (long long)b->epoch, (long long)b->index, (long long)r, y[r], label_of(d, item));
    }
    free(x);
    free(y);
}

/* Runs `epochs` epochs and checks every batch against the host gather. */
static void check_epochs(vkg_loader_desc d, int epochs, bool want_device) {
    vkg_loader *l = create(d);
    cr_assert_eq(vkg_loader_on_device(l), want_device);
    int64_t per = d.drop_last ? d.count / d.batch_size : (d.count + d.batch_size - 1) / d.batch_size;
    int64_t *order = malloc((size_t)d.count * sizeof *order);
    for (int e = 0; e < epochs; e++) {
        if (d.no_shuffle)
            for (int64_t i = 0; i < d.count; i++) order[i] = i;
        else
            vkg_permutation(order, d.count, d.seed + (uint64_t)e);
        vkg_batch b;
        int64_t seen = 0;
        for (;;) {
            vkg_scope_begin();
            bool more = vkg_loader_next(l, &b);
            if (more) {
                cr_assert_eq(b.epoch, e);
                cr_assert_eq(b.index, seen);
                cr_assert_eq(b.size, seen == per - 1 && !d.drop_last ? d.count - seen * d.batch_size : d.batch_size);
                check_batch(&d, &b, order);
                seen++;
            }
            vkg_scope_end();
            if (!more) break;
        }
        cr_assert_eq(b.status, VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(seen, per, "epoch %d: %lld batches, want %lld", e, (long long)seen, (long long)per);
    }
    vkg_loader_info info = vkg_loader_info_get(l);
    cr_assert_eq(info.epoch, epochs);
    cr_assert_eq(info.batch, 0);
    cr_assert_eq(info.batches_served, per * epochs);
    free(order);
    vkg_loader_free(l);
}

VKG_TEST(loader, device_gather_equals_host_gather) {
    make_data();
    check_epochs(base_desc(), 2, true);
}

/* Items of 12 bytes: the kernel converts a word (four pixels) per invocation. */
VKG_TEST(loader, u8_items_of_whole_words) {
    make_data();
    vkg_loader_desc d = base_desc();
    d.item_shape = VKG_SHAPE(3, 4);
    d.count = N * 15 / 12;
    d.labels = NULL;
    check_epochs(d, 2, true);
    d.stream = true;
    check_epochs(d, 1, false);
}

VKG_TEST(loader, normalised_u8_and_i32_labels) {
    make_data();
    vkg_loader_desc d = base_desc();
    d.normalize = true;
    d.mean = 0.2860f;
    d.std = 0.3530f;
    d.labels = lab32;
    d.labels_dtype = VKG_I32;
    d.batch_size = 100; /* divides N: no partial batch */
    check_epochs(d, 1, true);
}

VKG_TEST(loader, f32_images_no_labels_no_shuffle) {
    make_data();
    vkg_loader_desc d = base_desc();
    d.images = imgf;
    d.images_dtype = VKG_F32;
    d.labels = NULL;
    d.no_shuffle = true;
    d.batch_size = 333;
    check_epochs(d, 1, true);
}

VKG_TEST(loader, streaming_equals_host_gather) {
    make_data();
    vkg_loader_desc d = base_desc();
    d.device_budget = 4096; /* the 15 KB dataset does not fit: streamed */
    check_epochs(d, 2, false);
    d.images = imgf;
    d.images_dtype = VKG_F32;
    d.labels = lab32;
    d.labels_dtype = VKG_I32;
    check_epochs(d, 1, false);
    d = base_desc();
    d.stream = true; /* forced */
    d.drop_last = true;
    check_epochs(d, 1, false);
}

/* Reads every batch of one epoch into one host array (x then y). */
static void epoch_bytes(vkg_loader *l, float *x, int32_t *y, int64_t *rows) {
    vkg_batch b;
    int64_t r = 0;
    for (;;) {
        vkg_scope_begin();
        bool more = vkg_loader_next(l, &b);
        if (more) {
            cr_assert_eq(vkg_tensor_read(b.x, x + r * ITEM, (size_t)b.size * ITEM * 4), VKG_OK, "%s", vkg_last_error());
            cr_assert_eq(vkg_tensor_read(b.y, y + r, (size_t)b.size * 4), VKG_OK, "%s", vkg_last_error());
            r += b.size;
        }
        vkg_scope_end();
        if (!more) break;
    }
    cr_assert_eq(b.status, VKG_OK, "%s", vkg_last_error());
    *rows = r;
}

VKG_TEST(loader, streaming_equals_device) {
    make_data();
    vkg_loader_desc d = base_desc();
    d.normalize = true;
    d.mean = 0.5f;
    d.std = 0.25f;
    vkg_loader *dev = create(d);
    d.device_budget = 1;
    vkg_loader *str = create(d);
    cr_assert(vkg_loader_on_device(dev));
    cr_assert(!vkg_loader_on_device(str));
    static float xa[N * ITEM], xb[N * ITEM];
    static int32_t ya[N], yb[N];
    for (int e = 0; e < 2; e++) {
        int64_t ra, rb;
        epoch_bytes(dev, xa, ya, &ra);
        epoch_bytes(str, xb, yb, &rb);
        cr_assert_eq(ra, N);
        cr_assert_eq(rb, N);
        cr_assert_eq(memcmp(xa, xb, sizeof xa), 0, "epoch %d: images differ", e);
        cr_assert_eq(memcmp(ya, yb, sizeof ya), 0, "epoch %d: labels differ", e);
    }
    vkg_loader_info di = vkg_loader_info_get(dev), si = vkg_loader_info_get(str);
    cr_assert_geq(di.device_bytes, (uint64_t)N * ITEM + N * 4 + N * 4 + 1024, "device bytes %llu",
                  (unsigned long long)di.device_bytes);
    cr_assert_lt(si.device_bytes, 4096, "streaming keeps %llu bytes", (unsigned long long)si.device_bytes);
    /* streaming uploads every batch; the device path the dataset once and an order per epoch */
    cr_assert_geq(si.bytes_uploaded, 2ull * N * (ITEM + 4));
    cr_assert_leq(di.bytes_uploaded, (uint64_t)N * ITEM + N * 4 + 2 * N * 4 + 2048);
    vkg_loader_free(dev);
    vkg_loader_free(str);
}

VKG_TEST(loader, epochs_differ_same_seed_same_order) {
    make_data();
    vkg_loader_desc d = base_desc();
    vkg_loader *a = create(d), *b = create(d);
    d.seed = 43;
    vkg_loader *c = create(d);
    static float x[4][N * ITEM];
    static int32_t y[4][N];
    int64_t r;
    epoch_bytes(a, x[0], y[0], &r); /* a: epoch 0 */
    epoch_bytes(a, x[1], y[1], &r); /* a: epoch 1 */
    epoch_bytes(b, x[2], y[2], &r); /* b: epoch 0, same seed */
    epoch_bytes(c, x[3], y[3], &r); /* c: epoch 0, seed 43 = a's epoch 1 (seed + e) */
    cr_assert_neq(memcmp(x[0], x[1], sizeof x[0]), 0, "epochs 0 and 1 gave the same order");
    cr_assert_eq(memcmp(x[0], x[2], sizeof x[0]), 0, "the same seed gave another order");
    cr_assert_eq(memcmp(y[0], y[2], sizeof y[0]), 0);
    cr_assert_eq(memcmp(x[1], x[3], sizeof x[0]), 0, "epoch 1 of seed 42 is not epoch 0 of seed 43");
    vkg_loader_free(a);
    vkg_loader_free(b);
    vkg_loader_free(c);
}

VKG_TEST(loader, drop_last_and_counters) {
    make_data();
    struct { int64_t count, bs; bool drop; int64_t per; } cases[] = {
        { 1000, 64, false, 16 }, { 1000, 64, true, 15 }, { 1000, 1000, true, 1 }, { 1000, 1001, true, 0 },
        { 1000, 1001, false, 1 }, { 1, 1, false, 1 }, { 0, 8, false, 0 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        vkg_loader_desc d = base_desc();
        d.count = cases[k].count;
        d.batch_size = cases[k].bs;
        d.drop_last = cases[k].drop;
        vkg_loader *l = create(d);
        vkg_loader_info info = vkg_loader_info_get(l);
        cr_assert_eq(info.batches_per_epoch, cases[k].per, "case %zu: %lld batches per epoch, want %lld", k,
                     (long long)info.batches_per_epoch, (long long)cases[k].per);
        cr_assert_eq(info.count, d.count);
        cr_assert_eq(info.batch_size, d.batch_size);
        for (int e = 0; e < 2; e++) {
            vkg_batch b;
            int64_t got = 0, rows = 0;
            vkg_scope_begin();
            while (vkg_loader_next(l, &b)) {
                got++;
                rows += b.size;
                cr_assert(d.drop_last ? b.size == d.batch_size : b.size >= 1 && b.size <= d.batch_size);
            }
            vkg_scope_end();
            cr_assert_eq(b.status, VKG_OK);
            cr_assert_eq(got, cases[k].per, "case %zu epoch %d", k, e);
            cr_assert_eq(rows, d.drop_last ? cases[k].per * d.batch_size : d.count, "case %zu", k);
            info = vkg_loader_info_get(l);
            cr_assert_eq(info.epoch, e + 1);
            cr_assert_eq(info.batch, 0);
        }
        cr_assert_eq(vkg_loader_info_get(l).batches_served, 2 * cases[k].per);
        vkg_loader_free(l);
    }
}

VKG_TEST(loader, seek_continues_the_same_batches) {
    make_data();
    vkg_loader_desc d = base_desc();
    vkg_loader *l = create(d);
    int64_t *order = malloc(N * sizeof *order);
    vkg_permutation(order, N, d.seed + 3);
    cr_assert_eq(vkg_loader_seek(l, 3, 5), VKG_OK);
    vkg_batch b;
    vkg_scope_begin();
    cr_assert(vkg_loader_next(l, &b), "%s", vkg_last_error());
    cr_assert_eq(b.epoch, 3);
    cr_assert_eq(b.index, 5);
    check_batch(&d, &b, order);
    vkg_scope_end();
    int64_t want[N];
    cr_assert_eq(vkg_loader_order(l, 3, want), VKG_OK);
    cr_assert_eq(memcmp(want, order, sizeof want), 0);
    cr_assert_eq(vkg_loader_seek(l, 0, 17), VKG_ERR_INVALID); /* 16 batches per epoch */
    cr_assert_eq(vkg_loader_seek(l, -1, 0), VKG_ERR_INVALID);
    cr_assert_eq(vkg_loader_seek(l, 1, 16), VKG_OK); /* the end of epoch 1: next starts epoch 2 */
    vkg_scope_begin();
    cr_assert(!vkg_loader_next(l, &b));
    cr_assert(vkg_loader_next(l, &b));
    cr_assert_eq(b.epoch, 2);
    cr_assert_eq(b.index, 0);
    vkg_scope_end();
    free(order);
    vkg_loader_free(l);
}

VKG_TEST(loader, refuses_bad_descriptions) {
    make_data();
    struct { const char *what, *msg; vkg_loader_desc d; } bad[] = {
        { "i32 images", "u8 or f32", base_desc() }, { "f32 labels", "u8 or i32", base_desc() },
        { "NULL images", "images is NULL", base_desc() }, { "empty item", "no elements", base_desc() },
        { "negative count", "negative", base_desc() }, { "negative batch", "negative", base_desc() },
        { "std < 0", "normalise", base_desc() }, { "too many for u32", "32-bit", base_desc() },
    };
    bad[0].d.images_dtype = VKG_I32;
    bad[1].d.labels_dtype = VKG_F32;
    bad[2].d.images = NULL;
    bad[3].d.item_shape = VKG_SHAPE(0, 5);
    bad[4].d.count = -1;
    bad[5].d.batch_size = -2;
    bad[6].d.normalize = true;
    bad[6].d.std = -1.0f;
    bad[7].d.count = 1ll << 40;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        vkg_loader *l = vkg_loader_create(&bad[k].d);
        cr_assert_null(l, "%s: accepted", bad[k].what);
        cr_assert(strstr(vkg_last_error(), bad[k].msg), "%s: message \"%s\" lacks \"%s\"", bad[k].what,
                  vkg_last_error(), bad[k].msg);
    }
    cr_assert_null(vkg_loader_create(NULL));
    vkg_batch b;
    cr_assert(!vkg_loader_next(NULL, &b));
    cr_assert_eq(b.status, VKG_ERR_INVALID);
    vkg_loader_free(NULL);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

VKG_TEST(loader, fashion_mnist_train_on_device) {
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(NULL, &m), VKG_OK, "%s (the setup installs dataset-fashion-mnist)", vkg_last_error());
    cr_assert_eq(m.train.count, 60000);
    vkg_loader_desc d = { .images = m.train.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
                          .labels = m.train.labels, .labels_dtype = VKG_U8, .count = (int64_t)m.train.count,
                          .batch_size = 128, .seed = 2024 };
    vkg_memory_stats before = vkg_memory_stats_get();
    vkg_loader *l = create(d);
    cr_assert(vkg_loader_on_device(l), "60,000 x 784 bytes should fit the device");
    vkg_loader_info info = vkg_loader_info_get(l);
    cr_assert_geq(info.device_bytes, 60000ull * 784 + 60000 * 4);
    cr_assert_lt(info.device_bytes, 60000ull * 784 * 2, "u8 must stay u8: %llu bytes",
                 (unsigned long long)info.device_bytes);
    cr_assert_geq(vkg_memory_stats_get().in_use - before.in_use, 60000ull * 784);
    cr_assert_eq(info.batches_per_epoch, 469);

    /* the host decode: vkg_mnist_images_to_f32 (x * (1/255), at most 1 ulp from x / 255) */
    float *host = malloc(60000ull * 784 * sizeof *host);
    cr_assert_eq(vkg_mnist_images_to_f32(m.train.images, m.train.count, host, false), VKG_OK);
    int64_t *order = malloc(60000 * sizeof *order);
    vkg_permutation(order, 60000, d.seed);
    vkg_batch b;
    vkg_scope_begin();
    cr_assert(vkg_loader_next(l, &b), "%s", vkg_last_error());
    float *x = vkgt_read(b.x);
    int32_t y[128];
    cr_assert_eq(vkg_tensor_read(b.y, y, sizeof y), VKG_OK);
    for (int r = 0; r < 128; r++) {
        int64_t item = order[r];
        cr_assert_eq(y[r], m.train.labels[item]);
        for (int c = 0; c < 784; c++) {
            float got = x[r * 784 + c], want = host[item * 784 + c];
            cr_assert(fabsf(got - want) <= 6e-8f, "row %d col %d: %a, host decode %a", r, c, got, want);
            float exact = (float)m.train.images[item * 784 + c] / 255.0f;
            cr_assert(memcmp(&got, &exact, 4) == 0, "row %d col %d: %a, want %a", r, c, got, exact);
        }
    }
    free(x);
    vkg_scope_end();

    /* a figure for the log, not an assertion: batches per second of gather alone */
    double t0 = now();
    int nb = 0;
    for (; nb < 100; nb++) {
        vkg_scope_begin();
        cr_assert(vkg_loader_next(l, &b));
        vkg_scope_end();
    }
    cr_assert_eq(vkg_sync(), VKG_OK);
    double dt = now() - t0;
    cr_log_info("Fashion-MNIST on the device: %llu bytes kept; %d batches of 128 in %.3f s (%.0f batches/s)",
                (unsigned long long)info.device_bytes, nb, dt, nb / dt);
    fprintf(stderr, "loader: Fashion-MNIST train keeps %llu bytes on the device; %.0f batches/s of 128 (gather only)\n",
            (unsigned long long)info.device_bytes, nb / dt);
    free(order);
    free(host);
    vkg_loader_free(l);
    vkg_mnist_free(&m);
}
