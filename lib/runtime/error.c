/* The error mechanism: a thread-local message and status, and a replaceable handler that is
 * called once per failure (NULL inputs propagate without calling it again). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "runtime/error.h"

static _Thread_local char last_message[1024];
static _Thread_local vkg_status last_status = VKG_OK;

static void default_handler(vkg_status st, const char *message, void *user) {
    (void)st;
    (void)user;
    fprintf(stderr, "vkgrad: %s\n", message);
}

static vkg_error_handler handler = default_handler;
static void *handler_user = NULL;
static _Thread_local bool muted;
static _Thread_local char muted_message[1024];
static _Thread_local vkg_status muted_status;

void vkg_error_handler_silent(vkg_status st, const char *message, void *user) {
    (void)st;
    (void)message;
    (void)user;
}

void vkg_set_error_handler(vkg_error_handler h, void *user) {
    handler = h ? h : default_handler;
    handler_user = user;
}

static vkg_status vfail(vkg_status st, const char *fmt, va_list ap) {
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    last_status = st;
    if (!muted) handler(st, last_message, handler_user);
    return st;
}

vkg_status vkg_fail(vkg_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(st, fmt, ap);
    va_end(ap);
    return st;
}

void *vkg_fail_null(vkg_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(st, fmt, ap);
    va_end(ap);
    return NULL;
}

void vkg_error_mute_begin(void) {
    memcpy(muted_message, last_message, sizeof muted_message);
    muted_status = last_status;
    muted = true;
}

void vkg_error_mute_end(void) {
    memcpy(last_message, muted_message, sizeof last_message);
    last_status = muted_status;
    muted = false;
}

const char *vkg_last_error(void) { return last_message; }
vkg_status vkg_last_status(void) { return last_status; }

void vkg_clear_error(void) {
    last_message[0] = '\0';
    last_status = VKG_OK;
}

const char *vkg_status_name(vkg_status st) {
    switch (st) {
    case VKG_OK: return "ok";
    case VKG_ERR_INVALID: return "invalid argument";
    case VKG_ERR_NOT_INITIALIZED: return "not initialized";
    case VKG_ERR_NO_DEVICE: return "no device";
    case VKG_ERR_OUT_OF_MEMORY: return "out of memory";
    case VKG_ERR_TOO_LARGE: return "too large";
    case VKG_ERR_DEVICE_LOST: return "device lost";
    case VKG_ERR_VULKAN: return "Vulkan error";
    case VKG_ERR_IO: return "I/O error";
    case VKG_ERR_FORMAT: return "malformed data";
    }
    return "unknown status";
}
