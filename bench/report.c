/* vkgrad-bench's report: the terminal table and the JSON document described in bench/SCHEMA.md
 * (device fingerprint, host, build, shader hashes, settings, every case's statistics). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "runtime/runtime.h"
#include "vkg_git_commit.h" /* VKG_GIT_COMMIT, generated at build time: cmake/git_commit.cmake */
#include "vkgrad.h"

uint64_t vkgb_fnv1a64(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- terminal ---------------------------------------------------------------------------- */
void vkgb_print_table(const vkgb_run *r, FILE *o) {
    char line[1024];
    vkg_device_line(vkg_device(), line, sizeof line);
    fprintf(o, "device: %s\n", line);
    fprintf(o, "suite %s: %d cases in %.1f s; times per operation, GPU timestamps (wall clock where marked w)\n\n",
            r->settings.suite, r->n, r->seconds);
    fprintf(o, "%-40s %-6s %10s %10s %7s %10s %11s %-11s %7s\n", "case", "status", "median ms", "p90 ms", "spread",
            "wall ms", "throughput", "unit", "%roof");
    for (int i = 0; i < r->n; i++) {
        const vkgb_result *x = &r->results[i];
        if (x->status != VKGB_OK) {
            fprintf(o, "%-40s %-6s %s\n", x->c->name, x->status == VKGB_UNAVAILABLE ? "n/a" : vkgb_status_name(x->status),
                    x->reason);
            continue;
        }
        char roof[16] = "-";
        if (x->pct_roofline >= 0) snprintf(roof, sizeof roof, "%.0f%%", x->pct_roofline);
        fprintf(o, "%-40s %-6s %10.4f %10.4f %6.1f%% %10.4f %11.2f %-11s %7s%s\n", x->c->name, "ok", x->gpu_ms.median,
                x->gpu_ms.p90, x->gpu_ms.spread_pct, x->wall_ms.median, x->value, x->unit ? x->unit : "", roof,
                x->gpu_timer ? "" : " w");
    }
    char f16[32] = "-";
    if (r->peak_gflops_f16 > 0) snprintf(f16, sizeof f16, "%.1f GFLOP/s", r->peak_gflops_f16);
    fprintf(o, "\npeaks (best repetition): fp32 %.1f GFLOP/s, fp16 %s, copy %.2f GB/s (read + written)\n",
            r->peak_gflops, f16, r->copy_gbps);
    for (int i = 0; i < r->n; i++)
        if (r->results[i].note[0]) fprintf(o, "note: %s: %s\n", r->results[i].c->name, r->results[i].note);
}

/* ---- JSON ------------------------------------------------------------------------------------ */
static void read_first(const char *path, const char *key, char *out, size_t size) {
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (!f) return;
    char line[512];
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) != 0) continue;
        char *v = line + kl + strcspn(line + kl, ":="); /* "model name\t: X", "PRETTY_NAME=\"X\"" */
        if (*v) v++;
        while (*v == ' ' || *v == '\t' || *v == '"') v++;
        size_t n = strcspn(v, "\"\n");
        snprintf(out, size, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}

static const char *type_name(vkg_device_type t) {
    switch (t) {
    case VKG_DEVICE_INTEGRATED: return "integrated GPU";
    case VKG_DEVICE_DISCRETE: return "discrete GPU";
    case VKG_DEVICE_VIRTUAL: return "virtual GPU";
    case VKG_DEVICE_CPU: return "CPU";
    default: return "other";
    }
}

static void hex(char *out, const uint8_t *b, int n) {
    for (int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static cJSON *stats_json(const vkgb_stats *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "median", s->median);
    cJSON_AddNumberToObject(j, "min", s->min);
    cJSON_AddNumberToObject(j, "p90", s->p90);
    cJSON_AddNumberToObject(j, "max", s->max);
    cJSON_AddNumberToObject(j, "spread_pct", s->spread_pct);
    return j;
}

static void add_num_or_null(cJSON *o, const char *k, double v, bool have) {
    if (have) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

cJSON *vkgb_report_json(const vkgb_run *r) {
    const vkg_device_info *d = vkg_device();
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", VKGB_SCHEMA);
    cJSON_AddNumberToObject(root, "schema_version", VKGB_SCHEMA_VERSION);
    cJSON_AddStringToObject(root, "created", r->started);

    cJSON *v = cJSON_AddObjectToObject(root, "vkgrad");
    cJSON_AddStringToObject(v, "version", VKG_VERSION_STRING);
    cJSON_AddStringToObject(v, "git_commit", VKG_GIT_COMMIT);

    char buf[256];
    cJSON *dev = cJSON_AddObjectToObject(root, "device");
    cJSON_AddStringToObject(dev, "name", d->name);
    cJSON_AddStringToObject(dev, "type", type_name(d->type));
    cJSON_AddStringToObject(dev, "vendor", d->vendor);
    snprintf(buf, sizeof buf, "0x%04x", d->vendor_id);
    cJSON_AddStringToObject(dev, "vendor_id", buf);
    snprintf(buf, sizeof buf, "0x%04x", d->device_id);
    cJSON_AddStringToObject(dev, "device_id", buf);
    cJSON_AddStringToObject(dev, "driver_name", d->driver_name);
    cJSON_AddStringToObject(dev, "driver_info", d->driver_info);
    snprintf(buf, sizeof buf, "0x%08x", d->driver_version);
    cJSON_AddStringToObject(dev, "driver_version", buf);
    snprintf(buf, sizeof buf, "%u.%u.%u", VK_API_VERSION_MAJOR(d->api_version), VK_API_VERSION_MINOR(d->api_version),
             VK_API_VERSION_PATCH(d->api_version));
    cJSON_AddStringToObject(dev, "api_version", buf);
    hex(buf, d->device_uuid, 16);
    cJSON_AddStringToObject(dev, "device_uuid", buf);
    hex(buf, d->pipeline_cache_uuid, 16);
    cJSON_AddStringToObject(dev, "pipeline_cache_uuid", buf);
    cJSON_AddNumberToObject(dev, "subgroup_size", d->subgroup_size);
    cJSON_AddBoolToObject(dev, "fp16", d->fp16);
    cJSON_AddBoolToObject(dev, "unified_memory", d->unified_memory);
    cJSON_AddNumberToObject(dev, "timestamp_period_ns", d->timestamp_period);

    cJSON *host = cJSON_AddObjectToObject(root, "host");
    read_first("/proc/cpuinfo", "model name", buf, sizeof buf);
    cJSON_AddStringToObject(host, "cpu", buf);
    cJSON_AddNumberToObject(host, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    read_first("/etc/os-release", "PRETTY_NAME", buf, sizeof buf);
    cJSON_AddStringToObject(host, "os", buf);
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(buf, sizeof buf, "%s %s %s", u.sysname, u.release, u.machine);
        cJSON_AddStringToObject(host, "kernel", buf);
    } else {
        cJSON_AddStringToObject(host, "kernel", "");
    }
    cJSON *env = cJSON_AddObjectToObject(host, "env");
    const char *vars[] = { "VKG_DEVICE", "LP_NUM_THREADS", "VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VKG_BATCH" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) cJSON_AddStringToObject(env, vars[i], getenv(vars[i]));

    const vkgb_settings *s = &r->settings;
    cJSON *set = cJSON_AddObjectToObject(root, "settings");
    cJSON_AddStringToObject(set, "suite", s->suite);
    cJSON_AddStringToObject(set, "filter", s->filter ? s->filter : "");
    cJSON_AddNumberToObject(set, "min_time_s", s->min_time);
    cJSON_AddNumberToObject(set, "min_reps", s->min_reps);
    cJSON_AddNumberToObject(set, "max_reps", s->max_reps);
    cJSON_AddNumberToObject(set, "warmup", s->warmup);
    cJSON_AddNumberToObject(set, "rep_target_s", s->rep_target);
    cJSON_AddNumberToObject(set, "peak_target_s", s->peak_target);

    cJSON *peak = cJSON_AddObjectToObject(root, "peak");
    add_num_or_null(peak, "fp32_gflops", r->peak_gflops, r->peak_gflops > 0);
    add_num_or_null(peak, "fp16_gflops", r->peak_gflops_f16, r->peak_gflops_f16 > 0);
    add_num_or_null(peak, "copy_gbps", r->copy_gbps, r->copy_gbps > 0);

    cJSON *sh = cJSON_AddArrayToObject(root, "shaders");
    for (const vkg_shader_code *t = vkg_shader_table; t->name; t++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", t->name);
        cJSON_AddNumberToObject(j, "bytes", (double)t->size);
        snprintf(buf, sizeof buf, "%016llx", (unsigned long long)vkgb_fnv1a64(t->code, t->size));
        cJSON_AddStringToObject(j, "fnv1a64", buf);
        cJSON_AddItemToArray(sh, j);
    }

    cJSON *cases = cJSON_AddArrayToObject(root, "cases");
    for (int i = 0; i < r->n; i++) {
        const vkgb_result *x = &r->results[i];
        bool ok = x->status == VKGB_OK;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", x->c->name);
        cJSON_AddStringToObject(j, "group", x->c->group);
        cJSON_AddStringToObject(j, "status", vkgb_status_name(x->status));
        cJSON_AddStringToObject(j, "reason", x->reason);
        cJSON_AddStringToObject(j, "variant", x->variant);
        cJSON_AddStringToObject(j, "settings", x->shape);
        add_num_or_null(j, "flops", x->flops, x->flops > 0);
        add_num_or_null(j, "bytes", x->bytes, x->bytes > 0);
        cJSON_AddNumberToObject(j, "reps", x->reps);
        cJSON_AddNumberToObject(j, "inner", x->inner);
        cJSON_AddStringToObject(j, "timer", x->gpu_timer ? "gpu_timestamps" : "wall_clock");
        if (ok) {
            cJSON_AddItemToObject(j, "gpu_ms", stats_json(&x->gpu_ms));
            cJSON_AddItemToObject(j, "wall_ms", stats_json(&x->wall_ms));
        } else {
            cJSON_AddNullToObject(j, "gpu_ms");
            cJSON_AddNullToObject(j, "wall_ms");
        }
        add_num_or_null(j, "value", x->value, ok && x->unit);
        cJSON_AddStringToObject(j, "unit", ok && x->unit ? x->unit : "");
        add_num_or_null(j, "gflops", x->gflops, ok && x->gflops > 0);
        add_num_or_null(j, "gbps", x->gbps, ok && x->gbps > 0);
        add_num_or_null(j, "pct_roofline", x->pct_roofline, ok && x->pct_roofline >= 0);
        if (ok && x->bound) cJSON_AddStringToObject(j, "bound", x->bound);
        else cJSON_AddNullToObject(j, "bound");
        add_num_or_null(j, "check_max_err", x->max_err, ok);
        cJSON_AddStringToObject(j, "note", x->note);
        cJSON_AddItemToArray(cases, j);
    }
    return root;
}

bool vkgb_write_json(const cJSON *j, const char *path) {
    char *text = cJSON_Print(j);
    if (!text) return false;
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    cJSON_free(text);
    return ok;
}
