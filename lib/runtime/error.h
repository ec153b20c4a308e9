/* Errors inside the library: every failure goes through vkg_fail, which keeps the message in
 * thread-local storage for vkg_last_error() and calls the handler once. Returns st so that
 * `return vkg_fail(...)` and `st = vkg_fail(...); goto done;` read naturally. */
#ifndef VKG_RUNTIME_ERROR_H
#define VKG_RUNTIME_ERROR_H

#include "vkgrad.h"

#if defined(__GNUC__)
#define VKG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VKG_PRINTF(a, b)
#endif

vkg_status vkg_fail(vkg_status st, const char *fmt, ...) VKG_PRINTF(2, 3);
/* For ops returning a tensor: sets the message and returns NULL. */
void *vkg_fail_null(vkg_status st, const char *fmt, ...) VKG_PRINTF(2, 3);
/* Work whose failure has a fallback (matmul autotuning: the rule runs instead) is no failure of
 * the op that asked: between mute_begin and mute_end failures reach no handler, and mute_end puts
 * back the status and message of before. Not nested. */
void vkg_error_mute_begin(void);
void vkg_error_mute_end(void);

#endif
