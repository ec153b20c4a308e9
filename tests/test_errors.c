/* Bad input: every op refuses wrong shapes, bad axes, wrong dtypes and NULL with a message that
 * names the op and the shapes; NULL inputs propagate without a new message; out of memory and
 * tensors larger than one storage binding fail cleanly, and tensors made before are intact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Asserts that expr returned NULL and that the message contains every given fragment. */
#define EXPECT_REFUSED(expr, ...)                                                                  \
    do {                                                                                           \
        vkg_clear_error();                                                                         \
        const void *r_ = (expr);                                                                   \
        cr_assert_null(r_, "%s should have been refused", #expr);                                  \
        const char *frags_[] = { __VA_ARGS__ };                                                    \
        for (size_t i_ = 0; i_ < sizeof frags_ / sizeof *frags_; i_++)                             \
            cr_assert(strstr(vkg_last_error(), frags_[i_]), "%s: message \"%s\" lacks \"%s\"", #expr, \
                      vkg_last_error(), frags_[i_]);                                               \
    } while (0)

VKG_TEST(errors, shapes_and_axes) {
    vkg_tensor *a = vkg_zeros(VKG_SHAPE(128, 784));
    vkg_tensor *w = vkg_zeros(VKG_SHAPE(512, 256));
    EXPECT_REFUSED(vkg_matmul(a, w), "vkg_matmul", "(128, 784)", "(512, 256)", "784 != 512");
    EXPECT_REFUSED(vkg_matmul(vkg_zeros(VKG_SHAPE(2, 3, 4)), vkg_zeros(VKG_SHAPE(5, 4, 2))), "batch", "(2, 3, 4)");
    EXPECT_REFUSED(vkg_matmul(vkg_scalar(1.0f), a), "vkg_matmul", "at least 1 dim");
    EXPECT_REFUSED(vkg_add(vkg_zeros(VKG_SHAPE(3, 4)), vkg_zeros(VKG_SHAPE(5))), "vkg_add", "(3, 4)", "(5,)", "broadcast");
    EXPECT_REFUSED(vkg_mul(vkg_zeros(VKG_SHAPE(2, 3)), vkg_zeros(VKG_SHAPE(3, 2))), "vkg_mul", "(2, 3)", "(3, 2)");
    EXPECT_REFUSED(vkg_where(vkg_zeros(VKG_SHAPE(4)), a, a), "vkg_where", "(4,)");
    EXPECT_REFUSED(vkg_sum(a, 2, false), "sum", "axis 2", "(128, 784)");
    EXPECT_REFUSED(vkg_argmax(a, -3, false), "argmax", "axis -3");
    EXPECT_REFUSED(vkg_max(vkg_zeros(VKG_SHAPE(0, 3)), 0, false), "vkg_max", "empty");
    EXPECT_REFUSED(vkg_sum(vkg_scalar(1.0f), 0, false), "axis 0", "0 dims");
    EXPECT_REFUSED(vkg_reshape(a, VKG_SHAPE(11, -1)), "vkg_reshape", "(11, -1)");
    EXPECT_REFUSED(vkg_reshape(a, VKG_SHAPE(-1, -1)), "vkg_reshape", "one dimension");
    EXPECT_REFUSED(vkg_view(a, VKG_SHAPE(100, 100)), "vkg_view", "(100, 100)", "(128, 784)");
    EXPECT_REFUSED(vkg_transpose(a, 0, 2), "vkg_transpose", "axis 2");
    EXPECT_REFUSED(vkg_permute(a, (int[]){ 0, 0 }), "vkg_permute", "twice");
    EXPECT_REFUSED(vkg_permute(a, NULL), "vkg_permute", "NULL");
    EXPECT_REFUSED(vkg_narrow(a, 0, 120, 10), "vkg_narrow", "[120, 130)");
    EXPECT_REFUSED(vkg_slice(a, 1, 0, 5, 0), "vkg_slice", "step 0");
    EXPECT_REFUSED(vkg_expand(a, VKG_SHAPE(3, 784)), "vkg_expand", "(128, 784)", "(3, 784)");
    EXPECT_REFUSED(vkg_expand(a, VKG_SHAPE(784)), "vkg_expand", "fewer dims");
    EXPECT_REFUSED(vkg_squeeze(a, 0), "vkg_squeeze", "size 128");
    EXPECT_REFUSED(vkg_unsqueeze(a, 4), "vkg_unsqueeze", "axis 4");
    EXPECT_REFUSED(vkg_empty(VKG_SHAPE(3, -2)), "vkg_empty", "negative");
    EXPECT_REFUSED(vkg_empty((vkg_shape){ .ndim = 9 }), "vkg_empty", "9 dimensions");
    EXPECT_REFUSED(vkg_arange(0.0f, 1.0f, 0.0f), "vkg_arange", "step 0");
    EXPECT_REFUSED(vkg_from_data(VKG_SHAPE(3), NULL), "vkg_from_data", "NULL");
    int32_t ints[4] = { 0 };
    vkg_tensor *ti = vkg_from_data_dtype(VKG_SHAPE(4), VKG_I32, ints);
    EXPECT_REFUSED(vkg_relu(ti), "relu", "i32", "f32");
    EXPECT_REFUSED(vkg_add(a, ti), "add", "i32");
    EXPECT_REFUSED(vkg_unary(VKG_OP_ADD, a), "vkg_unary");
    EXPECT_REFUSED(vkg_binary(VKG_OP_RELU, a, a), "vkg_binary");
    EXPECT_REFUSED(vkg_reduce(VKG_OP_MATMUL, a, 0, false), "vkg_reduce");

    float small[4];
    vkg_clear_error();
    cr_assert_eq(vkg_tensor_read(a, small, sizeof small), VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "401408 bytes"), "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(NULL, small, sizeof small), VKG_ERR_INVALID);
    cr_assert(isnan(vkg_item(a)));
    cr_assert(strstr(vkg_last_error(), "vkg_item") && strstr(vkg_last_error(), "100352 elements"), "%s", vkg_last_error());
}

/* NULL in, NULL out: a chain needs one check at its end, and only the first failure speaks. */
VKG_TEST(errors, null_propagates_silently) {
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(2, 3));
    vkg_tensor *bad = vkg_matmul(x, x); /* (2,3) @ (2,3): the first failure sets the message */
    cr_assert_null(bad);
    char first[512];
    snprintf(first, sizeof first, "%s", vkg_last_error());
    vkg_tensor *y = vkg_sum(vkg_relu(vkg_add(vkg_exp(bad), x)), 0, false);
    cr_assert_null(y);
    cr_assert_str_eq(vkg_last_error(), first, "later ops must not overwrite the first message");
    vkg_clear_error();
    /* every op: NULL in gives NULL out and no message */
    for (int op = 0; op < VKG_OP_COUNT; op++) {
        const vkg_op_info *o = &vkg_op_table[op];
        const void *r = NULL;
        switch (o->kind) {
        case VKG_KIND_UNARY: r = op == VKG_OP_POW ? vkg_pow(NULL, 2.0f) : vkg_unary((vkg_op)op, NULL); break;
        case VKG_KIND_BINARY: r = vkg_binary((vkg_op)op, NULL, x) ? (void *)1 : vkg_binary((vkg_op)op, x, NULL); break;
        case VKG_KIND_TERNARY: r = vkg_where(NULL, x, x); break;
        case VKG_KIND_REDUCE: r = vkg_reduce((vkg_op)op, NULL, 0, false); break;
        case VKG_KIND_MATMUL:
            r = op == VKG_OP_MATMUL_BIAS_ACT ? vkg_matmul_bias_act(NULL, x, x, VKG_ACTIVATION_RELU) : vkg_matmul(NULL, x);
            break;
        case VKG_KIND_COPY: r = vkg_copy(NULL); break;
        case VKG_KIND_FILL: r = vkg_fill_(NULL, 1.0f); break;
        case VKG_KIND_RANDOM: break; /* no tensor input to be NULL */
        case VKG_KIND_NN:
        case VKG_KIND_CONV:
        case VKG_KIND_SEQ: break;    /* their own test files check NULL inputs */
        }
        cr_assert_null(r, "%s(NULL) returned a tensor", o->name);
        cr_assert_str_empty(vkg_last_error(), "%s(NULL) set a message: %s", o->name, vkg_last_error());
    }
    cr_assert_null(vkg_reshape(NULL, VKG_SHAPE(1)));
    cr_assert_null(vkg_transpose(NULL, 0, 1));
    cr_assert_null(vkg_keep(NULL));
    vkg_free(NULL);
    cr_assert_str_empty(vkg_last_error());
}

/* A handler is called once per failure, not once per op of a failed chain. */
static int handler_calls;
static void count_handler(vkg_status st, const char *message, void *user) {
    (void)st;
    (void)message;
    (*(int *)user)++;
}

VKG_TEST(errors, handler_called_once_per_failure) {
    vkg_set_error_handler(count_handler, &handler_calls);
    vkg_tensor *x = vkg_zeros(VKG_SHAPE(2, 3));
    cr_assert_null(vkg_relu(vkg_exp(vkg_matmul(x, x))));
    cr_assert_eq(handler_calls, 1);
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
}

VKG_TEST(errors, larger_than_one_binding) {
    /* 40000 x 1000 f32 = 160 MB, past lavapipe's 128 MiB maxStorageBufferRange */
    const vkg_device_info *d = vkg_device();
    uint64_t most = d->max_tensor_bytes;
    cr_assert(most > 0 && most <= d->max_storage_buffer_range && most <= d->max_allocation_size);
    int64_t rows = (int64_t)(most / 4000) + 100;
    vkg_clear_error();
    cr_assert_null(vkg_empty(VKG_SHAPE(rows, 1000)));
    cr_assert_eq(vkg_last_status(), VKG_ERR_TOO_LARGE);
    /* lavapipe: the binding range binds; NVIDIA: the allocation size (4 GiB - 2 MiB) */
    cr_assert((strstr(vkg_last_error(), "maxStorageBufferRange") || strstr(vkg_last_error(), "maxMemoryAllocationSize")) &&
                  strstr(vkg_last_error(), "bytes"),
              "%s", vkg_last_error());
    /* the largest tensor that fits one binding works, end to end */
    int64_t n = (int64_t)(most / 4);
    vkg_tensor *big = vkg_full(VKG_SHAPE(n), 0.5f);
    cr_assert_not_null(big, "%s", vkg_last_error());
    cr_assert_eq(vkg_item(vkg_sum_all(vkg_narrow(big, 0, n - 1000, 1000))), 500.0f);
}

VKG_TEST(errors, out_of_device_memory_keeps_other_tensors) {
    float pattern[256];
    for (int i = 0; i < 256; i++) pattern[i] = (float)i * 0.5f;
    vkg_tensor *keep = vkg_from_data(VKG_SHAPE(256), pattern);
    vkg_tensor *keep2 = vkg_add_scalar(keep, 1.0f);
    /* lavapipe does not enforce its heap (memory is lazy), so vkgrad's own heap budget must */
    int64_t chunk = (int64_t)(vkg_device()->max_storage_buffer_range / 4 / 2); /* 64 MiB */
    vkg_tensor *t = NULL;
    int made = 0;
    vkg_clear_error();
    for (int i = 0; i < 1000; i++) {
        t = vkg_empty(VKG_SHAPE(chunk));
        if (!t) break;
        made++;
    }
    cr_assert_null(t, "the heap never ran out after %d tensors", made);
    cr_assert_eq(vkg_last_status(), VKG_ERR_OUT_OF_MEMORY);
    cr_assert(strstr(vkg_last_error(), "out of device memory") && strstr(vkg_last_error(), "bytes") &&
                  strstr(vkg_last_error(), "in use"),
              "%s", vkg_last_error());
    cr_log_info("out of memory after %d tensors of %lld bytes: %s", made, (long long)chunk * 4, vkg_last_error());
    float got[256];
    cr_assert_eq(vkg_tensor_read(keep, got, sizeof got), VKG_OK, "%s", vkg_last_error());
    cr_assert_arr_eq(got, pattern, sizeof pattern);
    cr_assert_eq(vkg_tensor_read(keep2, got, sizeof got), VKG_OK);
    cr_assert_eq(got[255], pattern[255] + 1.0f);
}

Test(errors, not_initialized) {
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_null(vkg_zeros(VKG_SHAPE(3)));
    cr_assert(strstr(vkg_last_error(), "vkg_init"), "%s", vkg_last_error());
    cr_assert_eq(vkg_sync(), VKG_ERR_NOT_INITIALIZED);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .device = "no-such-device-anywhere" }), VKG_ERR_NO_DEVICE);
    cr_assert(!vkg_is_initialized());
    cr_assert_null(vkg_zeros(VKG_SHAPE(3)));
    vkg_shutdown(); /* harmless when not initialized */
    vkgt_leak_check();
}
