/* Tensor tests: creation and read-back, views share storage (and copies do not), view values,
 * scopes own tensors, vkg_keep and vkg_free, writes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static float *iota(size_t n) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)i;
    return x;
}

VKG_TEST(tensor, create_and_read) {
    float *x = iota(24);
    vkg_tensor *t = vkg_from_data(VKG_SHAPE(2, 3, 4), x);
    cr_assert_eq(vkg_ndim(t), 3);
    cr_assert_eq(vkg_dim(t, -1), 4);
    cr_assert_eq(vkg_stride(t, 0), 12);
    cr_assert_eq(vkg_numel(t), 24);
    cr_assert(vkg_is_contiguous(t));
    float *got = vkgt_read(t);
    cr_assert_arr_eq(got, x, 24 * sizeof(float));
    free(got);
    free(x);
    int32_t ints[5] = { -3, 0, 7, 1 << 30, -(1 << 30) }, back[5];
    vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(5), VKG_I32, ints);
    cr_assert_eq(vkg_tensor_dtype(ti), VKG_I32);
    cr_assert_eq(vkg_tensor_read(ti, back, sizeof back), VKG_OK);
    cr_assert_arr_eq(back, ints, sizeof ints);
    uint8_t bytes[7] = { 0, 1, 2, 128, 255, 9, 3 }, bb[7];
    vkg_tensor *tb = vkg_from_data_dtype(VKG_SHAPE(7), VKG_U8, bytes);
    cr_assert_eq(vkg_tensor_read(tb, bb, sizeof bb), VKG_OK);
    cr_assert_arr_eq(bb, bytes, sizeof bytes);
    cr_assert_eq(vkg_item(vkg_scalar(3.5f)), 3.5f);
    cr_assert_eq(vkg_ndim(vkg_scalar(1.0f)), 0);
    cr_assert_eq(vkg_numel(vkg_empty(VKG_SHAPE(0, 5))), 0);
    cr_assert_not_null(vkg_zeros(VKG_SHAPE(3, 0)), "%s", vkg_last_error()); /* empty tensors are contiguous */
    cr_assert(vkg_is_contiguous(vkg_transpose(vkg_empty(VKG_SHAPE(3, 0)), 0, 1)));
    cr_assert_eq(vkg_tensor_read(vkg_empty(VKG_SHAPE(0)), NULL, 0), VKG_OK);
}

VKG_TEST(tensor, views_share_storage) {
    float *x = iota(24);
    vkg_tensor *t = vkg_from_data(VKG_SHAPE(2, 3, 4), x);
    vkg_tensor *r = vkg_reshape(t, VKG_SHAPE(6, -1));
    cr_assert_eq(vkg_dim(r, 1), 4);
    cr_assert(vkg_shares_storage(r, t), "reshape of a contiguous tensor is a view");
    vkg_tensor *tr = vkg_transpose(t, 0, 2); /* (4, 3, 2) */
    cr_assert(vkg_shares_storage(tr, t));
    cr_assert(!vkg_is_contiguous(tr));
    float *g = vkgt_read(tr);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 2; k++) cr_assert_eq(g[i * 6 + j * 2 + k], x[k * 12 + j * 4 + i]);
    free(g);
    /* a transposed tensor cannot be viewed flat: view refuses, reshape copies */
    cr_assert_null(vkg_view(tr, VKG_SHAPE(24)));
    cr_assert(strstr(vkg_last_error(), "vkg_view"), "%s", vkg_last_error());
    vkg_tensor *flat = vkg_reshape(tr, VKG_SHAPE(24));
    cr_assert(!vkg_shares_storage(flat, t));
    /* but splitting a dim of a permuted tensor is still a view */
    vkg_tensor *p = vkg_transpose(vkg_reshape(t, VKG_SHAPE(6, 4)), 0, 1); /* (4, 6) */
    vkg_tensor *split = vkg_view(p, VKG_SHAPE(4, 2, 3));
    cr_assert_not_null(split, "%s", vkg_last_error());
    cr_assert(vkg_shares_storage(split, t));
    float *sv = vkgt_read(split), *pv = vkgt_read(p);
    cr_assert_arr_eq(sv, pv, 24 * sizeof(float));
    free(sv);
    free(pv);
    vkg_tensor *c = vkg_contiguous(t);
    cr_assert_eq(c, t, "contiguous of a contiguous tensor is the tensor itself");
    free(x);
}

VKG_TEST(tensor, slice_narrow_expand_squeeze) {
    float *x = iota(20);
    vkg_tensor *t = vkg_from_data(VKG_SHAPE(4, 5), x);
    vkg_tensor *s = vkg_slice(t, 1, 1, -1, 2); /* columns 1, 3 */
    cr_assert_eq(vkg_dim(s, 1), 2);
    float *g = vkgt_read(s);
    float want[8] = { 1, 3, 6, 8, 11, 13, 16, 18 };
    cr_assert_arr_eq(g, want, sizeof want);
    free(g);
    vkg_tensor *n = vkg_narrow(t, 0, -2, 2); /* the last two rows */
    g = vkgt_read(n);
    cr_assert_eq(g[0], 10.0f);
    cr_assert_eq(g[9], 19.0f);
    free(g);
    cr_assert_eq(vkg_numel(vkg_slice(t, 0, 3, 1, 1)), 0, "an empty slice is allowed");
    vkg_tensor *row = vkg_narrow(t, 0, 1, 1);        /* (1, 5) */
    vkg_tensor *e = vkg_expand(row, VKG_SHAPE(2, 3, -1, 5));
    cr_assert_not_null(e, "%s", vkg_last_error());
    cr_assert_eq(vkg_stride(e, 0), 0);
    g = vkgt_read(e);
    for (int i = 0; i < 30; i++) cr_assert_eq(g[i], (float)(5 + i % 5));
    free(g);
    vkg_tensor *sq = vkg_squeeze(row, 0);
    cr_assert_eq(vkg_ndim(sq), 1);
    vkg_tensor *un = vkg_unsqueeze(sq, -1); /* (5, 1) */
    cr_assert_eq(vkg_dim(un, 0), 5);
    cr_assert_eq(vkg_dim(un, 1), 1);
    g = vkgt_read(un);
    cr_assert_eq(g[4], 9.0f);
    free(g);
    cr_assert_eq(vkg_ndim(vkg_flatten(t)), 1);
    free(x);
}

VKG_TEST(tensor, scopes_own_tensors) {
    vkg_memory_stats m0 = vkg_memory_stats_get();
    vkg_tensor *kept = NULL, *outer = NULL;
    vkg_scope_begin();
    cr_assert_eq(vkg_scope_depth(), 1);
    outer = vkg_full(VKG_SHAPE(10), 1.0f);
    vkg_scope_begin();
    vkg_tensor *tmp = vkg_add(outer, outer);
    kept = vkg_keep(vkg_mul(tmp, tmp)); /* moves to the enclosing scope */
    vkg_scope_end();
    cr_assert_eq(vkg_item(vkg_sum_all(kept)), 40.0f);
    vkg_keep(kept); /* now owned by no scope */
    vkg_scope_end();
    cr_assert_eq(vkg_scope_depth(), 0);
    float got[10];
    cr_assert_eq(vkg_tensor_read(kept, got, sizeof got), VKG_OK, "a kept tensor outlives its scopes");
    cr_assert_eq(got[9], 4.0f);
    vkg_free(kept);
    cr_assert_eq(vkg_memory_stats_get().in_use, m0.in_use, "everything is freed");
    /* a view keeps its storage alive after the base is freed */
    vkg_tensor *base = vkg_arange(0.0f, 6.0f, 1.0f);
    vkg_tensor *v = vkg_narrow(base, 0, 2, 3);
    vkg_free(base);
    cr_assert_eq(vkg_tensor_read(v, got, 3 * sizeof(float)), VKG_OK);
    cr_assert_eq(got[0], 2.0f);
    vkg_free(v);
    cr_assert_eq(vkg_memory_stats_get().in_use, m0.in_use);
    vkg_scope_end(); /* ending a scope that is not open does nothing */
}

/* Tensor, storage and node structs are recycled (lib/runtime/recycle.c): one freed with a
 * gradient, a node, a view's offset and a scope must come back as a plain new tensor. */
VKG_TEST(tensor, recycled_structs_start_clean) {
    for (int round = 0; round < 3; round++) {
        vkg_scope_begin();
        vkg_tensor *w = vkg_requires_grad(vkg_full(VKG_SHAPE(4, 3), 2.0f), true);
        vkg_tensor *v = vkg_narrow(vkg_transpose(w, 0, 1), 1, 1, 2); /* offset 1, strides (1, 3) */
        cr_assert_eq(vkg_backward(vkg_sum_all(vkg_mul(v, v))), VKG_OK, "%s", vkg_last_error());
        cr_assert_not_null(vkg_grad(w));
        vkg_scope_end();
        vkg_scope_begin();
        vkg_tensor *t[8];
        for (int i = 0; i < 8; i++) {
            t[i] = vkg_full(VKG_SHAPE(2, 5), (float)i);
            cr_assert(!vkg_tensor_requires_grad(t[i]));
            cr_assert_null(vkg_grad(t[i]));
            cr_assert(vkg_is_contiguous(t[i]));
            cr_assert_eq(vkg_stride(t[i], 0), 5);
        }
        vkg_tensor *y = vkg_add(t[3], t[7]);
        cr_assert(!vkg_tensor_requires_grad(y), "no input requires grad: no node");
        float got[10];
        cr_assert_eq(vkg_tensor_read(y, got, sizeof got), VKG_OK);
        for (int i = 0; i < 10; i++) cr_assert_eq(got[i], 10.0f);
        vkg_scope_end();
    }
}

VKG_TEST(tensor, write_then_read) {
    vkg_tensor *t = vkg_zeros(VKG_SHAPE(3, 3));
    vkg_tensor *y = vkg_add_scalar(t, 1.0f); /* pending work reads t ...                    */
    float nine[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    cr_assert_eq(vkg_tensor_write(t, nine, sizeof nine), VKG_OK); /* ... and must see the old t */
    float got[9];
    cr_assert_eq(vkg_tensor_read(y, got, sizeof got), VKG_OK);
    for (int i = 0; i < 9; i++) cr_assert_eq(got[i], 1.0f);
    cr_assert_eq(vkg_tensor_read(t, got, sizeof got), VKG_OK);
    cr_assert_arr_eq(got, nine, sizeof nine);
    cr_assert_neq(vkg_tensor_write(vkg_transpose(t, 0, 1), nine, sizeof nine), VKG_OK);
    cr_assert(strstr(vkg_last_error(), "non-contiguous"), "%s", vkg_last_error());
    cr_assert_neq(vkg_tensor_write(t, nine, 8), VKG_OK);
}
