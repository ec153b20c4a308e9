/* CIFAR-10 binary reader on small batch files written by the test in a mkdtemp directory:
 * records split into labels and channel planes, several files concatenated, the directory
 * loader, and the files it must refuse. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cifar10.h"
#include "io_test_support.h"

VKG_IO_TEST_SUITE(cifar)

/* Record r of a file tagged `tag`: label (r + tag) % 10; pixel c of plane p holds
 * (r * 3 + p * 5 + c + tag) mod 256. */
static uint8_t pixel(int tag, int r, int p, int c) { return (uint8_t)(r * 3 + p * 5 + c + tag); }

static void write_batch(const char *path, int tag, int records, int bad_label_at, size_t extra) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (int r = 0; r < records; r++) {
        fputc(r == bad_label_at ? 10 : (r + tag) % 10, f);
        for (int p = 0; p < 3; p++)
            for (int c = 0; c < 1024; c++) fputc(pixel(tag, r, p, c), f);
    }
    for (size_t i = 0; i < extra; i++) fputc(0, f);
    cr_assert_eq(fclose(f), 0);
}

static void check_records(const vkg_cifar10 *c, size_t first, int tag, int records) {
    for (int r = 0; r < records; r++) {
        size_t i = first + (size_t)r;
        cr_assert_eq(c->labels[i], (r + tag) % 10, "label of record %d", r);
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < 1024; k += 97)
                cr_assert_eq(c->images[i * 3072 + (size_t)p * 1024 + (size_t)k], pixel(tag, r, p, k));
        cr_assert_eq(c->images[i * 3072 + 3071], pixel(tag, r, 2, 1023));
    }
}

Test(cifar, reads_one_batch) {
    write_batch(tpath("b.bin"), 0, 3, -1, 0);
    vkg_cifar10 c;
    cr_assert_eq(vkg_cifar10_read(tpath("b.bin"), &c), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(c.count, 3);
    check_records(&c, 0, 0, 3);
    vkg_cifar10_free(&c);
    cr_assert_null(c.images);
    vkg_cifar10_free(&c);
    LEAK_CHECK();
}

Test(cifar, concatenates_files_in_order) {
    write_batch(tpath("one.bin"), 1, 2, -1, 0);
    write_batch(tpath("two.bin"), 7, 4, -1, 0);
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", tpath("one.bin"));
    snprintf(b, sizeof b, "%s", tpath("two.bin"));
    const char *paths[] = { a, b };
    vkg_cifar10 c;
    cr_assert_eq(vkg_cifar10_read_files(paths, 2, &c), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(c.count, 6);
    check_records(&c, 0, 1, 2);
    check_records(&c, 2, 7, 4);
    vkg_cifar10_free(&c);
    LEAK_CHECK();
}

Test(cifar, loads_a_directory) {
    char name[64];
    for (int k = 1; k <= 5; k++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", k);
        write_batch(tpath(name), k, k, -1, 0);
    }
    write_batch(tpath("test_batch.bin"), 9, 2, -1, 0);
    vkg_cifar10 train, test;
    cr_assert_eq(vkg_cifar10_load(tmpdir, &train, &test), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(train.count, 1 + 2 + 3 + 4 + 5);
    cr_assert_eq(test.count, 2);
    size_t at = 0;
    for (int k = 1; k <= 5; k++) {
        check_records(&train, at, k, k);
        at += (size_t)k;
    }
    check_records(&test, 0, 9, 2);
    vkg_cifar10_free(&train);
    vkg_cifar10_free(&test);
    /* Only the test split. */
    cr_assert_eq(vkg_cifar10_load(tmpdir, NULL, &test), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(test.count, 2);
    vkg_cifar10_free(&test);
    LEAK_CHECK();
}

Test(cifar, size_not_a_multiple_of_3073) {
    write_batch(tpath("odd.bin"), 0, 2, -1, 5);
    vkg_cifar10 c;
    cr_assert_eq(vkg_cifar10_read(tpath("odd.bin"), &c), VKG_ERR_FORMAT);
    cr_assert_not_null(strstr(vkg_last_error(), tpath("odd.bin")), "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), "size 6151 is not a multiple of the 3073-byte record"),
                       "%s", vkg_last_error());
    cr_assert_null(c.images);
    LEAK_CHECK();
}

Test(cifar, label_out_of_range) {
    write_batch(tpath("lab.bin"), 0, 3, 2, 0);
    vkg_cifar10 c;
    cr_assert_eq(vkg_cifar10_read(tpath("lab.bin"), &c), VKG_ERR_FORMAT);
    cr_assert_not_null(strstr(vkg_last_error(), "record 2 has label 10"), "%s", vkg_last_error());
    cr_assert_null(c.labels);
    LEAK_CHECK();
}

Test(cifar, missing_and_empty_files) {
    vkg_cifar10 c;
    cr_assert_eq(vkg_cifar10_read(tpath("none.bin"), &c), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "cannot open"), "%s", vkg_last_error());
    cr_assert_eq(vkg_cifar10_read(tmpdir, &c), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "not a regular file"), "%s", vkg_last_error());
    write_batch(tpath("empty.bin"), 0, 0, -1, 0);
    cr_assert_eq(vkg_cifar10_read(tpath("empty.bin"), &c), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(c.count, 0);
    vkg_cifar10_free(&c);
    /* A directory missing data_batch_3.bin names it. */
    cr_assert_eq(vkg_cifar10_load(tmpdir, &c, NULL), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "data_batch_1.bin"), "%s", vkg_last_error());
    LEAK_CHECK();
}

Test(cifar, parse_memory) {
    static uint8_t buf[2 * 3073];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)i;
    buf[0] = 3;
    buf[3073] = 9;
    vkg_cifar10 c;
    cr_assert_eq(vkg_cifar10_parse(buf, sizeof buf, &c), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(c.count, 2);
    cr_assert_eq(c.labels[0], 3);
    cr_assert_eq(c.labels[1], 9);
    cr_assert_eq(c.images[0], 1);
    cr_assert_eq(c.images[3072], (uint8_t)3074);
    vkg_cifar10_free(&c);
    cr_assert_eq(vkg_cifar10_parse(buf, 3072, &c), VKG_ERR_FORMAT);
    buf[3073] = 200;
    cr_assert_eq(vkg_cifar10_parse(buf, sizeof buf, &c), VKG_ERR_FORMAT);
    cr_assert_not_null(strstr(vkg_last_error(), "record 1 has label 200"), "%s", vkg_last_error());
    cr_assert_eq(vkg_cifar10_read_files(NULL, 0, &c), VKG_ERR_INVALID);
    LEAK_CHECK();
}
