/* Ops at sizes past lavapipe's loop limit. llvmpipe ends every loop of a shader invocation, without
 * an error, once the invocation has run 65535 loop iterations in all; each kernel below would
 * have walked more than that alone (a matmul's K, a long softmax row, a layer norm's dw over many
 * rows, an embedding's backward over many indices, attention over 2100 keys; a whole-tensor
 * reduction is in test_ops.c, a conv2d weight gradient in test_conv_ops.c; max pooling with its
 * grid squeezed to one workgroup, where each invocation's share is sized by the kernel's cost). Each result is checked against the C reference,
 * and what vkgrad cannot split is refused with a message that says why. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "vkgrad/conv_ops.h"
#include "vkgrad/nn_ops.h"
#include "vkgrad/seq_ops.h"
#include "support.h"

#define SEED 6553u
#define PAST 70001 /* more than 65535 */

static vkg_tensor *filled(vkg_shape s, uint64_t seed, float **host) {
    size_t n = (size_t)vkg_shape_numel(s);
    float *v = malloc(n * sizeof *v);
    vkgt_fill(v, n, -1.0f, 1.0f, seed);
    vkg_tensor *t = vkg_from_data(s, v);
    cr_assert_not_null(t, "%s", vkg_last_error());
    *host = v;
    return t;
}

VKG_TEST(loop_limit, matmul_with_a_long_inner_dimension) {
    vkg_scope_begin();
    float *a, *b;
    vkg_tensor *ta = filled(VKG_SHAPE(3, PAST), SEED, &a), *tb = filled(VKG_SHAPE(PAST, 2), SEED + 1, &b);
    float *got = vkgt_read(vkg_matmul(ta, tb)), want[6];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            double s = 0;
            for (int k = 0; k < PAST; k++) s += (double)a[(size_t)i * PAST + k] * b[(size_t)k * 2 + j];
            want[i * 2 + j] = (float)s;
        }
    vkgt_assert_close(got, want, 6, 1e-4f, 1e-3f, "(3, 70001) @ (70001, 2)");
    free(a), free(b), free(got);
    vkg_scope_end();
}

/* the same with the epilogue: products of K slices are summed first, then bias and relu */
VKG_TEST(loop_limit, matmul_bias_act_with_a_long_inner_dimension) {
    vkg_scope_begin();
    float *a, *b, *bias;
    vkg_tensor *ta = filled(VKG_SHAPE(3, PAST), SEED, &a), *tb = filled(VKG_SHAPE(PAST, 5), SEED + 1, &b);
    vkg_tensor *tbias = filled(VKG_SHAPE(5), SEED + 2, &bias);
    float *got = vkgt_read(vkg_matmul_bias_act(ta, tb, tbias, VKG_ACTIVATION_RELU)), want[15];
    int zeros = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double s = 0;
            for (int k = 0; k < PAST; k++) s += (double)a[(size_t)i * PAST + k] * b[(size_t)k * 5 + j];
            s += bias[j];
            want[i * 5 + j] = s > 0 ? (float)s : 0.0f;
            zeros += s <= 0;
        }
    cr_assert(zeros > 0 && zeros < 15, "the case should have both signs (%d zeros)", zeros);
    vkgt_assert_close(got, want, 15, 1e-4f, 1e-3f, "relu((3, 70001) @ (70001, 5) + bias)");
    free(a), free(b), free(bias), free(got);
    vkg_scope_end();
}

VKG_TEST(loop_limit, softmax_of_a_long_row) {
    vkg_scope_begin();
    float *x;
    vkg_shape s = VKG_SHAPE(2, 3 * PAST);
    vkg_tensor *t = filled(s, SEED + 2, &x);
    float *got = vkgt_read(vkg_softmax(t, 1)), *want = malloc((size_t)vkg_shape_numel(s) * sizeof *want);
    vkg_ref_softmax(want, x, s, 1);
    vkgt_assert_close(got, want, (size_t)vkg_shape_numel(s), 1e-4f, 1e-9f, "softmax over rows of 210003");
    free(x), free(got), free(want);
    vkg_scope_end();
}

VKG_TEST(loop_limit, layer_norm_weight_gradient_over_many_rows) {
    vkg_scope_begin();
    int64_t rows = PAST, D = 3;
    float *x, *w, *b, *dy;
    vkg_tensor *tx = filled(VKG_SHAPE(rows, D), SEED + 3, &x), *tdy = filled(VKG_SHAPE(rows, D), SEED + 4, &dy);
    vkg_tensor *tw = vkg_requires_grad(filled(VKG_SHAPE(D), SEED + 5, &w), true);
    vkg_tensor *tb = vkg_requires_grad(filled(VKG_SHAPE(D), SEED + 6, &b), true);
    vkg_tensor *y = vkg_layer_norm(tx, tw, tb, 1e-5f);
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = tdy }), VKG_OK, "%s", vkg_last_error());
    float *dx = calloc((size_t)(rows * D), sizeof *dx), dw[3] = { 0 }, db[3] = { 0 };
    vkg_ref_layer_norm_backward(dx, dw, db, x, w, rows, D, 1e-5f, dy);
    float *gw = vkgt_read(vkg_grad(tw)), *gb = vkgt_read(vkg_grad(tb));
    vkgt_assert_close(gw, dw, 3, 1e-3f, 1e-2f, "dw summed over 70001 rows");
    vkgt_assert_close(gb, db, 3, 1e-3f, 1e-2f, "db summed over 70001 rows");
    free(x), free(w), free(b), free(dy), free(dx), free(gw), free(gb);
    vkg_scope_end();
}

VKG_TEST(loop_limit, embedding_backward_over_many_indices) {
    vkg_scope_begin();
    /* 70001 indices into 5 rows, 60% of them row 2: the inverse index and row 2's sum are both
     * longer than one invocation may loop */
    int64_t M = PAST, V = 5, D = 2;
    int32_t *idx = malloc((size_t)M * sizeof *idx);
    for (int64_t i = 0; i < M; i++) idx[i] = i % 5 < 3 ? 2 : (int32_t)(i % 5);
    float *w, *dy;
    vkg_tensor *tw = vkg_requires_grad(filled(VKG_SHAPE(V, D), SEED + 7, &w), true);
    vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(M), VKG_I32, idx);
    vkg_tensor *tdy = filled(VKG_SHAPE(M, D), SEED + 8, &dy);
    vkg_tensor *y = vkg_embedding(tw, ti);
    cr_assert_eq(vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = tdy }), VKG_OK, "%s", vkg_last_error());
    float want[10] = { 0 };
    vkg_ref_embedding_backward(want, V, D, idx, M, dy);
    float *got = vkgt_read(vkg_grad(tw));
    vkgt_assert_close(got, want, 10, 1e-4f, 1e-2f, "embedding gradient over 70001 indices");
    free(idx), free(w), free(dy), free(got);
    vkg_scope_end();
}

VKG_TEST(loop_limit, what_cannot_be_split_is_refused) {
    if (!vkg_device()->max_loop_iterations) return; /* a device without the limit runs them */
    vkg_scope_begin();
    /* cross-entropy walks one sample's classes in one invocation */
    vkg_tensor *logits = vkg_zeros(VKG_SHAPE(2, 3 * PAST));
    vkg_tensor *target = vkg_from_data_dtype(VKG_SHAPE(2), VKG_I32, (int32_t[]){ 0, 1 });
    cr_assert_null(vkg_cross_entropy(logits, target, NULL));
    cr_assert(strstr(vkg_last_error(), "loop iterations") != NULL, "%s", vkg_last_error());
    cr_assert(strstr(vkg_last_error(), "cross_entropy") != NULL, "%s", vkg_last_error());
    /* the fused attention kernel walks every key for one query */
    vkg_tensor *q = vkg_zeros(VKG_SHAPE(1, 1, 2100, 32));
    setenv("VKG_ATTENTION_VARIANT", "fused", 1);
    cr_assert_null(vkg_scaled_dot_product_attention(q, q, q, NULL));
    unsetenv("VKG_ATTENTION_VARIANT");
    cr_assert(strstr(vkg_last_error(), "loop iterations") != NULL, "%s", vkg_last_error());
    vkg_scope_end();
}

/* where the scores fit in memory, lavapipe's attention goes through batched matmuls, which
 * have no such limit */
VKG_TEST(loop_limit, long_attention_through_matmuls) {
    if (!vkg_device()->max_loop_iterations) return;
    vkg_scope_begin();
    int64_t T = 2100, D = 32;
    vkg_shape s = VKG_SHAPE(1, 1, T, D);
    float *q, *k, *v;
    vkg_tensor *tq = filled(s, SEED + 9, &q), *tk = filled(s, SEED + 10, &k), *tv = filled(s, SEED + 11, &v);
    float *got = vkgt_read(vkg_scaled_dot_product_attention(tq, tk, tv, &(vkg_attention_desc){ .causal = true }));
    float *want = malloc((size_t)(T * D) * sizeof *want);
    vkg_ref_sdpa(want, NULL, q, k, v, NULL, VKG_SHAPE(0), 1, 1, T, T, D, D, true, 1.0f / sqrtf((float)D));
    vkgt_assert_close(got, want, (size_t)(T * D), 1e-4f, 1e-5f, "causal attention over 2100 keys");
    free(q), free(k), free(v), free(got), free(want);
    vkg_scope_end();
}

/* The grid of a max pool is sized from its cost per output (loop iterations): with one workgroup
 * the share of each invocation is as large as that cost allows, so a cost set too low runs the
 * invocation past the limit and the last outputs of each share are never written. 2x2 windows
 * cost 11 iterations on lavapipe, where 8 were counted: the reference CNN's evaluation at batch
 * 500 lost images 486-499 of every batch that way. */
VKG_TEST(loop_limit, max_pool_with_one_workgroup) {
    setenv("VKG_MAX_GROUPS", "1", 1);
    vkg_grid_reset();
    vkg_scope_begin();
    vkg_shape xs = VKG_SHAPE(96, 16, 32, 32); /* 393,216 outputs: 6,144 per invocation at cost 8 */
    float *x;
    vkg_tensor *tx = filled(xs, SEED + 7, &x);
    vkg_pool2d_desc d = { .kernel = { 2, 2 } };
    size_t n = (size_t)96 * 16 * 16 * 16;
    float *got = vkgt_read(vkg_max_pool2d(tx, &d)), *want = malloc(n * sizeof *want);
    int32_t *wi = malloc(n * sizeof *wi);
    vkg_ref_max_pool2d(want, wi, x, xs, &d);
    cr_assert_eq(memcmp(got, want, n * sizeof *got), 0, "max pooling of (96, 16, 32, 32) with one workgroup");
    free(x), free(got), free(want), free(wi);
    vkg_scope_end();
    unsetenv("VKG_MAX_GROUPS");
}
