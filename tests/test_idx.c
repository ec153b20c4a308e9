/* IDX reader: every element type, plain and gzip files, memory images, and each malformed input
 * it must refuse with VKG_ERR_FORMAT and a message that names the file and the problem. Files
 * are written by the test itself (in a mkdtemp directory) with zlib's gz* writer. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "idx.h"
#include "io_test_support.h"

VKG_IO_TEST_SUITE(idx)

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Header: magic 00 00 code ndim, then big-endian dims. Returns the header length. */
static size_t make_header(uint8_t *buf, int code, int ndim, const uint32_t *dims) {
    buf[0] = 0; buf[1] = 0; buf[2] = (uint8_t)code; buf[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        buf[7 + 4 * i] = (uint8_t)dims[i];
    }
    return 4 + 4 * (size_t)ndim;
}

/* A u8 (2, 3, 4) file: element i holds i * 7 mod 256. */
static size_t make_u8_234(uint8_t *buf) {
    size_t h = make_header(buf, VKG_IDX_U8, 3, (uint32_t[]){ 2, 3, 4 });
    for (int i = 0; i < 24; i++) buf[h + i] = (uint8_t)(i * 7);
    return h + 24;
}

static void expect_fail(vkg_status got, vkg_status want, const char *path, const char *needle) {
    cr_assert_eq(got, want, "status %d (%s), expected %d; message: %s", got, vkg_status_name(got),
                 want, vkg_last_error());
    if (path) cr_assert_not_null(strstr(vkg_last_error(), path), "message does not name the file: %s",
                                 vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), needle), "message lacks \"%s\": %s", needle,
                       vkg_last_error());
}

Test(idx, reads_plain_u8) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    write_file(tpath("a.idx"), buf, n);
    vkg_idx idx;
    cr_assert_eq(vkg_idx_read(tpath("a.idx"), &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(idx.dtype_code, VKG_IDX_U8);
    cr_assert_eq(idx.ndim, 3);
    cr_assert_eq(idx.dims[0], 2);
    cr_assert_eq(idx.dims[1], 3);
    cr_assert_eq(idx.dims[2], 4);
    cr_assert_eq(idx.dims[3], 0);
    cr_assert_eq(idx.count, 24);
    cr_assert_eq(idx.item_size, 1);
    for (int i = 0; i < 24; i++) cr_assert_eq(((uint8_t *)idx.data)[i], (uint8_t)(i * 7));
    vkg_idx_free(&idx);
    cr_assert_null(idx.data);
    vkg_idx_free(&idx);  /* twice is harmless */
    LEAK_CHECK();
}

Test(idx, reads_gzip_same_as_plain) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    write_gz(tpath("a.idx.gz"), buf, n);
    vkg_idx idx;
    cr_assert_eq(vkg_idx_read(tpath("a.idx.gz"), &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(idx.count, 24);
    for (int i = 0; i < 24; i++) cr_assert_eq(((uint8_t *)idx.data)[i], (uint8_t)(i * 7));
    vkg_idx_free(&idx);
    LEAK_CHECK();
}

Test(idx, multibyte_types_are_big_endian_in_the_file) {
    uint8_t buf[128];
    /* i16 (3,): 1, -2, 0x1234 */
    size_t h = make_header(buf, VKG_IDX_I16, 1, (uint32_t[]){ 3 });
    uint8_t i16[] = { 0x00, 0x01, 0xFF, 0xFE, 0x12, 0x34 };
    memcpy(buf + h, i16, sizeof i16);
    vkg_idx idx;
    cr_assert_eq(vkg_idx_parse(buf, h + sizeof i16, &idx), VKG_OK, "%s", vkg_last_error());
    int16_t *s = idx.data;
    cr_assert_eq(idx.item_size, 2);
    cr_assert_eq(s[0], 1);
    cr_assert_eq(s[1], -2);
    cr_assert_eq(s[2], 0x1234);
    vkg_idx_free(&idx);
    /* i32 (1, 2): -3, 0x01020304 */
    h = make_header(buf, VKG_IDX_I32, 2, (uint32_t[]){ 1, 2 });
    uint8_t i32[] = { 0xFF, 0xFF, 0xFF, 0xFD, 0x01, 0x02, 0x03, 0x04 };
    memcpy(buf + h, i32, sizeof i32);
    cr_assert_eq(vkg_idx_parse(buf, h + sizeof i32, &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(((int32_t *)idx.data)[0], -3);
    cr_assert_eq(((int32_t *)idx.data)[1], 0x01020304);
    vkg_idx_free(&idx);
    /* f32 (2,): 1.5 (3FC00000), -2 (C0000000) */
    h = make_header(buf, VKG_IDX_F32, 1, (uint32_t[]){ 2 });
    uint8_t f32[] = { 0x3F, 0xC0, 0, 0, 0xC0, 0, 0, 0 };
    memcpy(buf + h, f32, sizeof f32);
    cr_assert_eq(vkg_idx_parse(buf, h + sizeof f32, &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(((float *)idx.data)[0], 1.5f);
    cr_assert_eq(((float *)idx.data)[1], -2.0f);
    vkg_idx_free(&idx);
    /* f64 (1,): 0.1 (3FB999999999999A); i8 (2,): -1, 127 */
    h = make_header(buf, VKG_IDX_F64, 1, (uint32_t[]){ 1 });
    uint8_t f64[] = { 0x3F, 0xB9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A };
    memcpy(buf + h, f64, sizeof f64);
    cr_assert_eq(vkg_idx_parse(buf, h + sizeof f64, &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(((double *)idx.data)[0], 0.1);
    cr_assert_eq(idx.item_size, 8);
    vkg_idx_free(&idx);
    h = make_header(buf, VKG_IDX_I8, 1, (uint32_t[]){ 2 });
    buf[h] = 0xFF;
    buf[h + 1] = 0x7F;
    cr_assert_eq(vkg_idx_parse(buf, h + 2, &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(((int8_t *)idx.data)[0], -1);
    cr_assert_eq(((int8_t *)idx.data)[1], 127);
    vkg_idx_free(&idx);
    LEAK_CHECK();
}

Test(idx, zero_dimension_is_an_empty_array) {
    uint8_t buf[16];
    size_t h = make_header(buf, VKG_IDX_F32, 2, (uint32_t[]){ 0, 0xFFFFFFFF });
    vkg_idx idx;
    cr_assert_eq(vkg_idx_parse(buf, h, &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(idx.count, 0);
    cr_assert_not_null(idx.data);
    vkg_idx_free(&idx);
    LEAK_CHECK();
}

Test(idx, missing_file_is_io_error) {
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("nope.idx"), &idx), VKG_ERR_IO, tpath("nope.idx"), "cannot open");
    cr_assert_null(idx.data);
    LEAK_CHECK();
}

Test(idx, directory_is_refused) {
    vkg_idx idx;
    vkg_status st = vkg_idx_read(tmpdir, &idx);
    cr_assert_neq(st, VKG_OK);
    cr_assert_not_null(strstr(vkg_last_error(), tmpdir), "%s", vkg_last_error());
    LEAK_CHECK();
}

Test(idx, wrong_magic) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    buf[1] = 0x01;
    write_file(tpath("m.idx"), buf, n);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("m.idx"), &idx), VKG_ERR_FORMAT, tpath("m.idx"), "bad IDX magic");
    cr_assert_null(idx.data);
    /* A text file is not IDX either. */
    write_file(tpath("t.idx"), "hello world\n", 12);
    expect_fail(vkg_idx_read(tpath("t.idx"), &idx), VKG_ERR_FORMAT, tpath("t.idx"), "bad IDX magic");
    LEAK_CHECK();
}

Test(idx, unknown_type_code) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    buf[2] = 0x0A;
    expect_fail(vkg_idx_parse(buf, n, &(vkg_idx){ 0 }), VKG_ERR_FORMAT, NULL, "type code 0x0a");
    LEAK_CHECK();
}

Test(idx, dimension_count_out_of_range) {
    uint8_t buf[64] = { 0, 0, 0x08, 0 };
    expect_fail(vkg_idx_parse(buf, 4, &(vkg_idx){ 0 }), VKG_ERR_FORMAT, NULL, "0 dimensions");
    buf[3] = 9;
    expect_fail(vkg_idx_parse(buf, sizeof buf, &(vkg_idx){ 0 }), VKG_ERR_FORMAT, NULL, "9 dimensions");
    LEAK_CHECK();
}

Test(idx, file_shorter_than_magic) {
    write_file(tpath("s.idx"), "\0\0", 2);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("s.idx"), &idx), VKG_ERR_FORMAT, tpath("s.idx"), "shorter than");
    write_file(tpath("e.idx"), "", 0);
    expect_fail(vkg_idx_read(tpath("e.idx"), &idx), VKG_ERR_FORMAT, tpath("e.idx"), "only 0 bytes");
    LEAK_CHECK();
}

Test(idx, header_cut_inside_dimensions) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    (void)n;
    write_file(tpath("h.idx"), buf, 4 + 4 + 2);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("h.idx"), &idx), VKG_ERR_FORMAT, tpath("h.idx"),
                "header ends after 1 of the 3 dimension sizes");
    LEAK_CHECK();
}

Test(idx, dims_whose_product_overflows) {
    uint8_t buf[64];
    uint32_t dims[8] = { 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 2, 2, 2, 2, 2 };
    size_t h = make_header(buf, VKG_IDX_U8, 8, dims);
    write_file(tpath("o.idx"), buf, h);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("o.idx"), &idx), VKG_ERR_FORMAT, tpath("o.idx"), "overflows");
    LEAK_CHECK();
}

Test(idx, promised_size_over_the_limit) {
    uint8_t buf[64];
    /* 2^31 * 2 = 4 GiB of u8 (no overflow, but over VKG_IDX_MAX_BYTES); f64 2^28 = 2 GiB + */
    size_t h = make_header(buf, VKG_IDX_U8, 2, (uint32_t[]){ 0x80000000u, 2 });
    expect_fail(vkg_idx_parse(buf, h, &(vkg_idx){ 0 }), VKG_ERR_FORMAT, NULL, "limit");
    h = make_header(buf, VKG_IDX_F64, 1, (uint32_t[]){ 0x10000001u });
    expect_fail(vkg_idx_parse(buf, h, &(vkg_idx){ 0 }), VKG_ERR_FORMAT, NULL, "limit");
    LEAK_CHECK();
}

Test(idx, fewer_bytes_than_the_header_claims) {
    uint8_t buf[64];
    size_t h = make_header(buf, VKG_IDX_U8, 2, (uint32_t[]){ 28, 28 });
    memset(buf + h, 1, 10);
    write_file(tpath("short.idx"), buf, h + 10);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("short.idx"), &idx), VKG_ERR_FORMAT, tpath("short.idx"),
                "header promises 784 bytes of data but the file holds 10");
    cr_assert_null(idx.data);
    /* The same through gzip: a well-formed stream that simply holds too little. */
    write_gz(tpath("short.idx.gz"), buf, h + 10);
    expect_fail(vkg_idx_read(tpath("short.idx.gz"), &idx), VKG_ERR_FORMAT, tpath("short.idx.gz"),
                "header promises 784 bytes of data but the file holds 10");
    LEAK_CHECK();
}

Test(idx, a_short_file_promising_a_lot_costs_little) {
    /* 1 GiB promised, 100 bytes present: refused without allocating the promise. */
    uint8_t buf[128] = { 0 };
    size_t h = make_header(buf, VKG_IDX_U8, 3, (uint32_t[]){ 1024, 1024, 1024 });
    expect_fail(vkg_idx_parse(buf, h + 100, &(vkg_idx){ 0 }), VKG_ERR_FORMAT, NULL,
                "header promises 1073741824 bytes of data but the file holds 100");
    LEAK_CHECK();
}

Test(idx, trailing_garbage_is_refused) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    buf[n] = '\n';
    write_file(tpath("g.idx"), buf, n + 1);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("g.idx"), &idx), VKG_ERR_FORMAT, tpath("g.idx"), "trailing bytes");
    write_gz(tpath("g.idx.gz"), buf, n + 1);
    expect_fail(vkg_idx_read(tpath("g.idx.gz"), &idx), VKG_ERR_FORMAT, tpath("g.idx.gz"), "trailing bytes");
    LEAK_CHECK();
}

/* Cuts a gzip file at several points: inside the deflate data and inside the CRC/size
 * trailer. zlib's gzread returns short counts without an error here; the reader must see it. */
Test(idx, truncated_gzip) {
    uint8_t buf[4096];
    size_t h = make_header(buf, VKG_IDX_U8, 2, (uint32_t[]){ 50, 80 });
    for (size_t i = 0; i < 4000; i++) buf[h + i] = (uint8_t)((i * 2654435761u) >> 13);
    write_gz(tpath("full.gz"), buf, h + 4000);
    long full = file_size(tpath("full.gz"));
    FILE *f = fopen(tpath("full.gz"), "rb");
    uint8_t gz[8192];
    size_t gn = fread(gz, 1, sizeof gz, f);
    fclose(f);
    cr_assert_eq((long)gn, full);
    long cuts[] = { 1, 4, 8, full / 2, 20 };  /* bytes removed from the end */
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        write_file(tpath("cut.gz"), gz, gn - (size_t)cuts[c]);
        vkg_idx idx;
        vkg_status st = vkg_idx_read(tpath("cut.gz"), &idx);
        cr_assert_eq(st, VKG_ERR_FORMAT, "cut %ld: status %d, %s", cuts[c], st, vkg_last_error());
        cr_assert_not_null(strstr(vkg_last_error(), tpath("cut.gz")), "%s", vkg_last_error());
        cr_assert(strstr(vkg_last_error(), "truncated") || strstr(vkg_last_error(), "holds"),
                  "cut %ld: %s", cuts[c], vkg_last_error());
        cr_assert_null(idx.data);
        /* The memory parser agrees. */
        st = vkg_idx_parse(gz, gn - (size_t)cuts[c], &idx);
        cr_assert_eq(st, VKG_ERR_FORMAT, "memory cut %ld: %s", cuts[c], vkg_last_error());
    }
    vkg_idx idx;
    cr_assert_eq(vkg_idx_read(tpath("full.gz"), &idx), VKG_OK, "%s", vkg_last_error());
    vkg_idx_free(&idx);
    cr_assert_eq(vkg_idx_parse(gz, gn, &idx), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(memcmp(idx.data, buf + h, 4000), 0);
    vkg_idx_free(&idx);
    LEAK_CHECK();
}

Test(idx, gzip_with_bad_crc) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    write_gz(tpath("c.gz"), buf, n);
    FILE *f = fopen(tpath("c.gz"), "rb");
    uint8_t gz[256];
    size_t gn = fread(gz, 1, sizeof gz, f);
    fclose(f);
    gz[gn - 8] ^= 0xFF;  /* first byte of the CRC-32 */
    write_file(tpath("c.gz"), gz, gn);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("c.gz"), &idx), VKG_ERR_FORMAT, tpath("c.gz"), "gzip");
    expect_fail(vkg_idx_parse(gz, gn, &idx), VKG_ERR_FORMAT, NULL, "gzip");
    LEAK_CHECK();
}

Test(idx, gzip_bomb_is_not_inflated) {
    /* 64 MiB of zeros compress to ~64 KB; the header promises 24 bytes. Reading must stop after
     * the promise plus one byte and refuse the rest without inflating it all. */
    size_t big = (size_t)64 << 20;
    uint8_t *z = calloc(1, big);
    cr_assert_not_null(z);
    size_t h = make_header(z, VKG_IDX_U8, 1, (uint32_t[]){ 24 });
    (void)h;
    write_gz(tpath("bomb.gz"), z, big);
    free(z);
    vkg_idx idx;
    expect_fail(vkg_idx_read(tpath("bomb.gz"), &idx), VKG_ERR_FORMAT, tpath("bomb.gz"), "trailing bytes");
    LEAK_CHECK();
}

Test(idx, memory_gzip_members_and_junk_like_gzread) {
    uint8_t buf[64];
    size_t n = make_u8_234(buf);
    /* Two members: header in the first, data in the second; then junk. */
    uint8_t out[512];
    size_t on = 0;
    size_t parts[2][2] = { { 0, 10 }, { 10, n - 10 } };
    for (int m = 0; m < 2; m++) {
        z_stream zs = { 0 };
        cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
        zs.next_in = buf + parts[m][0];
        zs.avail_in = (uInt)parts[m][1];
        zs.next_out = out + on;
        zs.avail_out = (uInt)(sizeof out - on);
        cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
        on += zs.total_out;
        deflateEnd(&zs);
    }
    memcpy(out + on, "JUNK", 4);
    write_file(tpath("two.gz"), out, on + 4);
    vkg_idx a, b;
    cr_assert_eq(vkg_idx_read(tpath("two.gz"), &a), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_idx_parse(out, on + 4, &b), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(a.count, 24);
    cr_assert_eq(b.count, 24);
    cr_assert_eq(memcmp(a.data, b.data, 24), 0);
    cr_assert_eq(memcmp(a.data, buf + (n - 24), 24), 0);
    vkg_idx_free(&a);
    vkg_idx_free(&b);
    LEAK_CHECK();
}

Test(idx, bad_arguments) {
    vkg_idx idx;
    cr_assert_eq(vkg_idx_read(NULL, &idx), VKG_ERR_INVALID);
    cr_assert_eq(vkg_idx_read(tpath("x"), NULL), VKG_ERR_INVALID);
    cr_assert_eq(vkg_idx_parse(NULL, 4, &idx), VKG_ERR_INVALID);
    expect_fail(vkg_idx_parse(NULL, 0, &idx), VKG_ERR_FORMAT, NULL, "only 0 bytes");
    vkg_idx_free(NULL);
    cr_assert_eq(vkg_idx_item_size(0x0D), 4);
    cr_assert_eq(vkg_idx_item_size(0x0A), 0);
    cr_assert_str_eq(vkg_idx_dtype_name(0x0E), "f64");
    LEAK_CHECK();
}
