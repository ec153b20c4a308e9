/* Shared test support: each test gets a fresh device (created after Criterion's fork) with the
 * validation layer on; VKG_TEST ends the body by shutting down and failing on any validation
 * message and, in sanitizer builds, on any leak. Also tolerance checks and seeded data. */
#ifndef VKG_TEST_SUPPORT_H
#define VKG_TEST_SUPPORT_H

#include <criterion/criterion.h>
#include <stdint.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"

void vkgt_setup(void);
void vkgt_finish(void);

#define VKG_TEST(suite, name, ...)                               \
    static void suite##_##name##_body(void);                     \
    Test(suite, name, .init = vkgt_setup, ##__VA_ARGS__) {       \
        suite##_##name##_body();                                 \
        vkgt_finish();                                           \
    }                                                            \
    static void suite##_##name##_body(void)

/* Fills with uniform values in [lo, hi) from a fixed seed (splitmix64; printed on failure). */
void vkgt_fill(float *x, size_t n, float lo, float hi, uint64_t seed);
/* A leaf that requires grad: shape s, values vkgt_fill(lo, hi, seed); asserts it was made. */
vkg_tensor *vkgt_leaf(vkg_shape s, float lo, float hi, uint64_t seed);
/* Reads t back into a new host array (freed by the caller); asserts on failure. */
float *vkgt_read(const vkg_tensor *t);
/* |got - want| <= atol + rtol |want| everywhere; NaN meets NaN, Inf the same Inf. */
void vkgt_assert_close(const float *got, const float *want, size_t n, float rtol, float atol, const char *what);
/* Calls and checks leaks (sanitizer builds only). */
void vkgt_leak_check(void);

#endif
