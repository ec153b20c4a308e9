/* safetensors: files written by vkgrad decoded byte by byte here, fixtures from an independent
 * minimal writer loaded, save -> load round trips, every malformed header the reader must
 * refuse, and writes that fail without touching the previous file. */
#define _XOPEN_SOURCE 700
#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vkgrad/safetensors.h"
#include "io_test_support.h"

VKG_IO_TEST_SUITE(safetensors)

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len ? (size_t)len : 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* The independent minimal writer: u64 LE length, the header text as given (padded with spaces
 * to a multiple of 8 when pad is set), then the data. Returns the file size. */
static size_t raw_write(const char *path, const char *header, const void *data, size_t dlen, bool pad) {
    size_t hlen = strlen(header), padded = pad ? (hlen + 7) / 8 * 8 : hlen;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 8; i++) fputc((int)(((uint64_t)padded >> (8 * i)) & 0xFF), f);
    fwrite(header, 1, hlen, f);
    for (size_t i = hlen; i < padded; i++) fputc(' ', f);
    if (dlen) fwrite(data, 1, dlen, f);
    cr_assert_eq(fclose(f), 0);
    return 8 + padded + dlen;
}

/* A malformed file must be refused by both the file reader and the memory parser, with
 * VKG_ERR_FORMAT and a message containing needle (and, for the file, its path). */
static void expect_bad_file(const char *path, const char *needle) {
    vkg_safetensors st;
    vkg_status s = vkg_safetensors_read(path, &st);
    cr_assert_eq(s, VKG_ERR_FORMAT, "status %d, message: %s", s, vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), path), "message does not name the file: %s",
                       vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), needle), "message lacks \"%s\": %s", needle,
                       vkg_last_error());
    cr_assert_eq(st.count, 0);
    cr_assert_null(st.tensors);
    size_t n;
    uint8_t *b = slurp(path, &n);
    s = vkg_safetensors_parse(b, n, &st);
    cr_assert_eq(s, VKG_ERR_FORMAT, "parse: status %d, message: %s", s, vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), needle), "parse: message lacks \"%s\": %s", needle,
                       vkg_last_error());
    free(b);
}

static void expect_bad(const char *header, const void *data, size_t dlen, const char *needle) {
    raw_write(tpath("bad.safetensors"), header, data, dlen, true);
    expect_bad_file(tpath("bad.safetensors"), needle);
}

static const uint8_t zeros[64];

/* ---- the writer, checked byte by byte --------------------------------------------------- */

Test(safetensors, written_file_decoded_byte_by_byte) {
    float a[6] = { 1, 2, 3, 4, 5, -6.5f };
    uint16_t b[2] = { 0x3C00, 0xC000 };         /* F16 1, -2 */
    uint8_t c[3] = { 7, 8, 9 };
    int64_t d[1] = { -1 };
    vkg_st_tensor ts[] = {                      /* deliberately not in file order */
        { .name = "c", .dtype = VKG_ST_U8, .ndim = 1, .shape = { 3 }, .data = c, .nbytes = 3 },
        { .name = "b", .dtype = VKG_ST_F16, .ndim = 1, .shape = { 2 }, .data = b, .nbytes = 4 },
        { .name = "a", .dtype = VKG_ST_F32, .ndim = 2, .shape = { 2, 3 }, .data = a, .nbytes = 24 },
        { .name = "d", .dtype = VKG_ST_I64, .ndim = 0, .data = d, .nbytes = 8 },
    };
    const char *meta[] = { "format", "pt", "note", "caf\xc3\xa9 \"q\"" };
    cr_assert_eq(vkg_safetensors_write(tpath("w.safetensors"), ts, 4, meta, 2), VKG_OK, "%s",
                 vkg_last_error());
    size_t n;
    uint8_t *f = slurp(tpath("w.safetensors"), &n);
    /* Order: by dtype size (I64 8, F32 4, F16 2, U8 1), then name; metadata first. */
    const char *want = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"caf\xc3\xa9 \\\"q\\\"\"},"
                       "\"d\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
                       "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[32,36]},"
                       "\"c\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[36,39]}}";
    size_t wlen = strlen(want), hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f[i];
    cr_assert_eq(hlen % 8, 0, "header length %zu is not a multiple of 8", hlen);
    cr_assert(hlen >= wlen && hlen < wlen + 8, "header length %zu for %zu bytes of JSON", hlen, wlen);
    cr_assert_eq(memcmp(f + 8, want, wlen), 0, "header is\n%.*s\nexpected\n%s", (int)hlen, f + 8, want);
    for (size_t i = wlen; i < hlen; i++) cr_assert_eq(f[8 + i], ' ', "padding byte %zu", i);
    cr_assert_eq(n, 8 + hlen + 39, "file size %zu", n);
    const uint8_t *data = f + 8 + hlen;
    cr_assert_eq(memcmp(data, d, 8), 0);
    cr_assert_eq(memcmp(data + 8, a, 24), 0);
    cr_assert_eq(memcmp(data + 32, b, 4), 0);
    cr_assert_eq(memcmp(data + 36, c, 3), 0);
    free(f);
    /* No temporary file is left beside it. */
    DIR *dir = opendir(tmpdir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.') entries++;
    closedir(dir);
    cr_assert_eq(entries, 1);
    LEAK_CHECK();
}

Test(safetensors, empty_file_has_the_empty_header) {
    cr_assert_eq(vkg_safetensors_write(tpath("e.safetensors"), NULL, 0, NULL, 0), VKG_OK, "%s",
                 vkg_last_error());
    size_t n;
    uint8_t *f = slurp(tpath("e.safetensors"), &n);
    cr_assert_eq(n, 16);
    cr_assert_eq(f[0], 8);
    cr_assert_eq(memcmp(f + 8, "{}      ", 8), 0);
    free(f);
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(tpath("e.safetensors"), &st), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(st.count, 0);
    cr_assert_null(vkg_safetensors_find(&st, "x"));
    vkg_safetensors_free(&st);
    LEAK_CHECK();
}

/* ---- reading what others wrote ---------------------------------------------------------- */

Test(safetensors, independent_fixture_loads) {
    /* Unpadded header, entries in no particular order, an extra unknown key, spaces. */
    const char *hdr = "{ \"z.bias\": {\"dtype\": \"BF16\", \"shape\": [2], \"data_offsets\": [16, 20], \"x\": 1},\n"
                      "  \"__metadata__\": {\"step\": \"10\"},\n"
                      "  \"a.w\": {\"dtype\": \"I32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},\n"
                      "  \"e\": {\"dtype\": \"F32\", \"shape\": [3, 0], \"data_offsets\": [20, 20]} }";
    uint8_t data[20];
    int32_t w[4] = { 1, -2, 3, 0x7FFFFFFF };
    memcpy(data, w, 16);
    data[16] = 0x80; data[17] = 0x3F; data[18] = 0x00; data[19] = 0xC0;   /* BF16 1.0, -2.0 */
    raw_write(tpath("fx.safetensors"), hdr, data, 20, false);
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(tpath("fx.safetensors"), &st), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(st.count, 3);
    cr_assert_str_eq(st.tensors[0].name, "a.w");     /* sorted by name */
    cr_assert_str_eq(st.tensors[1].name, "e");
    cr_assert_str_eq(st.tensors[2].name, "z.bias");
    const vkg_st_tensor *t = vkg_safetensors_find(&st, "a.w");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, VKG_ST_I32);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->nbytes, 16);
    cr_assert_eq(memcmp(t->data, w, 16), 0);
    t = vkg_safetensors_find(&st, "z.bias");
    cr_assert_eq(t->dtype, VKG_ST_BF16);
    cr_assert_eq(((const uint8_t *)t->data)[1], 0x3F);
    t = vkg_safetensors_find(&st, "e");
    cr_assert_eq(t->nbytes, 0);
    cr_assert_eq(t->shape[1], 0);
    cr_assert_null(vkg_safetensors_find(&st, "nope"));
    cr_assert_str_eq(vkg_safetensors_metadata(&st, "step"), "10");
    cr_assert_null(vkg_safetensors_metadata(&st, "other"));
    cr_assert_eq(st.data_size, 20);
    vkg_safetensors_free(&st);
    cr_assert_null(st.tensors);
    vkg_safetensors_free(&st);
    LEAK_CHECK();
}

/* ---- round trips ------------------------------------------------------------------------ */

Test(safetensors, save_load_identical_every_dtype) {
    enum { N = 40 };
    vkg_st_tensor ts[N];
    char names[N][32];
    uint8_t *bufs[N];
    for (int i = 0; i < N; i++) {
        vkg_st_dtype dt = (vkg_st_dtype)(i % VKG_ST_DTYPE_COUNT);
        int ndim = i % 5;                                  /* 0..4, includes scalars */
        snprintf(names[i], sizeof names[i], "layer%02d.%s", (i * 7) % N, vkg_st_dtype_name(dt));
        ts[i] = (vkg_st_tensor){ .name = names[i], .dtype = dt, .ndim = ndim };
        size_t numel = 1;
        for (int k = 0; k < ndim; k++) {
            ts[i].shape[k] = (i + k) % 4 + (i == 13 && k == 0 ? -((i + k) % 4) : 1);  /* one has a 0 dim */
            numel *= (size_t)ts[i].shape[k];
        }
        ts[i].nbytes = numel * vkg_st_dtype_size(dt);
        bufs[i] = malloc(ts[i].nbytes + 1);
        for (size_t b = 0; b < ts[i].nbytes; b++) bufs[i][b] = (uint8_t)(b * 31 + (size_t)i);
        ts[i].data = bufs[i];
    }
    const char *meta[] = { "a", "1", "b", "" };
    cr_assert_eq(vkg_safetensors_write(tpath("rt.safetensors"), ts, N, meta, 2), VKG_OK, "%s",
                 vkg_last_error());
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(tpath("rt.safetensors"), &st), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(st.count, N);
    cr_assert_eq(st.metadata_count, 2);
    cr_assert_str_eq(vkg_safetensors_metadata(&st, "b"), "");
    for (int i = 0; i < N; i++) {
        const vkg_st_tensor *t = vkg_safetensors_find(&st, names[i]);
        cr_assert_not_null(t, "%s missing", names[i]);
        cr_assert_eq(t->dtype, ts[i].dtype);
        cr_assert_eq(t->ndim, ts[i].ndim);
        for (int k = 0; k < t->ndim; k++) cr_assert_eq(t->shape[k], ts[i].shape[k]);
        cr_assert_eq(t->nbytes, ts[i].nbytes);
        if (t->nbytes) cr_assert_eq(memcmp(t->data, ts[i].data, t->nbytes), 0, "%s differs", names[i]);
        /* The writer's order keeps every tensor aligned to its element size. */
        cr_assert_eq((uintptr_t)t->data % vkg_st_dtype_size(t->dtype), 0, "%s misaligned", names[i]);
    }
    /* Writing what was read gives the same bytes. */
    cr_assert_eq(vkg_safetensors_write(tpath("rt2.safetensors"), st.tensors, st.count, meta, 2),
                 VKG_OK, "%s", vkg_last_error());
    size_t n1, n2;
    uint8_t *f1 = slurp(tpath("rt.safetensors"), &n1), *f2 = slurp(tpath("rt2.safetensors"), &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(f1, f2, n1), 0);
    /* The memory parser sees the same. */
    vkg_safetensors sm;
    cr_assert_eq(vkg_safetensors_parse(f1, n1, &sm), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(sm.count, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(memcmp(sm.tensors[i].data, st.tensors[i].data, st.tensors[i].nbytes), 0);
    vkg_safetensors_free(&sm);
    free(f1);
    free(f2);
    vkg_safetensors_free(&st);
    for (int i = 0; i < N; i++) free(bufs[i]);
    LEAK_CHECK();
}

Test(safetensors, overwrite_keeps_mode) {
    uint8_t v = 1;
    vkg_st_tensor t = { .name = "v", .dtype = VKG_ST_U8, .ndim = 1, .shape = { 1 }, .data = &v, .nbytes = 1 };
    cr_assert_eq(vkg_safetensors_write(tpath("m.safetensors"), &t, 1, NULL, 0), VKG_OK);
    struct stat sb;
    cr_assert_eq(stat(tpath("m.safetensors"), &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0644);
    cr_assert_eq(chmod(tpath("m.safetensors"), 0600), 0);
    v = 2;
    cr_assert_eq(vkg_safetensors_write(tpath("m.safetensors"), &t, 1, NULL, 0), VKG_OK);
    cr_assert_eq(stat(tpath("m.safetensors"), &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(tpath("m.safetensors"), &st), VKG_OK);
    cr_assert_eq(*(const uint8_t *)st.tensors[0].data, 2);
    vkg_safetensors_free(&st);
    LEAK_CHECK();
}

/* ---- failed writes leave the previous file intact ---------------------------------------- */

static void write_old(const char *path, size_t *n_old, uint8_t **old) {
    float w[4] = { 1, 2, 3, 4 };
    vkg_st_tensor t = { .name = "w", .dtype = VKG_ST_F32, .ndim = 1, .shape = { 4 }, .data = w, .nbytes = 16 };
    cr_assert_eq(vkg_safetensors_write(path, &t, 1, NULL, 0), VKG_OK, "%s", vkg_last_error());
    *old = slurp(path, n_old);
}

static void expect_only(const char *name) {
    DIR *dir = opendir(tmpdir);
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.')
            cr_assert_str_eq(e->d_name, name, "unexpected file %s left behind", e->d_name);
    closedir(dir);
}

Test(safetensors, failed_write_into_missing_directory) {
    char p[4200];
    snprintf(p, sizeof p, "%s/no/such/dir/x.safetensors", tmpdir);
    vkg_status s = vkg_safetensors_write(p, NULL, 0, NULL, 0);
    cr_assert_eq(s, VKG_ERR_IO, "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), p), "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), "temporary"), "%s", vkg_last_error());
    LEAK_CHECK();
}

Test(safetensors, failed_write_bad_arguments_keeps_old_file) {
    size_t n_old;
    uint8_t *old;
    write_old(tpath("k.safetensors"), &n_old, &old);
    float w[4] = { 0 };
    vkg_st_tensor bad[] = {
        { .name = "w", .dtype = VKG_ST_F32, .ndim = 1, .shape = { 4 }, .data = w, .nbytes = 12 },
        { .name = "w", .dtype = VKG_ST_F32, .ndim = 1, .shape = { 3 }, .data = w, .nbytes = 12 },
    };
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), bad, 1, NULL, 0), VKG_ERR_INVALID);
    cr_assert_not_null(strstr(vkg_last_error(), "nbytes is 12"), "%s", vkg_last_error());
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), bad + 1, 1, NULL, 0), VKG_OK);
    free(old);
    old = slurp(tpath("k.safetensors"), &n_old);
    bad[0].nbytes = 16;
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), bad, 2, NULL, 0), VKG_ERR_INVALID);
    cr_assert_not_null(strstr(vkg_last_error(), "duplicate tensor name 'w'"), "%s", vkg_last_error());
    bad[0].name = "__metadata__";
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), bad, 1, NULL, 0), VKG_ERR_INVALID);
    bad[0].name = "x";
    bad[0].dtype = (vkg_st_dtype)17;
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), bad, 1, NULL, 0), VKG_ERR_INVALID);
    bad[0].dtype = VKG_ST_F32;
    bad[0].shape[0] = -4;
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), bad, 1, NULL, 0), VKG_ERR_INVALID);
    const char *dupmeta[] = { "k", "1", "k", "2" };
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), NULL, 0, dupmeta, 2), VKG_ERR_INVALID);
    const char *badutf[] = { "k", "\xff" };
    cr_assert_eq(vkg_safetensors_write(tpath("k.safetensors"), NULL, 0, badutf, 1), VKG_ERR_INVALID);
    size_t n_now;
    uint8_t *now = slurp(tpath("k.safetensors"), &n_now);
    cr_assert_eq(n_now, n_old);
    cr_assert_eq(memcmp(now, old, n_old), 0);
    expect_only("k.safetensors");
    free(now);
    free(old);
    LEAK_CHECK();
}

Test(safetensors, failed_rename_removes_the_temporary) {
    /* The target is a directory: the temporary file is written, rename fails, and it must go. */
    cr_assert_eq(mkdir(tpath("target"), 0755), 0);
    uint8_t v = 3;
    vkg_st_tensor t = { .name = "v", .dtype = VKG_ST_U8, .ndim = 1, .shape = { 1 }, .data = &v, .nbytes = 1 };
    vkg_status s = vkg_safetensors_write(tpath("target"), &t, 1, NULL, 0);
    cr_assert_eq(s, VKG_ERR_IO, "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), "rename"), "%s", vkg_last_error());
    expect_only("target");
    LEAK_CHECK();
}

Test(safetensors, failed_write_midway_keeps_old_file) {
    /* A file-size limit makes the data write fail (EFBIG) after the temporary file exists. */
    size_t n_old;
    uint8_t *old;
    write_old(tpath("big.safetensors"), &n_old, &old);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { .rlim_cur = 4096, .rlim_max = RLIM_INFINITY };
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    size_t nbig = 1 << 20;
    uint8_t *big = calloc(1, nbig);
    vkg_st_tensor t = { .name = "big", .dtype = VKG_ST_U8, .ndim = 1, .shape = { (int64_t)nbig },
                        .data = big, .nbytes = nbig };
    vkg_status s = vkg_safetensors_write(tpath("big.safetensors"), &t, 1, NULL, 0);
    cr_assert_eq(s, VKG_ERR_IO, "%s", vkg_last_error());
    cr_assert_not_null(strstr(vkg_last_error(), "cannot write"), "%s", vkg_last_error());
    size_t n_now;
    uint8_t *now = slurp(tpath("big.safetensors"), &n_now);
    cr_assert_eq(n_now, n_old);
    cr_assert_eq(memcmp(now, old, n_old), 0);
    expect_only("big.safetensors");
    free(now);
    free(old);
    free(big);
    LEAK_CHECK();
}

Test(safetensors, read_only_directory) {
    if (geteuid() == 0) {
        teardown();  /* a skipped test does not reach .fini */
        cr_skip_test("running as root: directory permissions do not stop root");
    }
    size_t n_old;
    uint8_t *old;
    write_old(tpath("ro.safetensors"), &n_old, &old);
    cr_assert_eq(chmod(tmpdir, 0555), 0);
    vkg_status s = vkg_safetensors_write(tpath("ro.safetensors"), NULL, 0, NULL, 0);
    chmod(tmpdir, 0755);
    cr_assert_eq(s, VKG_ERR_IO, "%s", vkg_last_error());
    size_t n_now;
    uint8_t *now = slurp(tpath("ro.safetensors"), &n_now);
    cr_assert_eq(n_now, n_old);
    cr_assert_eq(memcmp(now, old, n_old), 0);
    free(now);
    free(old);
    LEAK_CHECK();
}

/* ---- malformed files: one test each ------------------------------------------------------ */

Test(safetensors, missing_file) {
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(tpath("none"), &st), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "cannot open"), "%s", vkg_last_error());
    cr_assert_eq(vkg_safetensors_read(tmpdir, &st), VKG_ERR_IO);
    cr_assert_not_null(strstr(vkg_last_error(), "not a regular file"), "%s", vkg_last_error());
    LEAK_CHECK();
}

Test(safetensors, file_shorter_than_8_bytes) {
    FILE *f = fopen(tpath("s.safetensors"), "wb");
    fwrite("\x02\0\0\0\0", 1, 5, f);
    fclose(f);
    expect_bad_file(tpath("s.safetensors"), "shorter than the 8-byte header length");
    LEAK_CHECK();
}

Test(safetensors, header_length_past_eof) {
    FILE *f = fopen(tpath("p.safetensors"), "wb");
    fwrite("\x40\0\0\0\0\0\0\0{}", 1, 10, f);
    fclose(f);
    expect_bad_file(tpath("p.safetensors"), "header length 64 runs past the end");
    LEAK_CHECK();
}

Test(safetensors, header_length_absurd) {
    FILE *f = fopen(tpath("h.safetensors"), "wb");
    fwrite("\0\0\0\0\0\x01\0\0{}", 1, 10, f);   /* 2^40 */
    fclose(f);
    expect_bad_file(tpath("h.safetensors"), "absurdly large");
    f = fopen(tpath("h.safetensors"), "wb");
    fwrite("\xff\xff\xff\xff\xff\xff\xff\xff{}", 1, 10, f);
    fclose(f);
    expect_bad_file(tpath("h.safetensors"), "absurdly large");
    LEAK_CHECK();
}

Test(safetensors, bad_json) {
    expect_bad("{\"a\": {\"dtype\": \"F32\",", NULL, 0, "not valid JSON");
    expect_bad("{} {}", NULL, 0, "not valid JSON");
    expect_bad("", NULL, 0, "not valid JSON");
    LEAK_CHECK();
}

Test(safetensors, header_not_utf8_or_with_nul) {
    expect_bad("{\"\xc3\x28\": 1}", NULL, 0, "not valid UTF-8");
    /* A NUL inside the header: written by hand, since strlen stops at it. */
    FILE *f = fopen(tpath("n.safetensors"), "wb");
    fwrite("\x08\0\0\0\0\0\0\0{}\0     ", 1, 16, f);
    fclose(f);
    expect_bad_file(tpath("n.safetensors"), "not valid UTF-8");
    LEAK_CHECK();
}

Test(safetensors, header_not_an_object) {
    expect_bad("[1, 2]", NULL, 0, "not a JSON object");
    LEAK_CHECK();
}

Test(safetensors, entry_not_an_object) {
    expect_bad("{\"w\": [1, 2]}", NULL, 0, "tensor 'w': entry is not a JSON object");
    LEAK_CHECK();
}

Test(safetensors, unknown_dtype_is_named) {
    expect_bad("{\"w\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", zeros, 8,
               "unsupported dtype \"F64\"");
    expect_bad("{\"w\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", zeros, 4,
               "dtype is missing or not a string");
    expect_bad("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", zeros, 4,
               "dtype is missing");
    LEAK_CHECK();
}

Test(safetensors, shape_not_a_list_of_non_negative_integers) {
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": 4, \"data_offsets\": [0, 4]}}", zeros, 4,
               "shape is missing or not a list");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [2, -2], \"data_offsets\": [0, 4]}}", zeros, 4,
               "shape[1] is not a non-negative integer");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", zeros, 4,
               "shape[0] is not a non-negative integer");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [\"4\"], \"data_offsets\": [0, 4]}}", zeros, 4,
               "shape[0] is not a non-negative integer");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [1e300], \"data_offsets\": [0, 4]}}", zeros, 4,
               "shape[0] is not a non-negative integer");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,4], \"data_offsets\": [0, 4]}}",
               zeros, 4, "9 dimensions");
    LEAK_CHECK();
}

Test(safetensors, shape_whose_size_overflows) {
    expect_bad("{\"w\": {\"dtype\": \"I64\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 8]}}",
               zeros, 8, "overflows");
    LEAK_CHECK();
}

Test(safetensors, offsets_not_a_pair_of_integers) {
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0]}}", zeros, 4,
               "data_offsets is missing or not a [begin, end] pair");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4]}}", zeros, 4,
               "data_offsets is missing or not a [begin, end] pair");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4, 8]}}", zeros, 4,
               "not a [begin, end] pair");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, \"4\"]}}", zeros, 4,
               "data_offsets are not non-negative integers");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [-1, 3]}}", zeros, 4,
               "data_offsets are not non-negative integers");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0.5, 4]}}", zeros, 4,
               "data_offsets are not non-negative integers");
    LEAK_CHECK();
}

Test(safetensors, end_before_begin) {
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 0]}}", zeros, 4,
               "end 0 < begin 4");
    LEAK_CHECK();
}

Test(safetensors, offsets_outside_the_data_area) {
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}", zeros, 3,
               "outside the data area of 3 bytes");
    expect_bad("{\"w\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [9007199254740991, 9007199254740992]}}",
               zeros, 3, "outside the data area");
    LEAK_CHECK();
}

Test(safetensors, overlapping_offsets) {
    expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
               " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [2, 6]}}", zeros, 6,
               "overlap");
    /* Two tensors on the same bytes. */
    expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
               " \"b\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", zeros, 4,
               "overlap");
    LEAK_CHECK();
}

Test(safetensors, gap_between_tensors) {
    expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
               " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8]}}", zeros, 8,
               "gap of unindexed bytes [4, 6)");
    expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [2, 6]}}", zeros, 6,
               "gap of unindexed bytes [0, 2)");
    LEAK_CHECK();
}

Test(safetensors, unindexed_bytes_at_the_end) {
    expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}", zeros, 5,
               "holds 5 bytes but the tensors index only 4");
    expect_bad("{}", zeros, 1, "holds 1 bytes but the tensors index only 0");
    LEAK_CHECK();
}

Test(safetensors, out_of_order_header_is_fine_if_it_tiles) {
    /* JSON objects have no order: entries listed against offset order still load. */
    raw_write(tpath("o.safetensors"),
              "{\"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 6]},"
              " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", zeros, 6, true);
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(tpath("o.safetensors"), &st), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(st.count, 2);
    vkg_safetensors_free(&st);
    LEAK_CHECK();
}

Test(safetensors, size_not_numel_times_dtype_size) {
    expect_bad("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 12]}}", zeros, 12,
               "data_offsets span 12 bytes but the shape and dtype F32 need 24");
    expect_bad("{\"w\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [0, 4]}}", zeros, 4,
               "span 4 bytes but the shape and dtype BF16 need 2");
    LEAK_CHECK();
}

Test(safetensors, duplicate_names) {
    expect_bad("{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]},"
               " \"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}", zeros, 2,
               "duplicate tensor name 'a'");
    expect_bad("{\"__metadata__\": {}, \"__metadata__\": {}}", NULL, 0, "duplicate \"__metadata__\"");
    expect_bad("{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", NULL, 0, "duplicate metadata key 'k'");
    LEAK_CHECK();
}

Test(safetensors, metadata_must_map_strings_to_strings) {
    expect_bad("{\"__metadata__\": {\"epoch\": 3}}", NULL, 0, "metadata 'epoch' is not a string");
    expect_bad("{\"__metadata__\": [\"a\"]}", NULL, 0, "\"__metadata__\" is not a JSON object");
    LEAK_CHECK();
}

Test(safetensors, bad_arguments) {
    vkg_safetensors st;
    cr_assert_eq(vkg_safetensors_read(NULL, &st), VKG_ERR_INVALID);
    cr_assert_eq(vkg_safetensors_parse(NULL, 8, &st), VKG_ERR_INVALID);
    cr_assert_eq(vkg_safetensors_parse("x", 1, NULL), VKG_ERR_INVALID);
    cr_assert_eq(vkg_safetensors_write(NULL, NULL, 0, NULL, 0), VKG_ERR_INVALID);
    cr_assert_eq(vkg_safetensors_write(tpath("x"), NULL, 2, NULL, 0), VKG_ERR_INVALID);
    cr_assert_null(vkg_safetensors_find(NULL, "a"));
    vkg_safetensors_free(NULL);
    cr_assert_null(vkg_st_dtype_name((vkg_st_dtype)99));
    cr_assert_eq(vkg_st_dtype_size(VKG_ST_BF16), 2);
    cr_assert_eq(vkg_st_dtype_size(VKG_ST_I64), 8);
    LEAK_CHECK();
}
