/* A user's own shader through vkg_custom_dispatch: results, ordering with built-in ops in one
 * stream (barriers where needed), and the refusals. */
#include <stdint.h>
#include <string.h>

#include "support.h"
#include "scale_add.spv.h" /* tests/shaders/scale_add.comp, compiled at build time */

typedef struct { uint32_t n, m; float a; } scale_push; /* mirrors P in scale_add.comp */

VKG_TEST(custom, dispatch_in_the_stream) {
    enum { N = 1001, M = 7 };
    float x[N], b[M], want[N];
    vkgt_fill(x, N, -1.0f, 1.0f, 1);
    vkgt_fill(b, M, -1.0f, 1.0f, 2);
    vkg_tensor *tx = vkg_mul_scalar(vkg_from_data(VKG_SHAPE(N), x), 1.0f); /* written by an op just before */
    vkg_tensor *tb = vkg_from_data(VKG_SHAPE(M), b);
    vkg_tensor *y = vkg_empty(VKG_SHAPE(N));
    scale_push pc = { N, M, 3.0f };
    cr_assert_eq(vkg_custom_dispatch(&(vkg_custom_desc){ .name = "scale_add", .spirv = scale_add,
                                                         .spirv_size = sizeof scale_add, .bind = { y, tx, tb }, .nout = 1,
                                                         .push = &pc, .push_size = sizeof pc, .local_size = 64,
                                                         .groups = { (N + 63) / 64 } }),
                 VKG_OK, "%s", vkg_last_error());
    vkg_tensor *z = vkg_add_scalar(y, 1.0f); /* and read by an op just after */
    float got[N];
    cr_assert_eq(vkg_tensor_read(z, got, sizeof got), VKG_OK);
    for (int i = 0; i < N; i++) want[i] = 3.0f * x[i] + b[i % M] + 1.0f;
    vkgt_assert_close(got, want, N, 1e-6f, 1e-6f, "custom scale_add");
}

VKG_TEST(custom, refusals) {
    vkg_tensor *y = vkg_empty(VKG_SHAPE(4));
    static const uint32_t junk[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    cr_assert_eq(vkg_custom_dispatch(&(vkg_custom_desc){ .name = "junk", .spirv = junk, .spirv_size = sizeof junk,
                                                         .bind = { y }, .nout = 1, .groups = { 1 } }),
                 VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "not SPIR-V"), "%s", vkg_last_error());
    char big[200] = { 0 };
    cr_assert_eq(vkg_custom_dispatch(&(vkg_custom_desc){ .spirv = scale_add, .spirv_size = sizeof scale_add,
                                                         .bind = { y }, .nout = 1, .push = big, .push_size = sizeof big }),
                 VKG_ERR_INVALID);
    cr_assert(strstr(vkg_last_error(), "push constants"), "%s", vkg_last_error());
    cr_assert_eq(vkg_custom_dispatch(NULL), VKG_ERR_INVALID);
    cr_assert_eq(vkg_custom_dispatch(&(vkg_custom_desc){ .spirv = scale_add, .spirv_size = sizeof scale_add,
                                                         .bind = { y }, .nout = 2 }),
                 VKG_ERR_INVALID);
}
