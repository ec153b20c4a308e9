/* Fashion-MNIST and the byte-level text corpus on the real data from Debian's packages
 * (dataset-fashion-mnist, fortunes), checked against decodes written here from plain zlib
 * inflate and readdir/stat; plus small synthetic cases in a mkdtemp directory. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fashion_mnist.h"
#include "text.h"
#include "io_test_support.h"

VKG_IO_TEST_SUITE(datasets)

/* The independent decode: the whole .gz file inflated with inflate(), nothing from vkgrad. */
static uint8_t *inflate_file(const char *path, size_t *out_n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *gz = malloc(n);
    cr_assert_eq(fread(gz, 1, n, f), n);
    fclose(f);
    size_t cap = 64 << 20;
    uint8_t *out = malloc(cap);
    z_stream zs = { 0 };
    cr_assert_eq(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
    zs.next_in = gz;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq(inflate(&zs, Z_FINISH), Z_STREAM_END, "%s did not inflate", path);
    *out_n = zs.total_out;
    inflateEnd(&zs);
    free(gz);
    return out;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- Fashion-MNIST ----------------------------------------------------------------------- */

Test(datasets, fashion_mnist_matches_an_independent_decode) {
    const char *dir = VKG_MNIST_DEFAULT_DIR;
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(dir, &m), VKG_OK, "%s (is dataset-fashion-mnist installed?)",
                 vkg_last_error());
    cr_assert_eq(m.train.count, 60000);
    cr_assert_eq(m.test.count, 10000);
    size_t train_class[10] = { 0 }, test_class[10] = { 0 };
    for (size_t i = 0; i < m.train.count; i++) {
        cr_assert_lt(m.train.labels[i], 10);
        train_class[m.train.labels[i]]++;
    }
    for (size_t i = 0; i < m.test.count; i++) {
        cr_assert_lt(m.test.labels[i], 10);
        test_class[m.test.labels[i]]++;
    }
    for (int c = 0; c < 10; c++) {
        cr_assert_eq(train_class[c], 6000, "class %d has %zu training images", c, train_class[c]);
        cr_assert_eq(test_class[c], 1000, "class %d has %zu test images", c, test_class[c]);
    }
    /* Independent decode of the training images and labels. */
    char p[4096];
    size_t n;
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    uint8_t *raw = inflate_file(p, &n);
    cr_assert_eq(n, 16 + 60000 * 784);
    cr_assert_eq(be32(raw), 0x00000803);
    cr_assert_eq(be32(raw + 4), 60000);
    cr_assert_eq(be32(raw + 8), 28);
    cr_assert_eq(be32(raw + 12), 28);
    /* A few pixels by position (image, row, col), then everything. */
    size_t probes[][3] = { { 0, 0, 0 }, { 0, 14, 14 }, { 1, 10, 3 }, { 12345, 20, 7 },
                           { 59999, 27, 27 }, { 30000, 5, 22 } };
    for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
        size_t i = probes[k][0] * 784 + probes[k][1] * 28 + probes[k][2];
        cr_assert_eq(m.train.images[i], raw[16 + i], "pixel (%zu, %zu, %zu)", probes[k][0],
                     probes[k][1], probes[k][2]);
    }
    cr_assert_eq(memcmp(m.train.images, raw + 16, 60000 * 784), 0);
    unsigned long sum = 0;
    for (size_t i = 0; i < 784; i++) sum += raw[16 + i];
    cr_assert_gt(sum, 0, "the first image is blank");
    free(raw);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    raw = inflate_file(p, &n);
    cr_assert_eq(n, 8 + 60000);
    cr_assert_eq(be32(raw), 0x00000801);
    cr_assert_eq(memcmp(m.train.labels, raw + 8, 60000), 0);
    free(raw);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    raw = inflate_file(p, &n);
    cr_assert_eq(n, 16 + 10000 * 784);
    cr_assert_eq(memcmp(m.test.images, raw + 16, 10000 * 784), 0);
    free(raw);
    /* First labels of the published dataset: train 9 0 0 3, test 9 2 1 1 (ankle boot, ...). */
    cr_assert_eq(m.train.labels[0], 9);
    cr_assert_eq(m.train.labels[3], 3);
    cr_assert_eq(m.test.labels[0], 9);
    cr_assert_eq(m.test.labels[1], 2);
    /* Conversion to f32 over the whole training set: mean and std close to the constants. */
    float *x = malloc(60000 * 784 * sizeof *x);
    cr_assert_eq(vkg_mnist_images_to_f32(m.train.images, m.train.count, x, false), VKG_OK);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < 60000 * 784; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    double mean = s / (60000.0 * 784), std = sqrt(s2 / (60000.0 * 784) - mean * mean);
    cr_log_info("Fashion-MNIST train pixels: mean %.4f std %.4f", mean, std);
    cr_assert(fabs(mean - VKG_FASHION_MNIST_MEAN) < 5e-4, "mean %f", mean);
    cr_assert(fabs(std - VKG_FASHION_MNIST_STD) < 5e-4, "std %f", std);
    free(x);
    vkg_mnist_free(&m);
    cr_assert_null(m.train.images);
    LEAK_CHECK();
}

Test(datasets, mnist_to_f32) {
    uint8_t img[784] = { 0 };
    img[1] = 255;
    img[2] = 51;
    float out[784];
    cr_assert_eq(vkg_mnist_images_to_f32(img, 1, out, false), VKG_OK);
    cr_assert_eq(out[0], 0.0f);
    cr_assert_eq(out[1], 1.0f);
    cr_assert_float_eq(out[2], 0.2f, 1e-6);
    cr_assert_eq(vkg_mnist_images_to_f32(img, 1, out, true), VKG_OK);
    cr_assert_float_eq(out[0], -0.2860f / 0.3530f, 1e-6);
    cr_assert_float_eq(out[1], (1.0f - 0.2860f) / 0.3530f, 1e-6);
    cr_assert_eq(vkg_mnist_images_to_f32(NULL, 1, out, true), VKG_ERR_INVALID);
    LEAK_CHECK();
}

/* Small IDX files: 3 images (3, 28, 28) and labels, plain (not gzip). */
static void write_mnist_split(const char *prefix, uint32_t n_images, uint32_t rows, uint32_t n_labels,
                              int bad_label) {
    static uint8_t buf[16 + 4 * 28 * 40];
    uint8_t h[16] = { 0, 0, 8, 3 };
    for (int k = 0; k < 4; k++) {
        h[4 + k] = (uint8_t)(n_images >> (24 - 8 * k));
        h[8 + k] = (uint8_t)(rows >> (24 - 8 * k));
        h[12 + k] = (uint8_t)(28u >> (24 - 8 * k));
    }
    memcpy(buf, h, 16);
    for (size_t i = 0; i < (size_t)n_images * rows * 28; i++) buf[16 + i] = (uint8_t)i;
    char p[4200];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", tmpdir, prefix);
    write_file(p, buf, 16 + (size_t)n_images * rows * 28);
    uint8_t l[8 + 16] = { 0, 0, 8, 1, 0, 0, 0, (uint8_t)n_labels };
    for (uint32_t i = 0; i < n_labels; i++) l[8 + i] = (uint8_t)(i == 1 && bad_label ? 10 : i);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", tmpdir, prefix);
    write_file(p, l, 8 + n_labels);
}

Test(datasets, mnist_from_vkg_data_directory) {
    write_mnist_split("train", 3, 28, 3, 0);
    write_mnist_split("t10k", 2, 28, 2, 0);
    cr_assert_eq(setenv("VKG_DATA", tmpdir, 1), 0);
    cr_assert_str_eq(vkg_mnist_default_dir(), tmpdir);
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(NULL, &m), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(m.train.count, 3);
    cr_assert_eq(m.test.count, 2);
    cr_assert_eq(m.train.labels[2], 2);
    cr_assert_eq(m.train.images[784 + 5], (uint8_t)(784 + 5));
    vkg_mnist_free(&m);
    unsetenv("VKG_DATA");
    cr_assert_str_eq(vkg_mnist_default_dir(), VKG_MNIST_DEFAULT_DIR);
    LEAK_CHECK();
}

Test(datasets, mnist_counts_must_agree) {
    write_mnist_split("train", 3, 28, 2, 0);
    write_mnist_split("t10k", 2, 28, 2, 0);
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(tmpdir, &m), VKG_ERR_FORMAT);
    cr_assert_not_null(strstr(vkg_last_error(), "holds 3 images but"), "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), "holds 2 labels"), "%s", vkg_last_error());
    cr_assert_null(m.train.images);
    LEAK_CHECK();
}

Test(datasets, mnist_labels_below_10) {
    write_mnist_split("train", 3, 28, 3, 1);
    write_mnist_split("t10k", 2, 28, 2, 0);
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(tmpdir, &m), VKG_ERR_FORMAT);
    cr_assert_not_null(strstr(vkg_last_error(), "label 1 is 10"), "%s", vkg_last_error());
    LEAK_CHECK();
}

Test(datasets, mnist_images_must_be_28x28) {
    write_mnist_split("train", 3, 27, 3, 0);
    write_mnist_split("t10k", 2, 28, 2, 0);
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(tmpdir, &m), VKG_ERR_FORMAT);
    cr_assert_not_null(strstr(vkg_last_error(), "(N, 28, 28)"), "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), "train-images-idx3-ubyte"), "%s", vkg_last_error());
    LEAK_CHECK();
}

Test(datasets, mnist_missing_directory) {
    vkg_mnist m;
    cr_assert_eq(vkg_mnist_load(tpath("nothing"), &m), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "train-images-idx3-ubyte.gz: cannot open"), "%s",
                       vkg_last_error());
    LEAK_CHECK();
}

/* ---- text -------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

Test(datasets, fortunes_corpus) {
    /* Independent listing: regular files, not *.dat / *.u8 / hidden, sorted by strcmp. */
    const char *dir = VKG_TEXT_DEFAULT_DIR;
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s missing (is fortunes installed?)", dir);
    char *names[512];
    int count = 0;
    size_t total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || (len > 4 && !strcmp(e->d_name + len - 4, ".dat")) ||
            (len > 3 && !strcmp(e->d_name + len - 3, ".u8")))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        cr_assert_lt(count, 512);
        names[count++] = strdup(e->d_name);
        total += (size_t)sb.st_size;
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof *names, cmp_str);
    vkg_text t;
    cr_assert_eq(vkg_text_load_dir(NULL, &t), VKG_OK, "%s", vkg_last_error());
    cr_log_info("fortunes corpus: %d files, %zu bytes: train %zu, validation %zu", t.file_count,
                t.size, t.train_size, t.val_size);
    printf("fortunes corpus: %d files, %zu bytes: train %zu, validation %zu\n", t.file_count,
           t.size, t.train_size, t.val_size);
    cr_assert_eq(t.file_count, count);
    cr_assert_eq(t.size, total);
    cr_assert_gt(t.size, 1000000, "the corpus is suspiciously small");
    cr_assert_eq(t.train_size + t.val_size, t.size);
    cr_assert_eq(t.train_size, (size_t)((unsigned long long)t.size * 9 / 10));
    cr_assert_eq(t.val_size, t.size - (size_t)((unsigned long long)t.size * 9 / 10));
    /* Concatenated in name order: the first file's bytes come first, the last file's last. */
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, names[0]);
    FILE *f = fopen(p, "rb");
    uint8_t head[256];
    size_t hn = fread(head, 1, sizeof head, f);
    fclose(f);
    cr_assert_eq(memcmp(t.data, head, hn), 0, "the corpus does not start with %s", names[0]);
    snprintf(p, sizeof p, "%s/%s", dir, names[count - 1]);
    struct stat sb;
    stat(p, &sb);
    f = fopen(p, "rb");
    uint8_t *last = malloc((size_t)sb.st_size);
    cr_assert_eq(fread(last, 1, (size_t)sb.st_size, f), (size_t)sb.st_size);
    fclose(f);
    cr_assert_eq(memcmp(t.data + t.size - (size_t)sb.st_size, last, (size_t)sb.st_size), 0);
    free(last);
    size_t vn;
    const uint8_t *val = vkg_text_part(&t, VKG_TEXT_VAL, &vn);
    cr_assert_eq(val, t.data + t.train_size);
    cr_assert_eq(vn, t.val_size);
    vkg_text_free(&t);
    for (int i = 0; i < count; i++) free(names[i]);
    LEAK_CHECK();
}

/* SplitMix64 written again here from its definition, to pin the documented window rule. */
static uint64_t ref_random(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

Test(datasets, text_windows_are_deterministic_and_shifted) {
    vkg_text t;
    cr_assert_eq(vkg_text_load_dir(NULL, &t), VKG_OK, "%s", vkg_last_error());
    enum { B = 8, T = 64 };
    uint8_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    for (int split = 0; split < 2; split++) {
        size_t n;
        const uint8_t *part = vkg_text_part(&t, (vkg_text_split)split, &n);
        for (uint64_t step = 0; step < 20; step++) {
            cr_assert_eq(vkg_text_batch(&t, (vkg_text_split)split, 1234, step, B, T, x, y), VKG_OK,
                         "%s", vkg_last_error());
            for (int b = 0; b < B; b++) {
                uint64_t pos = ref_random(1234, step * B + (uint64_t)b) % (n - T);
                cr_assert_eq(memcmp(x + b * T, part + pos, T), 0, "x window %d of step %llu", b,
                             (unsigned long long)step);
                cr_assert_eq(memcmp(y + b * T, part + pos + 1, T), 0);
                for (int i = 0; i + 1 < T; i++) cr_assert_eq(y[b * T + i], x[b * T + i + 1]);
            }
            cr_assert_eq(vkg_text_batch(&t, (vkg_text_split)split, 1234, step, B, T, x2, y2), VKG_OK);
            cr_assert_eq(memcmp(x, x2, sizeof x), 0, "not deterministic");
            cr_assert_eq(memcmp(y, y2, sizeof y), 0);
        }
    }
    /* Another seed or batch index gives other windows. */
    vkg_text_batch(&t, VKG_TEXT_TRAIN, 1234, 0, B, T, x, y);
    vkg_text_batch(&t, VKG_TEXT_TRAIN, 1235, 0, B, T, x2, y2);
    cr_assert_neq(memcmp(x, x2, sizeof x), 0);
    vkg_text_batch(&t, VKG_TEXT_TRAIN, 1234, 1, B, T, x2, y2);
    cr_assert_neq(memcmp(x, x2, sizeof x), 0);
    /* Known values of the generator (seed 0: SplitMix64's first output from state 0). */
    cr_assert_eq(vkg_text_random(0, 0), 0xE220A8397B1DCDAFull);
    cr_assert_eq(vkg_text_random(1234, 77), ref_random(1234, 77));
    vkg_text_free(&t);
    LEAK_CHECK();
}

Test(datasets, text_split_rule_and_file_list) {
    write_file(tpath("a"), "0123456789", 10);
    write_file(tpath("b"), "abcde", 5);
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s", tpath("a"));
    snprintf(pb, sizeof pb, "%s", tpath("b"));
    vkg_text t;
    cr_assert_eq(vkg_text_load_file(pa, &t), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(t.size, 10);
    cr_assert_eq(t.train_size, 9);
    cr_assert_eq(t.val_size, 1);
    vkg_text_free(&t);
    const char *both[] = { pb, pa };
    cr_assert_eq(vkg_text_load_files(both, 2, &t), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(t.size, 15);
    cr_assert_eq(t.train_size, 13);   /* floor(13.5) */
    cr_assert_eq(t.val_size, 2);
    cr_assert_eq(memcmp(t.data, "abcde0123456789", 15), 0);
    cr_assert_eq(t.file_count, 2);
    /* Validation holds 2 bytes: T = 1 works (the only window), T = 2 is refused. */
    uint8_t x[4], y[4];
    cr_assert_eq(vkg_text_batch(&t, VKG_TEXT_VAL, 1, 0, 2, 1, x, y), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(x[0], '8');
    cr_assert_eq(y[0], '9');
    cr_assert_eq(vkg_text_batch(&t, VKG_TEXT_VAL, 1, 0, 1, 2, x, y), VKG_ERR_INVALID);
    cr_assert_not_null(strstr(vkg_last_error(), "validation split holds 2 bytes"), "%s", vkg_last_error());
    cr_assert_eq(vkg_text_batch(&t, VKG_TEXT_TRAIN, 1, 0, 0, 2, x, y), VKG_ERR_INVALID);
    vkg_text_free(&t);
    write_file(tpath("one"), "z", 1);
    snprintf(pa, sizeof pa, "%s", tpath("one"));
    cr_assert_eq(vkg_text_load_file(pa, &t), VKG_OK);
    cr_assert_eq(t.train_size, 0);
    cr_assert_eq(t.val_size, 1);
    vkg_text_free(&t);
    LEAK_CHECK();
}

Test(datasets, text_dir_skips_links_indexes_and_directories) {
    write_file(tpath("b"), "BB", 2);
    write_file(tpath("a"), "A", 1);
    write_file(tpath("a.dat"), "index", 5);
    write_file(tpath(".hidden"), "hid", 3);
    char target[4096];
    snprintf(target, sizeof target, "%s", tpath("a"));
    cr_assert_eq(symlink(target, tpath("a.u8")), 0);
    cr_assert_eq(symlink(target, tpath("c")), 0);
    cr_assert_eq(mkdir(tpath("sub"), 0755), 0);
    vkg_text t;
    cr_assert_eq(vkg_text_load_dir(tmpdir, &t), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(t.file_count, 2);
    cr_assert_eq(t.size, 3);
    cr_assert_eq(memcmp(t.data, "ABB", 3), 0);
    vkg_text_free(&t);
    cr_assert_eq(vkg_text_load_dir(tpath("sub"), &t), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "no text files"), "%s", vkg_last_error());
    cr_assert_eq(vkg_text_load_dir(tpath("none"), &t), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "cannot open directory"), "%s", vkg_last_error());
    const char *bad[] = { tmpdir };
    cr_assert_eq(vkg_text_load_files(bad, 1, &t), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "not a regular file"), "%s", vkg_last_error());
    LEAK_CHECK();
}
