/* Leak check for the I/O and dataset tests: Criterion counts a leaking test as passing, so in
 * AddressSanitizer builds each test body ends with LEAK_CHECK(), which fails it instead. */
#ifndef VKG_TESTS_IO_TEST_LEAK_H
#define VKG_TESTS_IO_TEST_LEAK_H

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

#endif
