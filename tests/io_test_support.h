/* Shared by the I/O and dataset tests (no Vulkan device needed): each test process gets its
 * own temporary directory, removed with everything in it at the end; and, in AddressSanitizer
 * builds, LEAK_CHECK() ends a test body with a leak check, since Criterion counts a leaking
 * test as passing. Needs _XOPEN_SOURCE 700 (nftw, mkdtemp) before any include. */
#ifndef VKG_TESTS_IO_TEST_SUPPORT_H
#define VKG_TESTS_IO_TEST_SUPPORT_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "vkgrad.h"

#if defined(__SANITIZE_ADDRESS__)
#define VKG_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VKG_TEST_ASAN 1
#endif
#endif

#ifdef VKG_TEST_ASAN
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (see above)")
#else
#define LEAK_CHECK() ((void)0)
#endif

static inline int vkg_io_test_rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* The suite `name`, with tmpdir made before each test and removed after it, and tpath(name)
 * giving "<tmpdir>/<name>" (one buffer: use the result before the next call). */
#define VKG_IO_TEST_SUITE(name)                                                            \
    static char tmpdir[] = "/tmp/vkg_test_" #name ".XXXXXX";                              \
    static char path_buf[4096];                                                            \
    static void setup(void) {                                                              \
        vkg_set_error_handler(vkg_error_handler_silent, NULL);                             \
        cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");                            \
    }                                                                                      \
    static void teardown(void) { nftw(tmpdir, vkg_io_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS); } \
    TestSuite(name, .init = setup, .fini = teardown);                                      \
    static const char *tpath(const char *file) {                                           \
        snprintf(path_buf, sizeof path_buf, "%s/%s", tmpdir, file);                        \
        return path_buf;                                                                   \
    }

/* Writes n bytes to path; asserts on failure. */
static inline void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

#endif
