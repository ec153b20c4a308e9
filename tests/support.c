/* Test support: device per test, validation-message and leak checks, data and comparisons. */
#define _GNU_SOURCE /* RTLD_NODELETE */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "support.h"

#if defined(VKG_SANITIZE)
#include <sanitizer/lsan_interface.h>
#endif

static void on_validation(const char *message, void *user) {
    (void)user;
    cr_log_error("validation message: %s", message);
}

#if defined(VKG_SANITIZE)
/* Before any test, in every test program (the ones that call vkg_init themselves too): the
 * validation layer keeps a few KB of C++ allocations past vkDestroyInstance, and the loader
 * unloads it, so LeakSanitizer could not name it in tests/lsan.supp; pinning the library keeps
 * its frames symbolized (and so suppressible by name, and only by name). lavapipe keeps the
 * CPU's L3 cache masks (Mesa's util_cpu_detect: (L3 caches + 1) x 128 bytes, allocated once on
 * AMD Zen CPUs, never freed) in a global; unloaded with the driver, and allocated again at the
 * next load, they became a leak per vkg_init that nothing could name. Pinned, they stay
 * reachable. */
__attribute__((constructor)) static void pin_driver_libraries(void) {
    dlopen("libVkLayer_khronos_validation.so", RTLD_NOW | RTLD_NODELETE);
    dlopen("libvulkan_lvp.so", RTLD_NOW | RTLD_NODELETE);
}
#endif

void vkgt_setup(void) {
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    vkg_set_validation_hook(on_validation, NULL);
    vkg_status st = vkg_init(&(vkg_init_desc){ .validate = true, .cache_dir = getenv("VKG_TEST_CACHE") });
    if (st == VKG_ERR_NO_DEVICE) cr_skip_test("no Vulkan device: %s", vkg_last_error());
    cr_assert_eq(st, VKG_OK, "vkg_init: %s", vkg_last_error());
    char line[1024];
    vkg_device_line(vkg_device(), line, sizeof line);
    cr_log_info("device: %s", line);
}

void vkgt_leak_check(void) {
#if defined(VKG_SANITIZE)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

void vkgt_finish(void) {
    vkg_shutdown();
    cr_assert_eq(vkg_validation_message_count(), 0, "%llu validation messages",
                 (unsigned long long)vkg_validation_message_count());
    vkgt_leak_check();
}

void vkgt_fill(float *x, size_t n, float lo, float hi, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = lo + (hi - lo) * (float)((double)(z >> 11) / 9007199254740992.0);
    }
}

vkg_tensor *vkgt_leaf(vkg_shape s, float lo, float hi, uint64_t seed) {
    size_t n = (size_t)vkg_shape_numel(s);
    float *v = malloc((n ? n : 1) * sizeof *v);
    vkgt_fill(v, n, lo, hi, seed);
    vkg_tensor *t = vkg_requires_grad(vkg_from_data(s, v), true);
    free(v);
    cr_assert_not_null(t, "%s", vkg_last_error());
    return t;
}

float *vkgt_read(const vkg_tensor *t) {
    cr_assert_not_null(t, "tensor is NULL: %s", vkg_last_error());
    size_t n = (size_t)vkg_numel(t);
    float *buf = malloc((n ? n : 1) * sizeof *buf);
    cr_assert_not_null(buf);
    cr_assert_eq(vkg_tensor_read(t, buf, n * sizeof *buf), VKG_OK, "read: %s", vkg_last_error());
    return buf;
}

void vkgt_assert_close(const float *got, const float *want, size_t n, float rtol, float atol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        float g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        cr_assert(fabsf(g - w) <= atol + rtol * fabsf(w), "%s: element %zu of %zu is %.9g, want %.9g", what, i, n,
                  (double)g, (double)w);
    }
}
