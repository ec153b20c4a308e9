/* f16 (IEEE binary16) storage and dtype conversion: the C reference against IEEE's rules and
 * the compiler's own conversion, f16 tensors made, read back, viewed and checkpointed, and
 * (below) vkg_to_dtype on the device bit for bit against the reference, with its gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/bits.h"
#include "support.h"
#include "vkgrad/checkpoint.h"

/* ---- the C reference ------------------------------------------------------------------------ */
VKG_TEST(dtype, reference_known_values) {
    const struct { uint32_t f; uint16_t h; } cases[] = {
        { 0x00000000u, 0x0000 }, { 0x80000000u, 0x8000 },              /* +-0 */
        { 0x3f800000u, 0x3c00 }, { 0xc0000000u, 0xc000 },              /* 1, -2 */
        { 0x477fe000u, 0x7bff },                                       /* 65504, the largest half */
        { 0x477fefffu, 0x7bff },                                       /* just below the half-way 65520 */
        { 0x477ff000u, 0x7c00 },                                       /* 65520: ties to even = inf */
        { 0x7f7fffffu, 0x7c00 }, { 0xff7fffffu, 0xfc00 },              /* FLT_MAX: overflow to +-inf */
        { 0x7f800000u, 0x7c00 }, { 0xff800000u, 0xfc00 },              /* +-inf */
        { 0x38800000u, 0x0400 },                                       /* 2^-14, smallest normal */
        { 0x387fc000u, 0x03ff },                                       /* largest subnormal */
        { 0x387fe000u, 0x0400 },                                       /* half-way up to 2^-14: ties to even (0x400) */
        { 0x33800000u, 0x0001 },                                       /* 2^-24, smallest subnormal */
        { 0x33000000u, 0x0000 }, { 0xb3000000u, 0x8000 },              /* 2^-25: tie to even, 0 */
        { 0x33000001u, 0x0001 },                                       /* just above: up */
        { 0x33c00000u, 0x0002 },                                       /* 1.5 * 2^-24: tie to even = 2 */
        { 0x34200000u, 0x0002 },                                       /* 2.5 * 2^-24: tie to even = 2 */
        { 0x00000001u, 0x0000 }, { 0x80400000u, 0x8000 },              /* f32 subnormals */
        { 0x3f801000u, 0x3c00 }, { 0x3f803000u, 0x3c02 },              /* 1 + half an ulp: even down / up */
        { 0x3f801001u, 0x3c01 },                                       /* past the tie: up */
        { 0x7fc00000u, 0x7e00 }, { 0xffc00000u, 0xfe00 },              /* quiet NaN */
        { 0x7f800001u, 0x7e00 },                                       /* signalling NaN: quieted */
        { 0x7fa00000u, 0x7f00 },                                       /* payload's high bits kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = vkg_ref_f32_to_f16(vkg_bits_to_f32(cases[i].f));
        cr_assert_eq(h, cases[i].h, "f32 %08x -> f16 %04x, want %04x", cases[i].f, h, cases[i].h);
    }
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0x0001)), 0x33800000u);
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0x03ff)), 0x387fc000u);
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0x8200)), 0xb8000000u);  /* -2^-15 */
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0x7bff)), 0x477fe000u);
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0xfc00)), 0xff800000u);
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0x7c01)), 0x7fc02000u);  /* signalling NaN: quieted */
    cr_assert_eq(vkg_f32_to_bits(vkg_ref_f16_to_f32(0x7e00)), 0x7fc00000u);
}

/* Every half: exact in f32, and back to the same half (NaNs come back quieted). Where the
 * compiler has _Float16 (gcc 12 on x86-64: libgcc's soft-fp, or F16C), every half and a sweep
 * of floats agree with it too: an independent implementation of the same IEEE rules. */
VKG_TEST(dtype, reference_round_trip_and_compiler) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkg_ref_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        uint16_t back = vkg_ref_f32_to_f16(f);
        cr_assert_eq(back, nan ? (uint16_t)(h | 0x200u) : (uint16_t)h, "half %04x -> %08x -> %04x", h, vkg_f32_to_bits(f), back);
        if (!nan) cr_assert_eq(f, f); /* not a NaN */
#ifdef __FLT16_MAX__
        _Float16 c;
        uint16_t hb = (uint16_t)h;
        memcpy(&c, &hb, sizeof c);
        float cf = (float)c;
        if (nan) cr_assert(isnan(cf) && isnan(f));
        else cr_assert_eq(vkg_f32_to_bits(cf), vkg_f32_to_bits(f), "half %04x: compiler %08x, reference %08x", h, vkg_f32_to_bits(cf), vkg_f32_to_bits(f));
#endif
    }
#ifdef __FLT16_MAX__
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) { /* every exponent, many mantissas */
        float f = vkg_bits_to_f32((uint32_t)u);
        if (isnan(f)) continue;
        _Float16 c = (_Float16)f;
        uint16_t cb;
        memcpy(&cb, &c, sizeof cb);
        cr_assert_eq(vkg_ref_f32_to_f16(f), cb, "f32 %08x: reference %04x, compiler %04x", (uint32_t)u,
                     vkg_ref_f32_to_f16(f), cb);
    }
#else
    cr_log_info("no _Float16 in this compiler: the reference is checked against its known values only");
#endif
}

/* ---- f16 storage ---------------------------------------------------------------------------- */
VKG_TEST(dtype, f16_storage) {
    cr_assert_eq(vkg_dtype_size(VKG_F16), 2);
    cr_assert_str_eq(vkg_dtype_name(VKG_F16), "f16");
    vkg_scope_begin();
    uint16_t h[7] = { 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x3555 }, back[7];
    vkg_tensor *t = vkg_from_data_dtype(VKG_SHAPE(7), VKG_F16, h); /* odd length: 14 bytes */
    cr_assert_not_null(t, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_dtype(t), VKG_F16);
    cr_assert_eq(vkg_tensor_read(t, back, sizeof back), VKG_OK);
    cr_assert_arr_eq(back, h, sizeof h);
    /* a view with an odd element offset, and a strided one: gathered on the host */
    uint16_t v[3];
    cr_assert_eq(vkg_tensor_read(vkg_narrow(t, 0, 1, 3), v, sizeof v), VKG_OK);
    cr_assert(v[0] == h[1] && v[1] == h[2] && v[2] == h[3]);
    cr_assert_eq(vkg_tensor_read(vkg_slice(t, 0, 1, 7, 3), v, 2 * sizeof v[0]), VKG_OK);
    cr_assert(v[0] == h[1] && v[1] == h[4]);
    cr_assert_eq(vkg_item(vkg_narrow(t, 0, 1, 1)), -2.0f);
    cr_assert_eq(vkg_item(vkg_narrow(t, 0, 2, 1)), 65504.0f);
    /* write, then read back a 2-D view */
    uint16_t w[6] = { 0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600 }, wt[6];
    vkg_tensor *m = vkg_empty_dtype(VKG_SHAPE(2, 3), VKG_F16);
    cr_assert_eq(vkg_tensor_write(m, w, sizeof w), VKG_OK);
    cr_assert_eq(vkg_tensor_read(vkg_transpose(m, 0, 1), wt, sizeof wt), VKG_OK);
    const uint16_t want[6] = { 0x3c00, 0x4400, 0x4000, 0x4500, 0x4200, 0x4600 };
    cr_assert_arr_eq(wt, want, sizeof want);
    cr_assert_neq(vkg_tensor_read(t, back, 13), VKG_OK); /* 7 halves need 14 bytes */
    /* ops take f32: an f16 tensor is refused with a message, not misread */
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_null(vkg_add(t, t));
    cr_assert(strstr(vkg_last_error(), "f16"), "%s", vkg_last_error());
    cr_assert_null(vkg_relu(t));
    cr_assert_null(vkg_requires_grad(t, true));
    vkg_set_error_handler(NULL, NULL);
    vkg_scope_end();
}

VKG_TEST(dtype, f16_checkpoint) {
    char dir[] = "/tmp/vkg_test_f16.XXXXXX", path[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/f16.safetensors", dir);
    vkg_scope_begin();
    uint16_t h[5] = { 0x3c00, 0x8001, 0x7bff, 0xfc00, 0x1234 }, back[5];
    vkg_tensor *a = vkg_from_data_dtype(VKG_SHAPE(5), VKG_F16, h);
    vkg_tensor *b = vkg_from_data(VKG_SHAPE(2), (float[]){ 1.5f, -2.0f });
    cr_assert_eq(vkg_checkpoint_save(path, (vkg_named_tensor[]){ { "half", a }, { "single", b } }, 2, NULL), VKG_OK,
                 "%s", vkg_last_error());
    vkg_safetensors st = { 0 };
    cr_assert_eq(vkg_safetensors_read(path, &st), VKG_OK, "%s", vkg_last_error());
    const vkg_st_tensor *f = vkg_safetensors_find(&st, "half");
    cr_assert_not_null(f);
    cr_assert_eq(f->dtype, VKG_ST_F16);
    cr_assert_str_eq(vkg_st_dtype_name(f->dtype), "F16");
    cr_assert_eq(f->nbytes, sizeof h);
    cr_assert_arr_eq(f->data, h, sizeof h);
    vkg_safetensors_free(&st);
    vkg_tensor *a2 = vkg_empty_dtype(VKG_SHAPE(5), VKG_F16), *b2 = vkg_empty(VKG_SHAPE(2));
    cr_assert_eq(vkg_checkpoint_load(path, (vkg_named_tensor[]){ { "half", a2 }, { "single", b2 } }, 2, NULL, NULL),
                 VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(a2, back, sizeof back), VKG_OK);
    cr_assert_arr_eq(back, h, sizeof h);
    /* an f32 tensor does not load an F16 entry */
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_neq(vkg_checkpoint_load(path, (vkg_named_tensor[]){ { "half", vkg_empty(VKG_SHAPE(5)) } }, 1,
                                      &(vkg_checkpoint_load_desc){ .allow_unexpected = true }, NULL),
                  VKG_OK);
    vkg_set_error_handler(NULL, NULL);
    vkg_scope_end();
    unlink(path);
    rmdir(dir);
}

/* ---- vkg_to_dtype on the device, bit for bit ------------------------------------------------ */
static void assert_bits16(const uint16_t *got, const uint16_t *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s: element %zu is %04x, the reference %04x", what, i, got[i], want[i]);
}

static void assert_bits32(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(vkg_f32_to_bits(got[i]), vkg_f32_to_bits(want[i]), "%s: element %zu is %08x, the reference %08x", what, i,
                     vkg_f32_to_bits(got[i]), vkg_f32_to_bits(want[i]));
}

/* f16 -> f32 of all 65536 halves (NaNs, infinities, subnormals, both zeros). */
VKG_TEST(dtype, to_f32_every_half) {
    vkg_scope_begin();
    uint16_t *h = malloc(65536 * sizeof *h);
    float *got = malloc(65536 * sizeof *got), *want = malloc(65536 * sizeof *want);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    vkg_ref_to_dtype(want, VKG_F32, h, VKG_F16, 65536);
    vkg_tensor *y = vkg_to_dtype(vkg_from_data_dtype(VKG_SHAPE(65536), VKG_F16, h), VKG_F32);
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_dtype(y), VKG_F32);
    cr_assert_eq(vkg_tensor_read(y, got, 65536 * sizeof *got), VKG_OK);
    assert_bits32(got, want, 65536, "f16 -> f32, every half");
    free(h);
    free(got);
    free(want);
    vkg_scope_end();
}

/* f32 -> f16 on a dense sweep: around every half, the half itself, one ulp either side, the
 * tie to the next half and one ulp either side of the tie; every 4099th float of the 2^32;
 * NaNs with payloads; f32 subnormals. */
VKG_TEST(dtype, to_f16_dense_sweep) {
    vkg_scope_begin();
    size_t cap = 65536 * 6 + (1u << 20) + 64, n = 0;
    uint32_t *u = malloc(cap * sizeof *u);
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00u) == 0x7c00u) continue;
        uint32_t f = vkg_f32_to_bits(vkg_ref_f16_to_f32((uint16_t)h));
        uint32_t next = vkg_f32_to_bits(vkg_ref_f16_to_f32((uint16_t)(h + 1))); /* same sign, one half up */
        uint32_t tie = f + (next - f) / 2;                               /* exact: halves are f32 */
        if ((h & 0x7fffu) == 0x7bffu) tie = f + 0x1000u;                 /* 65520 */
        uint32_t c[6] = { f, f + 1, f - 1, tie, tie + 1, tie - 1 };
        for (int k = 0; k < 6; k++) u[n++] = c[k];
    }
    for (uint64_t v = 0; v < (1ull << 32); v += 4099) u[n++] = (uint32_t)v;
    const uint32_t extra[] = { 0x7f800001u, 0xffbfffffu, 0x7fc00001u, 0x7fffffffu, 0x00000001u, 0x807fffffu,
                               0x7f800000u, 0xff800000u, 0x7f7fffffu, 0x00000000u, 0x80000000u };
    for (size_t k = 0; k < sizeof extra / sizeof extra[0]; k++) u[n++] = extra[k];
    float *x = (float *)u;
    uint16_t *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    vkg_ref_to_dtype(want, VKG_F16, x, VKG_F32, n);
    vkg_tensor *y = vkg_to_dtype(vkg_from_data(VKG_SHAPE((int64_t)n), x), VKG_F16);
    cr_assert_not_null(y, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(y, got, n * sizeof *got), VKG_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "f32 %08x -> f16 %04x on the device, %04x in the reference", u[i], got[i],
                     want[i]);
    free(u);
    free(got);
    free(want);
    vkg_scope_end();
}

/* Sizes that are not multiples of the workgroup (odd ones leave half a word), 0-d and empty
 * tensors, and views: transposed, strided, an f16 view at an odd element offset. */
VKG_TEST(dtype, to_dtype_shapes_and_views) {
    const vkg_shape shapes[] = { VKG_SCALAR, VKG_SHAPE(0), VKG_SHAPE(1), VKG_SHAPE(3), VKG_SHAPE(129),
                                 VKG_SHAPE(257, 3), VKG_SHAPE(7, 11, 5) };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        vkg_scope_begin();
        vkg_shape s = shapes[k];
        size_t n = (size_t)vkg_shape_numel(s);
        float *x = malloc((n + 1) * sizeof *x), *back = malloc((n + 1) * sizeof *back), *wb = malloc((n + 1) * sizeof *wb);
        uint16_t *h = malloc((n + 1) * sizeof *h), *want = malloc((n + 1) * sizeof *want);
        vkgt_fill(x, n, -70000.0f, 70000.0f, 1000 + k); /* some overflow to inf */
        for (size_t i = 0; i < n; i += 3) x[i] *= 1e-9f;  /* and some subnormal halves */
        vkg_ref_to_dtype(want, VKG_F16, x, VKG_F32, n);
        vkg_tensor *t = vkg_from_data(s, x);
        vkg_tensor *y = vkg_to_dtype(t, VKG_F16);
        cr_assert_not_null(y, "%s", vkg_last_error());
        cr_assert_eq(vkg_ndim(y), s.ndim);
        cr_assert_eq(vkg_tensor_read(y, h, n * sizeof *h), VKG_OK);
        assert_bits16(h, want, n, "f32 -> f16");
        cr_assert_eq(vkg_to_dtype(y, VKG_F16), y, "same dtype: the tensor itself");
        vkg_tensor *z = vkg_to_dtype(y, VKG_F32);
        vkg_ref_to_dtype(wb, VKG_F32, want, VKG_F16, n);
        cr_assert_eq(vkg_tensor_read(z, back, n * sizeof *back), VKG_OK);
        assert_bits32(back, wb, n, "f16 -> f32");
        free(x);
        free(back);
        free(wb);
        free(h);
        free(want);
        vkg_scope_end();
    }
    vkg_scope_begin();
    /* a (9, 13) f32 tensor seen transposed and with every third column */
    float x[9 * 13];
    vkgt_fill(x, 9 * 13, -3.0f, 3.0f, 77);
    vkg_tensor *t = vkg_from_data(VKG_SHAPE(9, 13), x);
    vkg_tensor *views[] = { vkg_transpose(t, 0, 1), vkg_slice(t, 1, 1, 13, 3), vkg_narrow(vkg_flatten(t), 0, 1, 100) };
    for (int v = 0; v < 3; v++) {
        cr_assert(!vkg_is_contiguous(views[v]) || v == 2);
        size_t n = (size_t)vkg_numel(views[v]);
        float hv[9 * 13], hb[9 * 13], wb[9 * 13];
        uint16_t h16[9 * 13], w16[9 * 13], c16[9 * 13];
        cr_assert_eq(vkg_tensor_read(views[v], hv, sizeof hv), VKG_OK);
        vkg_ref_to_dtype(w16, VKG_F16, hv, VKG_F32, n);
        vkg_tensor *y = vkg_to_dtype(views[v], VKG_F16);
        cr_assert_eq(vkg_tensor_read(y, h16, sizeof h16), VKG_OK);
        assert_bits16(h16, w16, n, "f32 view -> f16");
        /* f16 views: y transposed / sliced / at an odd offset, back to f32 and copied as f16 */
        vkg_tensor *yv = v == 0 ? vkg_transpose(y, 0, 1) : v == 1 ? vkg_slice(y, 0, 1, vkg_dim(y, 0), 2)
                                                                   : vkg_narrow(y, 0, 3, 51);
        size_t m = (size_t)vkg_numel(yv);
        cr_assert_eq(vkg_tensor_read(yv, c16, sizeof c16), VKG_OK); /* host gather of the view */
        vkg_ref_to_dtype(wb, VKG_F32, c16, VKG_F16, m);
        cr_assert_eq(vkg_tensor_read(vkg_to_dtype(yv, VKG_F32), hb, sizeof hb), VKG_OK);
        assert_bits32(hb, wb, m, "f16 view -> f32");
        vkg_tensor *cc = vkg_contiguous(yv);
        cr_assert(vkg_is_contiguous(cc) && vkg_tensor_dtype(cc) == VKG_F16, "%s", vkg_last_error());
        cr_assert_eq(vkg_tensor_read(cc, h16, sizeof h16), VKG_OK);
        assert_bits16(h16, c16, m, "f16 copy of a view");
    }
    /* a non-viewable reshape of an f16 view copies */
    vkg_tensor *r = vkg_reshape(vkg_transpose(vkg_to_dtype(t, VKG_F16), 0, 1), VKG_SHAPE(-1));
    cr_assert_not_null(r, "%s", vkg_last_error());
    cr_assert_eq(vkg_numel(r), 9 * 13);
    /* what is refused */
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_null(vkg_to_dtype(t, VKG_I32));
    cr_assert(strstr(vkg_last_error(), "vkg_to_dtype"), "%s", vkg_last_error());
    cr_assert_null(vkg_to_dtype(t, (vkg_dtype)99));
    cr_assert_null(vkg_to_dtype(NULL, VKG_F16));
    vkg_set_error_handler(NULL, NULL);
    vkg_scope_end();
}

/* The gradient of a cast is the upstream gradient cast back: through x -> f16 -> f32 and
 * L = sum(y * w), dL/dx = f32(f16(w)), bit for bit; an f16 tensor used twice sums its two
 * gradients in f32 and stores the sum in f16. */
VKG_TEST(dtype, to_dtype_backward) {
    enum { N = 131 };
    float x[N], w1[N], w2[N], want[N], got[N];
    vkgt_fill(x, N, -100.0f, 100.0f, 5);
    vkgt_fill(w1, N, -1.0f, 1.0f, 6);
    vkgt_fill(w2, N, -1.0f, 1.0f, 7);
    vkg_tensor *xt = vkg_requires_grad(vkg_from_data(VKG_SHAPE(N), x), true);
    vkg_scope_begin();
    vkg_tensor *h = vkg_to_dtype(xt, VKG_F16);
    cr_assert(vkg_tensor_requires_grad(h));
    vkg_tensor *loss = vkg_sum_all(vkg_mul(vkg_to_dtype(h, VKG_F32), vkg_from_data(VKG_SHAPE(N), w1)));
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(vkg_grad(xt), got, sizeof got), VKG_OK);
    for (int i = 0; i < N; i++) want[i] = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(w1[i]));
    assert_bits32(got, want, N, "dx through f32 -> f16 -> f32");
    vkg_scope_end();
    vkg_zero_grad(xt);
    vkg_scope_begin();
    h = vkg_to_dtype(xt, VKG_F16);
    vkg_tensor *l1 = vkg_sum_all(vkg_mul(vkg_to_dtype(h, VKG_F32), vkg_from_data(VKG_SHAPE(N), w1)));
    vkg_tensor *l2 = vkg_sum_all(vkg_mul(vkg_to_dtype(h, VKG_F32), vkg_from_data(VKG_SHAPE(N), w2)));
    cr_assert_eq(vkg_backward(vkg_add(l1, l2)), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(vkg_grad(xt), got, sizeof got), VKG_OK);
    for (int i = 0; i < N; i++) {
        float a = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(w1[i])), b = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(w2[i]));
        /* the engine adds the second use into the first: (a + b) or (b + a), the same in IEEE */
        want[i] = vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(a + b));
    }
    assert_bits32(got, want, N, "dx with the f16 tensor used twice");
    vkg_scope_end();
    vkg_free(xt);
}

/* ---- matmul with f16 operands ------------------------------------------------------------------
 * f16 @ f16 (and f16 @ f32) is an f32 product with f32 sums: against the double product of the
 * operands' f16 values, on shapes the tensor-core kernel takes (multiples of 16, row- and
 * column-major) and shapes it leaves to the widened f32 path (odd sizes, a strided view). On a
 * device with that kernel the first ones must really run on it. */
static float round16(float v) { return vkg_ref_f16_to_f32(vkg_ref_f32_to_f16(v)); }

/* a (B?, M, K) @ b (B?, K, N), b transposed in storage when bt; a f16, b f16 unless b32 */
static void check_matmul_f16(int64_t B, int64_t M, int64_t K, int64_t N, bool bt, bool b32, uint64_t seed,
                             bool want_coopmat) {
    vkg_scope_begin();
    size_t na = (size_t)(B * M * K), nb = (size_t)(B * K * N), nc = (size_t)(B * M * N);
    float *ah = malloc(na * sizeof *ah), *bh = malloc(nb * sizeof *bh), *want = calloc(nc, sizeof *want);
    vkgt_fill(ah, na, -2.0f, 2.0f, seed);
    vkgt_fill(bh, nb, -2.0f, 2.0f, seed + 1);
    for (size_t i = 0; i < na; i++) ah[i] = round16(ah[i]);
    for (size_t i = 0; i < nb; i++) bh[i] = b32 ? bh[i] : round16(bh[i]);
    /* bh holds b (B, K, N) row-major; when bt, the tensor is stored (B, N, K) and viewed back */
    float *bs = malloc(nb * sizeof *bs);
    for (int64_t z = 0; z < B; z++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++)
                bs[bt ? z * K * N + n * K + k : z * K * N + k * N + n] = bh[z * K * N + k * N + n];
    for (int64_t z = 0; z < B; z++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0.0;
                for (int64_t k = 0; k < K; k++) s += (double)ah[z * M * K + m * K + k] * bh[z * K * N + k * N + n];
                want[z * M * N + m * N + n] = (float)s;
            }
    vkg_tensor *a = vkg_to_dtype(vkg_from_data(B > 1 ? VKG_SHAPE(B, M, K) : VKG_SHAPE(M, K), ah), VKG_F16);
    vkg_tensor *bstore = vkg_from_data(B > 1 ? (bt ? VKG_SHAPE(B, N, K) : VKG_SHAPE(B, K, N)) : bt ? VKG_SHAPE(N, K) : VKG_SHAPE(K, N), bs);
    if (!b32) bstore = vkg_to_dtype(bstore, VKG_F16);
    vkg_tensor *b = bt ? vkg_transpose(bstore, -1, -2) : bstore;
    vkg_tensor *c = vkg_matmul(a, b);
    cr_assert_not_null(c, "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_dtype(c), VKG_F32);
    char what[96];
    snprintf(what, sizeof what, "f16 matmul %lld/%lldx%lldx%lld%s%s (%s)", (long long)B, (long long)M, (long long)K,
             (long long)N, bt ? " b^T" : "", b32 ? " b f32" : "", vkg_matmul_variant_last());
    if (want_coopmat) cr_assert_str_eq(vkg_matmul_variant_last(), "coopmat", "%s", what);
    float *got = vkgt_read(c);
    vkgt_assert_close(got, want, nc, 1e-5f, 1e-4f, what);
    free(ah), free(bh), free(bs), free(want), free(got);
    vkg_scope_end();
}

VKG_TEST(dtype, matmul_f16) {
    const vkg_device_info *dev = vkg_device();
    /* what lib/runtime/context.c asks of a device for the kernel (the 16x16x16 shape aside) */
    bool cm = dev->cooperative_matrix && dev->fp16 && dev->storage16 && dev->subgroup_size == 32 &&
              !getenv("VKG_NO_COOPMAT") && !getenv("VKG_MATMUL_VARIANT");
    check_matmul_f16(1, 32, 48, 64, false, false, 11, cm);
    check_matmul_f16(1, 48, 32, 80, true, false, 13, cm);   /* B column-major */
    check_matmul_f16(3, 16, 32, 16, false, false, 15, cm);  /* batched, one 16x16 tile */
    check_matmul_f16(1, 160, 64, 96, false, false, 17, cm); /* blocks overhanging M and N */
    check_matmul_f16(1, 20, 33, 7, false, false, 19, false);
    check_matmul_f16(2, 5, 9, 3, true, false, 21, false);
    check_matmul_f16(1, 32, 48, 64, false, true, 23, false); /* f16 @ f32 */
    /* any other dtype is refused, naming both operands */
    vkg_scope_begin();
    vkg_tensor *h = vkg_to_dtype(vkg_zeros(VKG_SHAPE(4, 4)), VKG_F16), *i = vkg_empty_dtype(VKG_SHAPE(4, 4), VKG_I32);
    cr_assert_null(vkg_matmul(h, i));
    cr_assert(strstr(vkg_last_error(), "b is (4, 4) i32") && strstr(vkg_last_error(), "must be f32 or f16"), "%s",
              vkg_last_error());
    vkg_clear_error();
    vkg_scope_end();
}

/* The gradient of an f32 weight used through its f16 copy: dW = f32(f16(G X^T)), G X^T summed
 * in f32; tolerance one f16 rounding step either way (the sums' order differs by kernel), and
 * every value an f16 one. */
VKG_TEST(dtype, matmul_f16_backward) {
    enum { M = 32, K = 48, N = 64 };
    float w[M * K], x[K * N], g[M * N], want[M * K];
    vkgt_fill(w, M * K, -1.0f, 1.0f, 31);
    vkgt_fill(x, K * N, -1.0f, 1.0f, 32);
    vkgt_fill(g, M * N, -1.0f, 1.0f, 33);
    for (int i = 0; i < K * N; i++) x[i] = round16(x[i]);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += (double)g[m * N + n] * x[k * N + n];
            want[m * K + k] = round16((float)s);
        }
    vkg_tensor *wt = vkg_requires_grad(vkg_from_data(VKG_SHAPE(M, K), w), true);
    vkg_scope_begin();
    vkg_tensor *x16 = vkg_to_dtype(vkg_from_data(VKG_SHAPE(K, N), x), VKG_F16);
    vkg_tensor *y = vkg_matmul(vkg_to_dtype(wt, VKG_F16), x16);
    vkg_tensor *loss = vkg_sum_all(vkg_mul(y, vkg_from_data(VKG_SHAPE(M, N), g)));
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s", vkg_last_error());
    float *got = vkgt_read(vkg_grad(wt));
    vkgt_assert_close(got, want, M * K, 1e-3f, 1e-3f, "dW through an f16 matmul");
    for (int i = 0; i < M * K; i++) /* the f16 copy's gradient was stored as f16 */
        cr_assert_eq(got[i], round16(got[i]), "dW[%d] = %.9g is not an f16 value", i, (double)got[i]);
    free(got);
    vkg_scope_end();
    vkg_free(wt);
}
