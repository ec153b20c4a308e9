/* VKG_EXPLAIN and VKG_PROFILE (lib/runtime/profile.c): the explain trace of a three-op program
 * names its dispatches, bindings, barriers and submit; the profile's per-op totals add up to its
 * total, count every dispatch, and fit inside a timer around the whole run and inside the run's
 * GPU time (every command buffer from start to end). No time is asserted. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "support.h"

static char path[64];

static void with_env(const char *var, const char *suffix) {
    snprintf(path, sizeof path, "/tmp/vkg_%s_XXXXXX", suffix);
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    setenv(var, path, 1);
    vkgt_setup();
}
static void explain_init(void) { with_env("VKG_EXPLAIN", "explain"); }
static void profile_init(void) { with_env("VKG_PROFILE", "profile"); }

static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "%s", p);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    remove(p);
    return buf;
}

#define HAS(text, s) cr_expect(strstr(text, s) != NULL, "explain output lacks \"%s\":\n%s", s, text)

Test(explain, three_ops, .init = explain_init) {
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(2, 3), (float[]){ -1, 2, -3, 4, -5, 6 });
    vkg_tensor *y = vkg_relu(x);          /* dispatch 1: reads x                          */
    vkg_tensor *z = vkg_mul(y, x);        /* dispatch 2: reads y, which 1 wrote: barrier  */
    vkg_tensor *s = vkg_sum(z, 1, false); /* dispatch 3: reads z, which 2 wrote: barrier  */
    float out[2];
    cr_assert_eq(vkg_tensor_read(s, out, sizeof out), VKG_OK, "%s", vkg_last_error());
    cr_expect_float_eq(out[0], 4.0f, 0);  /* 0*-1 + 2*2 + 0*-3 */
    bool mapped = vkg_ctx.map_storage;     /* host access through the mapping, no copies */
    bool tex = vkg_ctx.texel_reads;
    vkg_shutdown();
    const char *t = slurp(path);
    /* 6 elements: one vec4 and a tail of 2; inputs through texel views where the device reads
     * those faster (vkg_texel_read: lavapipe) */
    HAS(t, tex ? "dispatch #1 relu: shader unary_vec4_tex.comp" : "dispatch #1 relu: shader unary_vec4.comp");
    HAS(t, "binding 0 write (2, 3) f32, 24 bytes (storage range 32 bytes at offset");
    HAS(t, tex ? "binding 1 read  (2, 3) f32, 24 bytes (storage range 32 bytes at offset 0, read through an RGBA32F "
                 "texel view)"
               : "binding 1 read  (2, 3) f32, 24 bytes (storage range 32 bytes at offset 0)");
    HAS(t, tex ? "dispatch #2 mul: shader binary_vec4_tex.comp" : "dispatch #2 mul: shader binary_vec4.comp");
    HAS(t, tex ? "dispatch #3 sum: shader reduce_tex.comp" : "dispatch #3 sum: shader reduce.comp");
    HAS(t, "binding 0 write (2,) f32, 8 bytes");
    HAS(t, "barrier before it: binding 1 reads bytes that an earlier command wrote since the last barrier (read after write)");
    HAS(t, "trigger: read-back needs the results");
    cr_expect_null(strstr(t, "dispatch #4"), "three ops, three dispatches:\n%s", t);
    const char *d1 = strstr(t, "dispatch #1"), *d2 = strstr(t, "dispatch #2"), *b = strstr(t, "barrier before it");
    if (mapped) {
        /* unified memory: the host writes x and reads s through the mapping, no copies; no
         * barrier before the first dispatch: its line is followed directly by the second's */
        HAS(t, "submit #1: 3 dispatches, 2 barriers between them");
        cr_expect_null(strstr(t, "copy "), "no copies on unified memory:\n%s", t);
        cr_expect(d1 && d2 && b && b > d2, "the first barrier comes after dispatch #2 is announced:\n%s", t);
    } else {
        /* a discrete GPU (or VKG_FORCE_STAGING): x's upload is a copy that dispatch #1 must wait
         * for, and s's read-back a copy that waits for dispatch #3 */
        HAS(t, "copy upload through the staging ring: 24 bytes");
        HAS(t, "copy read-back through the staging ring: 8 bytes");
        HAS(t, "submit #1: 3 dispatches, 4 barriers between them");
        const char *up = strstr(t, "copy upload"), *down = strstr(t, "copy read-back"), *d3 = strstr(t, "dispatch #3");
        cr_expect(up && d1 && b && up < d1 && d1 < b && (!d2 || b < d2),
                  "the upload comes first, then dispatch #1 with its barrier:\n%s", t);
        cr_expect(d3 && down && d3 < down && strstr(down, "barrier before it"),
                  "the read-back follows dispatch #3, with its own barrier:\n%s", t);
    }
    vkgt_finish(); /* validation messages and leaks */
}

Test(profile, totals_match_the_run, .init = profile_init) {
    cr_assert(vkg_profile_active(), "timestamps are expected on lavapipe");
    float a[64 * 64];
    vkgt_fill(a, 64 * 64, -1, 1, 11);
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(64, 64), a);
    cr_assert_eq(vkg_sync(), VKG_OK);
    vkg_stream_stats before = vkg_stream_stats_get();
    cr_assert_eq(vkg_timer_begin(), VKG_OK);
    vkg_scope_begin();
    vkg_tensor *h = x;
    for (int i = 0; i < 5; i++) h = vkg_relu(vkg_matmul(h, x));
    vkg_tensor *m = vkg_mean_all(h);
    cr_assert_eq(vkg_timer_end(), VKG_OK);
    cr_assert(isfinite(vkg_item(m)), "%s", vkg_last_error());
    vkg_scope_end();
    double region_ms = vkg_timer_elapsed_ns() * 1e-6;
    cr_assert(region_ms > 0, "the region timer measured nothing");
    uint64_t dispatches = vkg_stream_stats_get().dispatches;
    cr_assert_geq(dispatches - before.dispatches, 11, "5 matmuls, 5 relus and a mean");
    vkg_shutdown();

    cJSON *j = cJSON_Parse(slurp(path));
    cr_assert_not_null(j, "VKG_PROFILE file is not JSON");
    cr_expect_str_eq(cJSON_GetObjectItem(j, "schema")->valuestring, "vkgrad-profile/1");
    double total = cJSON_GetObjectItem(j, "total_ms")->valuedouble, sum = 0, share = 0;
    double span = cJSON_GetObjectItem(j, "span_ms")->valuedouble;
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "run_ms")), "the run's GPU time is reported");
    double run = cJSON_GetObjectItem(j, "run_ms")->valuedouble;
    cr_expect_eq(cJSON_GetObjectItem(j, "dispatches")->valuedouble, (double)dispatches, "every dispatch is counted");
    cr_expect_eq(cJSON_GetObjectItem(j, "untimed")->valuedouble, 0.0);
    const cJSON *op;
    int matmuls = 0, relus = 0;
    cJSON_ArrayForEach(op, cJSON_GetObjectItem(j, "ops")) {
        sum += cJSON_GetObjectItem(op, "total_ms")->valuedouble;
        share += cJSON_GetObjectItem(op, "share")->valuedouble;
        const char *name = cJSON_GetObjectItem(op, "op")->valuestring;
        int calls = (int)cJSON_GetObjectItem(op, "calls")->valuedouble;
        if (!strcmp(name, "matmul")) {
            matmuls = calls;
            cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(op, "gflops")), "matmul has a FLOP count");
        }
        if (!strcmp(name, "relu")) relus = calls;
        cr_expect(cJSON_IsNumber(cJSON_GetObjectItem(op, "gbps")), "%s has a byte count", name);
    }
    cr_expect_eq(matmuls, 5);
    cr_expect_eq(relus, 5);
    cr_expect(fabs(sum - total) <= 1e-9 + 1e-9 * total, "per-op totals %.9f add up to the total %.9f", sum, total);
    cr_expect(fabs(share - 1.0) < 1e-9, "shares add up to %.12f", share);
    /* every timed dispatch lies inside the submits' spans, which lie inside the region */
    cr_expect(total > 0 && total <= span + 1e-6, "total %.6f ms within the submit spans %.6f ms", total, span);
    cr_expect(span <= region_ms + 1e-6, "submit spans %.6f ms within the region %.6f ms", span, region_ms);
    /* the command buffers hold the dispatches and the region's timestamps, and more */
    cr_expect(span <= run + 1e-6 && region_ms <= run + 1e-6, "spans %.6f ms and region %.6f ms within the run %.6f ms", span,
              region_ms, run);
    cJSON_Delete(j);
    vkgt_finish();
}
