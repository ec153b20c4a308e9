/* vkgrad-bench's library (bench/): a report validates against bench/SCHEMA.md, a case whose
 * kernel result is broken fails and reports no time (ops, the optimizer, a model's training and
 * inference), unavailable ops are listed, every op and model of the issue has a runner, and
 * compare refuses cases whose settings differ. Tiny sizes and times: nothing here asserts on speed. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "support.h"

/* ---- a validator for schema vkgrad-bench/1, field by field as bench/SCHEMA.md lists them -- */
typedef struct field {
    const char *name;
    const char *types; /* any of: s string, n number, b bool, o object, a array, 0 null */
} field;

static const field top[] = { { "schema", "s" }, { "schema_version", "n" }, { "created", "s" }, { "vkgrad", "o" },
                             { "device", "o" }, { "host", "o" }, { "settings", "o" }, { "peak", "o" },
                             { "shaders", "a" }, { "cases", "a" }, { NULL, NULL } };
static const field vkgrad[] = { { "version", "s" }, { "git_commit", "s" }, { NULL, NULL } };
static const field device[] = { { "name", "s" }, { "type", "s" }, { "vendor", "s" }, { "vendor_id", "s" },
                                { "device_id", "s" }, { "driver_name", "s" }, { "driver_info", "s" },
                                { "driver_version", "s" }, { "api_version", "s" }, { "device_uuid", "s" },
                                { "pipeline_cache_uuid", "s" }, { "subgroup_size", "n" }, { "fp16", "b" },
                                { "unified_memory", "b" }, { "timestamp_period_ns", "n" }, { NULL, NULL } };
static const field host[] = { { "cpu", "s" }, { "cores", "n" }, { "os", "s" }, { "kernel", "s" }, { "env", "o" },
                              { NULL, NULL } };
static const field settings[] = { { "suite", "s" }, { "filter", "s" }, { "min_time_s", "n" }, { "min_reps", "n" },
                                  { "max_reps", "n" }, { "warmup", "n" }, { "rep_target_s", "n" },
                                  { "peak_target_s", "n" }, { NULL, NULL } };
static const field peak[] = { { "fp32_gflops", "n0" }, { "fp16_gflops", "n0" }, { "copy_gbps", "n0" }, { NULL, NULL } };
static const field shader[] = { { "name", "s" }, { "bytes", "n" }, { "fnv1a64", "s" }, { NULL, NULL } };
static const field kase[] = { { "name", "s" }, { "group", "s" }, { "status", "s" }, { "reason", "s" },
                              { "variant", "s" }, { "settings", "s" }, { "flops", "n0" }, { "bytes", "n0" },
                              { "reps", "n" }, { "inner", "n" }, { "timer", "s" }, { "gpu_ms", "o0" },
                              { "wall_ms", "o0" }, { "value", "n0" }, { "unit", "s" }, { "gflops", "n0" },
                              { "gbps", "n0" }, { "pct_roofline", "n0" }, { "bound", "s0" },
                              { "check_max_err", "n0" }, { "note", "s" }, { NULL, NULL } };
static const field stats[] = { { "median", "n" }, { "min", "n" }, { "p90", "n" }, { "max", "n" },
                               { "spread_pct", "n" }, { NULL, NULL } };

static bool is_type(const cJSON *v, char t) {
    switch (t) {
    case 's': return cJSON_IsString(v);
    case 'n': return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    case 'b': return cJSON_IsBool(v);
    case 'o': return cJSON_IsObject(v);
    case 'a': return cJSON_IsArray(v);
    case '0': return cJSON_IsNull(v);
    }
    return false;
}

static void validate(const cJSON *o, const field *f, const char *where) {
    cr_assert(cJSON_IsObject(o), "%s is not an object", where);
    for (; f->name; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
        cr_assert_not_null(v, "%s.%s is missing", where, f->name);
        bool ok = false;
        for (const char *t = f->types; *t; t++) ok |= is_type(v, *t);
        cr_assert(ok, "%s.%s has the wrong type (want one of \"%s\")", where, f->name, f->types);
    }
}

static bool is_hex(const char *s, size_t n) { return strlen(s) == n && strspn(s, "0123456789abcdef") == n; }

static void validate_report(const cJSON *r) {
    validate(r, top, "report");
    cr_assert_str_eq(cJSON_GetObjectItem(r, "schema")->valuestring, VKGB_SCHEMA);
    cr_assert_eq(cJSON_GetObjectItem(r, "schema_version")->valuedouble, VKGB_SCHEMA_VERSION);
    validate(cJSON_GetObjectItem(r, "vkgrad"), vkgrad, "vkgrad");
    validate(cJSON_GetObjectItem(r, "device"), device, "device");
    cr_assert(is_hex(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "device"), "device_uuid")->valuestring, 32));
    validate(cJSON_GetObjectItem(r, "host"), host, "host");
    validate(cJSON_GetObjectItem(r, "settings"), settings, "settings");
    validate(cJSON_GetObjectItem(r, "peak"), peak, "peak");
    const cJSON *x;
    int n = 0;
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "shaders")) {
        validate(x, shader, "shaders[]");
        cr_assert(is_hex(cJSON_GetObjectItem(x, "fnv1a64")->valuestring, 16));
        n++;
    }
    cr_assert_gt(n, 5, "every embedded shader is listed");
    cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "cases")) {
        validate(x, kase, "cases[]");
        const char *st = cJSON_GetObjectItem(x, "status")->valuestring;
        bool ok = !strcmp(st, "ok");
        cr_assert(ok || !strcmp(st, "fail") || !strcmp(st, "skipped") || !strcmp(st, "unavailable"), "status %s", st);
        const char *timer = cJSON_GetObjectItem(x, "timer")->valuestring;
        cr_assert(!strcmp(timer, "gpu_timestamps") || !strcmp(timer, "wall_clock"));
        /* times exactly when the case passed its check */
        cr_assert_eq(cJSON_IsObject(cJSON_GetObjectItem(x, "gpu_ms")), ok, "%s", cJSON_GetObjectItem(x, "name")->valuestring);
        if (ok) {
            validate(cJSON_GetObjectItem(x, "gpu_ms"), stats, "cases[].gpu_ms");
            validate(cJSON_GetObjectItem(x, "wall_ms"), stats, "cases[].wall_ms");
            cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(x, "value")));
            cr_assert_gt(cJSON_GetObjectItem(x, "reps")->valuedouble, 0);
        }
    }
}

/* ---- a small run: one case of each kind, at tiny sizes ------------------------------------ */
static vkgb_settings tiny(void) {
    vkgb_settings s = vkgb_defaults("quick");
    s.min_time = 0.005, s.min_reps = 2, s.max_reps = 3, s.warmup = 0;
    s.rep_target = 0.0002, s.peak_target = 0.002, s.peak_cap = 1.0, s.progress = false;
    return s;
}

static const vkgb_case small[] = {
    { "peak/fp32 fma", "peak", VKGB_QUICK, VKGB_FMA32, 0, { 0 }, 0, NULL },
    { "peak/copy 1MiB vec4", "peak", VKGB_QUICK, VKGB_COPYBW, 0, { 1 }, 0, NULL },
    { "launch/dispatch x20", "launch", VKGB_QUICK, VKGB_DISPATCH, 0, { 20 }, 0, NULL },
    { "matmul/3x(20x30 @ 30x10)", "matmul", VKGB_QUICK, VKGB_MATMUL, 0, { 3, 20, 30, 10 }, 0, NULL },
    { "elementwise/add bias 7x33 + 33", "elementwise", VKGB_QUICK, VKGB_BINARY, VKG_OP_ADD, { 7, 33, 0, 33 }, 0, NULL },
    { "reduce/argmax rows 9x10", "reduce", VKGB_QUICK, VKGB_REDUCE, VKG_OP_ARGMAX, { 9, 10, 1 }, 0, NULL },
    { "nn/softmax", "nn", VKGB_QUICK, VKGB_MISSING, 0, { 0 }, 0, "vkg_softmax" },
    { "nn/conv2d 2x3x9x7 k3 c4", "nn", VKGB_QUICK, VKGB_CONV2D, 0, { 2, 3, 9, 7, 4, 3, 1 }, 0, NULL },
    { "nn/softmax 7x33", "nn", VKGB_QUICK, VKGB_SOFTMAX, 0, { 7, 33 }, 0, NULL },
    { "nn/layer_norm 5x20", "nn", VKGB_QUICK, VKGB_LAYER_NORM, 0, { 5, 20 }, 0, NULL },
    { "nn/attention 2x2x9x8", "nn", VKGB_QUICK, VKGB_ATTENTION, 0, { 2, 2, 9, 8, 1 }, 0, NULL },
    { "nn/cross_entropy 6x11", "nn", VKGB_QUICK, VKGB_CROSS_ENTROPY, 0, { 6, 11 }, 0, NULL },
    { "optim/adam step 1000", "optim", VKGB_QUICK, VKGB_ADAM, 0, { 1000 }, 0, NULL },
    /* eager MLP steps against replays with host inputs: fails unless the parameters are equal */
    { "host/mlp replay vs eager step", "launch", VKGB_QUICK, VKGB_HOST, 0, { 8, 1 }, 0, NULL },
    /* the MLP in its tiny test configuration */
    { "model/mlp train step", "model", VKGB_QUICK, VKGB_MODEL_TRAIN, 0, { 0 /* VKG_MODEL_MLP */, 16, 1 }, 0, NULL },
    { "model/mlp inference", "model", VKGB_QUICK, VKGB_MODEL_INFER, 0, { 0 /* VKG_MODEL_MLP */, 16, 1 }, 0, NULL },
};
#define NSMALL ((int)(sizeof small / sizeof small[0]))

static vkgb_run *run_small(void) {
    vkgb_run *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->settings = tiny();
    snprintf(r->started, sizeof r->started, "2024-01-01T00:00:00Z");
    r->results = calloc(NSMALL, sizeof *r->results);
    for (int i = 0; i < NSMALL; i++) vkgb_run_case(r, &small[i], &r->results[r->n++]);
    return r;
}

VKG_TEST(bench, report_validates_against_the_schema) {
    vkgb_run *r = run_small();
    for (int i = 0; i < r->n; i++) {
        const vkgb_result *x = &r->results[i];
        if (x->c->kind == VKGB_MISSING) {
            cr_expect_eq(x->status, VKGB_UNAVAILABLE);
            cr_expect(strstr(x->reason, "not yet available") != NULL);
        } else {
            cr_expect_eq(x->status, VKGB_OK, "%s: %s", x->c->name, x->reason);
            cr_expect(x->variant[0], "%s names its kernel", x->c->name);
        }
    }
    cr_expect_gt(r->peak_gflops, 0);
    cr_expect_gt(r->copy_gbps, 0);
    cr_expect(strstr(r->results[3].variant, "matmul") != NULL, "variant: %s", r->results[3].variant);
    for (int i = 0; i < r->n; i++) { /* the new runners' kernels and figures */
        const vkgb_result *x = &r->results[i];
        if (!strncmp(x->c->name, "nn/", 3) && x->c->kind != VKGB_MISSING) {
            cr_expect(x->flops > 0 && x->bytes > 0, "%s counts its FLOPs and bytes", x->c->name);
            cr_expect_str_eq(x->unit, "GFLOP/s", "%s", x->c->name);
        }
        if (x->c->kind == VKGB_MODEL_TRAIN) {
            cr_expect_str_eq(x->shape, "f32, batch 16, test configuration");
            cr_expect_str_eq(x->unit, "samples/s");
            cr_expect_eq(x->items, 16);
            cr_expect(strstr(x->note, "ms/step") != NULL, "%s", x->note);
        }
        if (x->c->kind == VKGB_MODEL_INFER) cr_expect_str_eq(x->unit, "ms/batch");
    }
    /* conv2d: im2col + matmul, or the direct kernel (grouped, or VKG_CONV_VARIANT=direct);
     * attention: the fused kernel, or batched matmuls on CPU devices */
    cr_expect(strstr(r->results[7].variant, "conv") != NULL, "variant: %s", r->results[7].variant);
    cr_expect(strstr(r->results[10].variant, "attention") != NULL || strstr(r->results[10].variant, "matmul") != NULL,
              "variant: %s", r->results[10].variant);
    cr_expect(strstr(r->results[12].variant, "optim_step") != NULL, "variant: %s", r->results[12].variant);
    cJSON *j = vkgb_report_json(r);
    char *text = cJSON_Print(j); /* through text, as a reader would see it */
    cJSON *back = cJSON_Parse(text);
    cr_assert_not_null(back);
    validate_report(back);
    cJSON_free(text);
    cJSON_Delete(back);
    cJSON_Delete(j);
    vkgb_run_free(r);
}

VKG_TEST(bench, broken_result_fails_its_case) {
    vkgb_run *r = calloc(1, sizeof *r);
    r->settings = tiny();
    r->results = calloc(NSMALL, sizeof *r->results);
    const char *broken[] = { "matmul/3x(20x30 @ 30x10)", "reduce/argmax rows 9x10", "peak/fp32 fma", "peak/copy 1MiB vec4",
                             "nn/attention 2x2x9x8", "nn/cross_entropy 6x11", "optim/adam step 1000",
                             "model/mlp train step", "model/mlp inference" };
    for (size_t b = 0; b < sizeof broken / sizeof broken[0]; b++) {
        vkgb_test_corrupt(broken[b]);
        for (int i = 0; i < NSMALL; i++) {
            if (strcmp(small[i].name, broken[b]) != 0) continue;
            vkgb_result x;
            vkgb_run_case(r, &small[i], &x);
            cr_expect_eq(x.status, VKGB_FAIL, "%s must fail with a broken result", broken[b]);
            cr_expect(strstr(x.reason, "wrong result") != NULL, "%s: %s", broken[b], x.reason);
            cr_expect_eq(x.reps, 0, "a failed case reports no time");
            cr_expect_eq(x.gpu_ms.median, 0);
            r->results[r->n++] = x;
        }
    }
    vkgb_test_corrupt(NULL);
    cJSON *j = vkgb_report_json(r);
    validate_report(j); /* failures are valid reports: status fail, times null */
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        cr_expect_str_eq(cJSON_GetObjectItem(c, "status")->valuestring, "fail");
        cr_expect(cJSON_IsNull(cJSON_GetObjectItem(c, "gpu_ms")));
        cr_expect(cJSON_IsNull(cJSON_GetObjectItem(c, "value")));
    }
    cJSON_Delete(j);
    vkgb_run_free(r);
}

VKG_TEST(bench, every_suite_has_a_runner_for_each_op_and_model) {
    const char *suites[] = { "quick", "micro", "models" };
    const char *needed[] = { "nn/conv2d cnn1 128x1x28x28 k3 c32", "nn/conv2d cnn2 128x32x14x14 k3 c64", "nn/softmax 2048x256",
                             "nn/layer_norm 2048x128", "nn/attention 32x4x64x32", "nn/cross_entropy 2048x256",
                             "optim/adam step 1M params", "model/mlp train step", "model/mlp inference",
                             "model/cnn train step", "model/cnn inference", "model/lstm train step", "model/lstm inference",
                             "model/transformer train step", "model/transformer inference" };
    for (int s = 0; s < 3; s++) {
        vkgb_settings st = vkgb_defaults(suites[s]);
        cr_assert(st.suite_bit, "%s", suites[s]);
        int names = 0;
        for (int i = 0; i < vkgb_ncases; i++) {
            if (!vkgb_case_selected(&vkgb_cases[i], &st)) continue;
            names++;
            for (int k = 0; k < i; k++) cr_assert_str_neq(vkgb_cases[k].name, vkgb_cases[i].name, "names are unique");
        }
        cr_expect_gt(names, 0);
    }
    for (size_t n = 0; n < sizeof needed / sizeof needed[0]; n++) {
        const vkgb_case *c = NULL;
        for (int i = 0; i < vkgb_ncases; i++)
            if (!strcmp(vkgb_cases[i].name, needed[n])) c = &vkgb_cases[i];
        cr_expect_not_null(c, "the table has \"%s\"", needed[n]);
        if (!c) continue;
        cr_expect_neq(c->kind, VKGB_MISSING, "%s has a runner", needed[n]);
        bool model = !strncmp(needed[n], "model/", 6);
        cr_expect(c->suites & (model ? VKGB_MODELS : VKGB_MICRO), "%s is in the %s suite", needed[n], model ? "models" : "micro");
    }
    vkgb_settings bad = vkgb_defaults("nope");
    cr_expect_eq(bad.suite_bit, 0);
}

VKG_TEST(bench, compare_refuses_cases_whose_settings_differ) {
    vkgb_run *r = run_small();
    cJSON *a = vkgb_report_json(r);
    cJSON *b = vkgb_report_json(r);
    vkgb_run_free(r);
    /* B: one case measured with other settings */
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(b, "cases"))
        if (!strcmp(cJSON_GetObjectItem(c, "name")->valuestring, "matmul/3x(20x30 @ 30x10)"))
            cJSON_ReplaceItemInObject((cJSON *)c, "settings", cJSON_CreateString("f32 (3,21,30) @ (3,30,10)"));
    char pa[] = "/tmp/vkgb_a_XXXXXX", pb[] = "/tmp/vkgb_b_XXXXXX", pm[] = "/tmp/vkgb_md_XXXXXX";
    close(mkstemp(pa));
    close(mkstemp(pb));
    close(mkstemp(pm));
    cr_assert(vkgb_write_json(a, pa) && vkgb_write_json(b, pb));
    const char *paths[] = { pa, pb };
    cr_assert_eq(vkgb_compare(paths, 2, pm, NULL), 0);
    FILE *f = fopen(pm, "r");
    static char md[1 << 16];
    size_t n = fread(md, 1, sizeof md - 1, f);
    md[n] = '\0';
    fclose(f);
    cr_expect(strstr(md, "| matmul/3x(20x30 @ 30x10) | GFLOP/s | ") != NULL, "%s", md);
    cr_expect(strstr(md, "settings differ") != NULL, "%s", md);
    cr_expect(strstr(md, "1 case(s) not compared") != NULL, "%s", md);
    cr_expect(strstr(md, "(1.00x)") || strstr(md, "x) |"), "ratios to the first report:\n%s", md);
    cr_expect(strstr(md, "| nn/softmax |  | n/a | n/a |") != NULL, "%s", md);
    remove(pa);
    remove(pb);
    remove(pm);
    cJSON_Delete(a);
    cJSON_Delete(b);
}
