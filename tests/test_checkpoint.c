/* Checkpoints (vkgrad/checkpoint.h): save -> load gives the same bits (f32, i32, u8, 0-d,
 * empty, a view saved as its values); the position and extra metadata come back; resume: 10
 * steps, save, 10 more, against load + 10 more, bitwise; every refusal (missing, unexpected,
 * wrong shape, wrong dtype, bad list, non-contiguous destination, bad metadata, unreadable
 * file), each leaving the tensors as they were; a failed save leaves the previous file; a
 * module with its Adam optimizer saved and resumed bitwise through the convenience calls. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "vkgrad/checkpoint.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"

static char dir[64];
static char pbuf[4][256];

static const char *tpath(int k, const char *name) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/vkg_test_ckpt.XXXXXX");
        cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
    }
    snprintf(pbuf[k], sizeof pbuf[k], "%s/%s", dir, name);
    return pbuf[k];
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    if (dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = 0;
}

/* The tensor's bytes (any dtype) in a new array. */
static void *bytes_of(const vkg_tensor *t, size_t *n) {
    *n = (size_t)vkg_numel(t) * vkg_dtype_size(vkg_tensor_dtype(t));
    void *b = malloc(*n ? *n : 1);
    cr_assert_eq(vkg_tensor_read(t, b, *n), VKG_OK, "%s", vkg_last_error());
    return b;
}

static void assert_same(const vkg_tensor *a, const vkg_tensor *b, const char *what) {
    cr_assert_eq(vkg_tensor_dtype(a), vkg_tensor_dtype(b), "%s: dtype", what);
    vkg_shape sa = vkg_tensor_shape(a), sb = vkg_tensor_shape(b);
    cr_assert_eq(sa.ndim, sb.ndim, "%s: ndim", what);
    for (int i = 0; i < sa.ndim; i++) cr_assert_eq(sa.d[i], sb.d[i], "%s: dim %d", what, i);
    size_t na, nb;
    void *x = bytes_of(a, &na), *y = bytes_of(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(x, y, na), 0, "%s: the bytes differ", what);
    free(x);
    free(y);
}

VKG_TEST(checkpoint, save_load_bitwise) {
    float wv[12];
    vkgt_fill(wv, 12, -2.0f, 2.0f, 1);
    wv[3] = -0.0f;
    wv[5] = 1e-40f; /* a subnormal survives too */
    vkg_tensor *w = vkg_from_data(VKG_SHAPE(3, 4), wv);
    vkg_tensor *wt = vkg_transpose(w, 0, 1); /* a view: saved as its (4, 3) values */
    vkg_tensor *k = vkg_from_data_dtype(VKG_SHAPE(5), VKG_I32, (int32_t[]){ -7, 0, 1, INT32_MAX, INT32_MIN });
    vkg_tensor *u = vkg_from_data_dtype(VKG_SHAPE(2, 3), VKG_U8, (uint8_t[]){ 0, 1, 127, 128, 254, 255 });
    vkg_tensor *s = vkg_scalar(3.25f);
    vkg_tensor *e = vkg_empty(VKG_SHAPE(0, 4));
    vkg_named_tensor src[] = { { "w", w }, { "wt", wt }, { "k", k }, { "u", u }, { "s", s }, { "e", e } };
    const char *meta[] = { "run", "test \"quoted\" ünïcode", "note", "" };
    const char *ikeys[] = { "best_step", "neg" };
    int64_t ivals[] = { 1234567890123ll, -5 };
    vkg_checkpoint_desc d = { .position = { .step = 20, .epoch = 3, .batch = 17, .seed = 0xfedcba9876543210ull,
                                            .rng_offset = 1ull << 40 },
                              .metadata = meta, .metadata_count = 2, .int_keys = ikeys, .int_values = ivals,
                              .int_count = 2 };
    const char *path = tpath(0, "a.safetensors");
    cr_assert_eq(vkg_checkpoint_save(path, src, 6, &d), VKG_OK, "%s", vkg_last_error());

    vkg_tensor *w2 = vkg_zeros(VKG_SHAPE(3, 4)), *wt2 = vkg_zeros(VKG_SHAPE(4, 3));
    vkg_tensor *k2 = vkg_empty_dtype(VKG_SHAPE(5), VKG_I32), *u2 = vkg_empty_dtype(VKG_SHAPE(2, 3), VKG_U8);
    vkg_tensor *s2 = vkg_scalar(0.0f), *e2 = vkg_empty(VKG_SHAPE(0, 4));
    vkg_named_tensor dst[] = { { "e", e2 }, { "s", s2 }, { "u", u2 }, { "k", k2 }, { "wt", wt2 }, { "w", w2 } };
    vkg_checkpoint_position pos;
    cr_assert_eq(vkg_checkpoint_load(path, dst, 6, NULL, &pos), VKG_OK, "%s", vkg_last_error());
    assert_same(w2, w, "w");
    assert_same(wt2, wt, "wt");
    assert_same(k2, k, "k");
    assert_same(u2, u, "u");
    assert_same(s2, s, "s");
    assert_same(e2, e, "e");
    cr_assert_eq(pos.step, 20);
    cr_assert_eq(pos.epoch, 3);
    cr_assert_eq(pos.batch, 17);
    cr_assert_eq(pos.seed, 0xfedcba9876543210ull);
    cr_assert_eq(pos.rng_offset, 1ull << 40);

    /* the file as safetensors: dtypes, shapes, metadata */
    vkg_checkpoint ck;
    cr_assert_eq(vkg_checkpoint_open(path, &ck), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(ck.file.count, 6);
    cr_assert_eq(vkg_safetensors_find(&ck.file, "w")->dtype, VKG_ST_F32);
    cr_assert_eq(vkg_safetensors_find(&ck.file, "k")->dtype, VKG_ST_I32);
    cr_assert_eq(vkg_safetensors_find(&ck.file, "u")->dtype, VKG_ST_U8);
    cr_assert_eq(vkg_safetensors_find(&ck.file, "s")->ndim, 0);
    cr_assert_eq(vkg_safetensors_find(&ck.file, "wt")->shape[0], 4);
    cr_assert_str_eq(vkg_checkpoint_get(&ck, "format"), "pt");
    cr_assert_str_eq(vkg_checkpoint_get(&ck, "run"), meta[1]);
    cr_assert_str_eq(vkg_checkpoint_get(&ck, "note"), "");
    cr_assert_str_eq(vkg_checkpoint_get(&ck, "vkgrad.seed"), "18364758544493064720");
    int64_t v;
    cr_assert_eq(vkg_checkpoint_get_int(&ck, "best_step", &v), VKG_OK);
    cr_assert_eq(v, 1234567890123ll);
    cr_assert_eq(vkg_checkpoint_get_int(&ck, "neg", &v), VKG_OK);
    cr_assert_eq(v, -5);
    cr_assert_eq(vkg_checkpoint_get_int(&ck, "run", &v), VKG_ERR_FORMAT);
    cr_assert(strstr(vkg_last_error(), "not an integer"), "%s", vkg_last_error());
    cr_assert_eq(vkg_checkpoint_get_int(&ck, "absent", &v), VKG_ERR_FORMAT);
    cr_assert_null(vkg_checkpoint_get(&ck, "absent"));
    vkg_checkpoint_close(&ck);
    vkg_checkpoint_close(&ck); /* twice is safe */
    cleanup();
}

/* ---- resume ------------------------------------------------------------------------------- */
#define B 8
#define IN 4
#define OUT 3

/* One SGD step of y = x @ w on a mean-squared error against x @ w_true, with x drawn from the
 * Philox stream of `seed` at *offset (advanced). Returns the new w (the old one is freed). */
static vkg_tensor *sgd_step(vkg_tensor *w, vkg_tensor *w_true, uint64_t seed, uint64_t *offset) {
    vkg_scope_begin();
    vkg_tensor *x = vkg_rand(VKG_SHAPE(B, IN), &(vkg_rand_desc){ .seed = seed, .offset = *offset });
    *offset += B * IN;
    vkg_tensor *diff = vkg_sub(vkg_matmul(x, w), vkg_matmul(x, w_true));
    vkg_tensor *loss = vkg_mean_all(vkg_mul(diff, diff));
    cr_assert_not_null(loss, "%s", vkg_last_error());
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    vkg_no_grad_begin();
    vkg_tensor *nw = vkg_sub(w, vkg_mul_scalar(vkg_grad(w), 0.1f));
    vkg_no_grad_end();
    cr_assert_not_null(nw, "%s", vkg_last_error());
    vkg_keep(nw);
    vkg_scope_end();
    vkg_free(w);
    return vkg_requires_grad(nw, true);
}

typedef struct run {
    vkg_tensor *w, *w_true, *steps; /* steps: an i32 counter kept as a tensor */
    vkg_checkpoint_position pos;
} run;

static void train(run *r, int n) {
    for (int i = 0; i < n; i++) {
        r->w = sgd_step(r->w, r->w_true, r->pos.seed, &r->pos.rng_offset);
        r->pos.step++;
    }
    int32_t s = (int32_t)r->pos.step;
    cr_assert_eq(vkg_tensor_write(r->steps, &s, sizeof s), VKG_OK);
}

VKG_TEST(checkpoint, resume_is_bitwise) {
    float wt[IN * OUT];
    vkgt_fill(wt, IN * OUT, -1.0f, 1.0f, 5);
    run a = { .w = vkg_requires_grad(vkg_randn(VKG_SHAPE(IN, OUT), &(vkg_rand_desc){ .seed = 1 }), true),
              .w_true = vkg_from_data(VKG_SHAPE(IN, OUT), wt),
              .steps = vkg_from_data_dtype(VKG_SCALAR, VKG_I32, (int32_t[]){ 0 }),
              .pos = { .seed = 99 } };
    float w0[IN * OUT], w10[IN * OUT], wa[IN * OUT], wb[IN * OUT];
    cr_assert_eq(vkg_tensor_read(a.w, w0, sizeof w0), VKG_OK);
    train(&a, 10);
    cr_assert_eq(vkg_tensor_read(a.w, w10, sizeof w10), VKG_OK);
    cr_assert_neq(memcmp(w0, w10, sizeof w0), 0, "10 steps did not move w");
    const char *path = tpath(0, "resume.safetensors");
    vkg_named_tensor ts[] = { { "w", a.w }, { "w_true", a.w_true }, { "steps", a.steps } };
    cr_assert_eq(vkg_checkpoint_save(path, ts, 3, &(vkg_checkpoint_desc){ .position = a.pos }), VKG_OK, "%s",
                 vkg_last_error());
    train(&a, 10);
    cr_assert_eq(vkg_tensor_read(a.w, wa, sizeof wa), VKG_OK);
    cr_assert_neq(memcmp(w10, wa, sizeof wa), 0);

    /* a second run from the file only: fresh tensors, position from the metadata */
    run b = { .w = vkg_requires_grad(vkg_zeros(VKG_SHAPE(IN, OUT)), true), .w_true = vkg_zeros(VKG_SHAPE(IN, OUT)),
              .steps = vkg_from_data_dtype(VKG_SCALAR, VKG_I32, (int32_t[]){ 0 }) };
    vkg_named_tensor tb[] = { { "steps", b.steps }, { "w_true", b.w_true }, { "w", b.w } };
    cr_assert_eq(vkg_checkpoint_load(path, tb, 3, NULL, &b.pos), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(b.pos.step, 10);
    cr_assert_eq(b.pos.seed, 99);
    cr_assert_eq(b.pos.rng_offset, 10 * B * IN);
    int32_t s;
    cr_assert_eq(vkg_tensor_read(b.steps, &s, sizeof s), VKG_OK);
    cr_assert_eq(s, 10);
    train(&b, 10);
    cr_assert_eq(vkg_tensor_read(b.w, wb, sizeof wb), VKG_OK);
    cr_assert_eq(memcmp(wa, wb, sizeof wa), 0, "resumed run differs from the uninterrupted one");
    cr_assert_eq(b.pos.step, a.pos.step);
    cr_assert_eq(b.pos.rng_offset, a.pos.rng_offset);
    cleanup();
}

/* ---- refusals ----------------------------------------------------------------------------- */
static void expect_untouched(vkg_tensor *t, float v) {
    float *x = vkgt_read(t);
    for (int64_t i = 0; i < vkg_numel(t); i++) cr_assert_eq(x[i], v, "a refused load wrote element %lld", (long long)i);
    free(x);
}

static void expect_fail(vkg_status got, vkg_status want, const char *needle, const char *what) {
    cr_assert_eq(got, want, "%s: status %s, want %s (%s)", what, vkg_status_name(got), vkg_status_name(want),
                 vkg_last_error());
    cr_assert(strstr(vkg_last_error(), needle), "%s: message \"%s\" lacks \"%s\"", what, vkg_last_error(), needle);
}

VKG_TEST(checkpoint, refusals_leave_tensors_untouched) {
    const char *path = tpath(0, "r.safetensors");
    vkg_tensor *a = vkg_full(VKG_SHAPE(2, 3), 1.5f), *b = vkg_full(VKG_SHAPE(4), -2.0f);
    vkg_named_tensor ab[] = { { "a", a }, { "b", b } };
    cr_assert_eq(vkg_checkpoint_save(path, ab, 2, NULL), VKG_OK, "%s", vkg_last_error());

    vkg_tensor *a2 = vkg_full(VKG_SHAPE(2, 3), 7.0f), *b2 = vkg_full(VKG_SHAPE(4), 7.0f), *c2 = vkg_full(VKG_SHAPE(1), 7.0f);
    /* missing: the list has c, the file does not */
    vkg_named_tensor missing[] = { { "a", a2 }, { "b", b2 }, { "c", c2 } };
    expect_fail(vkg_checkpoint_load(path, missing, 3, NULL, NULL), VKG_ERR_FORMAT, "missing from the file: \"c\"",
                "missing");
    expect_untouched(a2, 7.0f);
    expect_untouched(b2, 7.0f);
    /* unexpected: the file has b, the list does not */
    vkg_named_tensor only_a[] = { { "a", a2 } };
    expect_fail(vkg_checkpoint_load(path, only_a, 1, NULL, NULL), VKG_ERR_FORMAT, "unexpected): \"b\"", "unexpected");
    expect_untouched(a2, 7.0f);
    /* wrong shape */
    vkg_tensor *a_t = vkg_full(VKG_SHAPE(3, 2), 7.0f);
    vkg_named_tensor shape[] = { { "a", a_t }, { "b", b2 } };
    expect_fail(vkg_checkpoint_load(path, shape, 2, NULL, NULL), VKG_ERR_FORMAT,
                "\"a\" has shape (2, 3) in the file but (3, 2) in the list", "shape");
    expect_untouched(a_t, 7.0f);
    expect_untouched(b2, 7.0f);
    /* wrong dtype: i32 where the file has F32 */
    vkg_tensor *b_i = vkg_from_data_dtype(VKG_SHAPE(4), VKG_I32, (int32_t[]){ 7, 7, 7, 7 });
    vkg_named_tensor dtype[] = { { "a", a2 }, { "b", b_i } };
    expect_fail(vkg_checkpoint_load(path, dtype, 2, NULL, NULL), VKG_ERR_FORMAT,
                "\"b\" is F32 in the file but i32 (I32) in the list", "dtype");
    expect_untouched(a2, 7.0f);
    /* wrong dtype: a file from elsewhere with F16 */
    const char *p16 = tpath(1, "f16.safetensors");
    uint16_t h[4] = { 0x3c00, 0x4000, 0, 0 };
    vkg_st_tensor t16 = { .name = "b", .dtype = VKG_ST_F16, .ndim = 1, .shape = { 4 }, .data = h, .nbytes = 8 };
    cr_assert_eq(vkg_safetensors_write(p16, &t16, 1, NULL, 0), VKG_OK);
    vkg_named_tensor only_b[] = { { "b", b2 } };
    expect_fail(vkg_checkpoint_load(p16, only_b, 1, NULL, NULL), VKG_ERR_FORMAT, "\"b\" is F16 in the file but f32",
                "f16");
    expect_untouched(b2, 7.0f);
    /* non-contiguous destination */
    vkg_tensor *a_view = vkg_transpose(vkg_full(VKG_SHAPE(3, 2), 7.0f), 0, 1);
    vkg_named_tensor view[] = { { "a", a_view }, { "b", b2 } };
    expect_fail(vkg_checkpoint_load(path, view, 2, NULL, NULL), VKG_ERR_INVALID, "non-contiguous", "view");
    expect_untouched(b2, 7.0f);
    /* bad lists */
    vkg_named_tensor dup[] = { { "a", a2 }, { "a", b2 } };
    expect_fail(vkg_checkpoint_load(path, dup, 2, NULL, NULL), VKG_ERR_INVALID, "given twice", "duplicate load");
    expect_fail(vkg_checkpoint_save(tpath(2, "x.safetensors"), dup, 2, NULL), VKG_ERR_INVALID, "given twice",
                "duplicate save");
    vkg_named_tensor null_t[] = { { "a", NULL } };
    expect_fail(vkg_checkpoint_save(tpath(2, "x.safetensors"), null_t, 1, NULL), VKG_ERR_INVALID, "is NULL", "NULL");
    vkg_named_tensor reserved[] = { { "__metadata__", a2 } };
    expect_fail(vkg_checkpoint_save(tpath(2, "x.safetensors"), reserved, 1, NULL), VKG_ERR_INVALID, "reserved",
                "reserved");
    cr_assert_eq(access(tpath(2, "x.safetensors"), F_OK), -1, "a refused save left a file");
    /* unreadable and malformed files */
    expect_fail(vkg_checkpoint_load(tpath(2, "absent.safetensors"), ab, 2, NULL, NULL), VKG_ERR_IO, "absent",
                "absent file");
    FILE *f = fopen(tpath(2, "junk.safetensors"), "wb");
    fputs("not a checkpoint", f);
    fclose(f);
    cr_assert_eq(vkg_checkpoint_load(tpath(2, "junk.safetensors"), ab, 2, NULL, NULL), VKG_ERR_FORMAT);
    /* a position that is not an integer */
    const char *badpos[] = { "vkgrad.step", "ten" };
    vkg_st_tensor ta = { .name = "a", .dtype = VKG_ST_F32, .ndim = 1, .shape = { 1 }, .data = (float[]){ 1 }, .nbytes = 4 };
    cr_assert_eq(vkg_safetensors_write(tpath(3, "badpos.safetensors"), &ta, 1, badpos, 1), VKG_OK);
    vkg_named_tensor one[] = { { "a", c2 } };
    expect_fail(vkg_checkpoint_load(tpath(3, "badpos.safetensors"), one, 1, NULL, NULL), VKG_ERR_FORMAT,
                "\"vkgrad.step\" is \"ten\", not an integer", "bad position");
    expect_untouched(c2, 7.0f);

    /* the lenient modes */
    cr_assert_eq(vkg_checkpoint_load(path, only_a, 1, &(vkg_checkpoint_load_desc){ .allow_unexpected = true }, NULL),
                 VKG_OK, "%s", vkg_last_error());
    expect_untouched(a2, 1.5f);
    vkg_checkpoint_position pos = { .step = 99 };
    cr_assert_eq(vkg_checkpoint_load(path, missing, 3, &(vkg_checkpoint_load_desc){ .allow_missing = true }, &pos),
                 VKG_OK, "%s", vkg_last_error());
    expect_untouched(b2, -2.0f);
    expect_untouched(c2, 7.0f);
    cr_assert_eq(pos.step, 0); /* saved with no position: zeros */
    /* a file with no position at all (written by another program): zeros */
    cr_assert_eq(vkg_checkpoint_load(p16, NULL, 0, &(vkg_checkpoint_load_desc){ .allow_unexpected = true }, &pos),
                 VKG_OK, "%s", vkg_last_error());
    cleanup();
}

VKG_TEST(checkpoint, failed_save_keeps_the_previous_file) {
    const char *path = tpath(0, "keep.safetensors");
    vkg_tensor *a = vkg_full(VKG_SHAPE(3), 1.0f);
    vkg_named_tensor ta[] = { { "a", a } };
    cr_assert_eq(vkg_checkpoint_save(path, ta, 1, &(vkg_checkpoint_desc){ .position = { .step = 1 } }), VKG_OK);
    /* a save the writer refuses (duplicate metadata key) after the tensors were read back */
    const char *dup[] = { "vkgrad.step", "5" };
    vkg_tensor *b = vkg_full(VKG_SHAPE(3), 2.0f);
    vkg_named_tensor tb[] = { { "a", b } };
    cr_assert_neq(vkg_checkpoint_save(path, tb, 1, &(vkg_checkpoint_desc){ .metadata = dup, .metadata_count = 1 }),
                  VKG_OK);
    /* a directory that does not exist */
    cr_assert_eq(vkg_checkpoint_save(tpath(1, "no/such/dir.safetensors"), tb, 1, NULL), VKG_ERR_IO);
    vkg_tensor *c = vkg_zeros(VKG_SHAPE(3));
    vkg_named_tensor tc[] = { { "a", c } };
    vkg_checkpoint_position pos;
    cr_assert_eq(vkg_checkpoint_load(path, tc, 1, NULL, &pos), VKG_OK, "%s", vkg_last_error());
    expect_untouched(c, 1.0f);
    cr_assert_eq(pos.step, 1);
    /* no temporary file is left beside it */
    int n = 0;
    DIR *dd = opendir(dir);
    cr_assert_not_null(dd);
    for (struct dirent *de; (de = readdir(dd));) n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(dd);
    cr_assert_eq(n, 1, "%d entries in the directory, want only the checkpoint", n);
    cleanup();
}

/* ---- a module and its optimizer ----------------------------------------------------------- */
typedef struct net {
    vkg_module *m;
    vkg_linear *fc;
    vkg_optim *opt;
} net;

static net net_new(uint64_t seed) {
    net n = { .m = vkg_module_new(&(vkg_module_desc){ .seed = seed }) };
    n.fc = vkg_linear_new(n.m, "fc", &(vkg_linear_desc){ .in = IN, .out = OUT });
    n.opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 0.05 });
    cr_assert(n.fc && n.opt, "%s", vkg_last_error());
    cr_assert_eq(vkg_optim_add_module(n.opt, n.m), VKG_OK, "%s", vkg_last_error());
    return n;
}

static void net_free(net *n) {
    vkg_optim_free(n->opt);
    vkg_module_free(n->m);
}

static void net_train(net *n, vkg_checkpoint_position *pos, int steps) {
    for (int i = 0; i < steps; i++) {
        vkg_scope_begin();
        vkg_optim_zero_grad(n->opt);
        vkg_tensor *x = vkg_rand(VKG_SHAPE(B, IN), &(vkg_rand_desc){ .seed = pos->seed, .offset = pos->rng_offset });
        pos->rng_offset += B * IN;
        vkg_tensor *diff = vkg_sub(vkg_linear_forward(n->fc, x), vkg_sum(x, 1, true)); /* target: row sums */
        vkg_tensor *loss = vkg_mean_all(vkg_mul(diff, diff));
        cr_assert_not_null(loss, "%s", vkg_last_error());
        cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(vkg_optim_step(n->opt), VKG_OK, "%s", vkg_last_error());
        vkg_scope_end();
        pos->step++;
    }
}

static void read_net(const net *n, float *w, float *b) {
    cr_assert_eq(vkg_tensor_read(n->fc->weight, w, OUT * IN * sizeof(float)), VKG_OK);
    cr_assert_eq(vkg_tensor_read(n->fc->bias, b, OUT * sizeof(float)), VKG_OK);
}

VKG_TEST(checkpoint, module_and_adam_resume_is_bitwise) {
    const char *path = tpath(0, "net.safetensors");
    net a = net_new(1);
    vkg_checkpoint_position pa = { .seed = 7 };
    net_train(&a, &pa, 10);
    cr_assert_eq(vkg_checkpoint_save_module(path, a.m, a.opt, &(vkg_checkpoint_desc){ .position = pa }), VKG_OK, "%s",
                 vkg_last_error());
    net_train(&a, &pa, 10);
    float wa[OUT * IN], ba[OUT], wb[OUT * IN], bb[OUT];
    read_net(&a, wa, ba);

    vkg_checkpoint ck;
    cr_assert_eq(vkg_checkpoint_open(path, &ck), VKG_OK, "%s", vkg_last_error());
    cr_assert_not_null(vkg_safetensors_find(&ck.file, "fc.weight"));
    cr_assert_not_null(vkg_safetensors_find(&ck.file, "optim.fc.weight.exp_avg"));
    cr_assert_not_null(vkg_safetensors_find(&ck.file, "optim.fc.bias.exp_avg_sq"));
    cr_assert_str_eq(vkg_checkpoint_get(&ck, "optim.fc.weight.step"), "10");
    vkg_checkpoint_close(&ck);

    net b = net_new(2); /* another initialisation: the load must replace it all */
    vkg_checkpoint_position pb;
    /* without the optimizer the file has unexpected tensors */
    expect_fail(vkg_checkpoint_load_module(path, b.m, NULL, NULL, &pb), VKG_ERR_FORMAT, "\"optim.fc.", "no optim");
    cr_assert_eq(vkg_checkpoint_load_module(path, b.m, b.opt, NULL, &pb), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(pb.step, 10);
    cr_assert_eq(vkg_optim_step_count(b.opt, "fc.weight"), 10);
    net_train(&b, &pb, 10);
    read_net(&b, wb, bb);
    cr_assert_eq(memcmp(wa, wb, sizeof wa), 0, "resumed weights differ");
    cr_assert_eq(memcmp(ba, bb, sizeof ba), 0, "resumed biases differ");
    cr_assert_eq(vkg_optim_step_count(b.opt, "fc.bias"), 20);
    net_free(&a);
    net_free(&b);
    cleanup();
}
