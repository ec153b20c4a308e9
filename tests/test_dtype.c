/* f16 (IEEE binary16) storage and dtype conversion: the C reference against IEEE's rules and
 * the compiler's own conversion, f16 tensors made, read back, viewed and checkpointed, and
 * (below) vkg_to_dtype on the device bit for bit against the reference, with its gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "vkgrad/checkpoint.h"

static uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float bitsf(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

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
        uint16_t h = vkg_ref_f32_to_f16(bitsf(cases[i].f));
        cr_assert_eq(h, cases[i].h, "f32 %08x -> f16 %04x, want %04x", cases[i].f, h, cases[i].h);
    }
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0x0001)), 0x33800000u);
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0x03ff)), 0x387fc000u);
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0x8200)), 0xb8000000u);  /* -2^-15 */
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0x7bff)), 0x477fe000u);
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0xfc00)), 0xff800000u);
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0x7c01)), 0x7fc02000u);  /* signalling NaN: quieted */
    cr_assert_eq(fbits(vkg_ref_f16_to_f32(0x7e00)), 0x7fc00000u);
}

/* Every half: exact in f32, and back to the same half (NaNs come back quieted). Where the
 * compiler has _Float16 (gcc 12 on x86-64: libgcc's soft-fp, or F16C), every half and a sweep
 * of floats agree with it too: an independent implementation of the same IEEE rules. */
VKG_TEST(dtype, reference_round_trip_and_compiler) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vkg_ref_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        uint16_t back = vkg_ref_f32_to_f16(f);
        cr_assert_eq(back, nan ? (uint16_t)(h | 0x200u) : (uint16_t)h, "half %04x -> %08x -> %04x", h, fbits(f), back);
        if (!nan) cr_assert_eq(f, f); /* not a NaN */
#ifdef __FLT16_MAX__
        _Float16 c;
        uint16_t hb = (uint16_t)h;
        memcpy(&c, &hb, sizeof c);
        float cf = (float)c;
        if (nan) cr_assert(isnan(cf) && isnan(f));
        else cr_assert_eq(fbits(cf), fbits(f), "half %04x: compiler %08x, reference %08x", h, fbits(cf), fbits(f));
#endif
    }
#ifdef __FLT16_MAX__
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) { /* every exponent, many mantissas */
        float f = bitsf((uint32_t)u);
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
