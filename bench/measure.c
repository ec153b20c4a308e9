/* vkgrad-bench's method. Op cases: set up, run once and check against the C reference (a wrong
 * result fails the case and it is never timed), then repeat the operation inside one
 * repetition until a repetition lasts rep_target (small ops), warm up, and time repetitions
 * until min_time and min_reps (at most max_reps). Each repetition is bracketed by GPU
 * timestamps (vkg_timer_*) and the wall clock. Peaks after vkpeak: work doubled until one
 * submit lasts peak_target, best of several, FLOPs and bytes counted explicitly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "runtime/runtime.h"
#include "vkgrad.h"

static const char *corrupt_case;
void vkgb_test_corrupt(const char *case_name) { corrupt_case = case_name; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *vkgb_status_name(vkgb_status s) {
    switch (s) {
    case VKGB_OK: return "ok";
    case VKGB_FAIL: return "fail";
    case VKGB_SKIPPED: return "skipped";
    case VKGB_UNAVAILABLE: return "unavailable";
    }
    return "?";
}

vkgb_settings vkgb_defaults(const char *suite) {
    vkgb_settings s = { .suite = suite, .min_time = 1.0, .min_reps = 5, .max_reps = 1000, .warmup = 1,
                        .rep_target = 0.005, .peak_target = 0.1, .peak_cap = 10.0, .progress = true };
    if (!suite || strcmp(suite, "quick") == 0) {
        s.suite = "quick", s.suite_bit = VKGB_QUICK;
        s.min_time = 1.0, s.min_reps = 5, s.peak_target = 0.05;
    } else if (strcmp(suite, "micro") == 0) {
        s.suite_bit = VKGB_MICRO;
    } else if (strcmp(suite, "models") == 0) {
        s.suite_bit = VKGB_MODELS;
    }
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

vkgb_stats vkgb_stats_of(double *x, int n) {
    vkgb_stats s = { .n = n };
    if (n <= 0) return s;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    s.min = x[0];
    s.max = x[n - 1];
    s.median = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    double r = 0.9 * (n - 1); /* p90 with linear interpolation */
    int lo = (int)r;
    s.p90 = lo + 1 < n ? x[lo] + (r - lo) * (x[lo + 1] - x[lo]) : x[lo];
    s.spread_pct = s.median > 0 ? 100.0 * (s.p90 - s.min) / s.median : 0;
    return s;
}

bool vkgb_case_selected(const vkgb_case *c, const vkgb_settings *s) {
    if (!(c->suites & s->suite_bit)) return false;
    return !s->filter || !*s->filter || strstr(c->name, s->filter) != NULL;
}

/* ---- timing one repetition ------------------------------------------------------------------- */
typedef struct sample_set {
    double *gpu, *wall;
    int n, cap;
    bool gpu_timer;
} sample_set;

static bool push_sample(sample_set *ss, double gpu, double wall) {
    if (ss->n == ss->cap) {
        int cap = ss->cap ? 2 * ss->cap : 64;
        double *g = realloc(ss->gpu, (size_t)cap * sizeof *g);
        if (!g) return false;
        ss->gpu = g;
        double *w = realloc(ss->wall, (size_t)cap * sizeof *w);
        if (!w) return false;
        ss->wall = w;
        ss->cap = cap;
    }
    ss->gpu[ss->n] = gpu;
    ss->wall[ss->n] = wall;
    ss->n++;
    return true;
}

/* Brackets fn(arg) with the GPU timer and the wall clock; seconds of each (gpu < 0: none). */
typedef bool (*rep_fn)(void *arg);
static bool timed(rep_fn fn, void *arg, double *gpu, double *wall) {
    if (vkg_sync() != VKG_OK) return false; /* nothing earlier runs inside the bracket */
    double t0 = now();
    if (vkg_timer_begin() != VKG_OK) return false;
    bool ok = fn(arg);
    if (ok) ok = vkg_timer_end() == VKG_OK && vkg_sync() == VKG_OK;
    *wall = now() - t0;
    double ns = vkg_timer_elapsed_ns();
    *gpu = ns >= 0 ? ns * 1e-9 : -1.0;
    return ok;
}

static void finish_stats(vkgb_result *r, sample_set *ss, double per_rep) {
    r->gpu_timer = ss->n > 0 && ss->gpu[0] >= 0;
    for (int i = 0; i < ss->n; i++) {
        ss->gpu[i] = (r->gpu_timer ? ss->gpu[i] : ss->wall[i]) * 1e3 / per_rep;
        ss->wall[i] = ss->wall[i] * 1e3 / per_rep;
    }
    r->gpu_ms = vkgb_stats_of(ss->gpu, ss->n);
    r->wall_ms = vkgb_stats_of(ss->wall, ss->n);
    r->reps = ss->n;
    free(ss->gpu);
    free(ss->wall);
    memset(ss, 0, sizeof *ss);
}

/* Repeats until min_time and min_reps, capped at max_reps. */
static bool repeat(const vkgb_settings *st, int max_reps, rep_fn fn, void *arg, sample_set *ss) {
    double t_start = now();
    int cap = max_reps > 0 && max_reps < st->max_reps ? max_reps : st->max_reps;
    while (ss->n < cap && (ss->n < st->min_reps || now() - t_start < st->min_time)) {
        double g, w;
        if (!timed(fn, arg, &g, &w) || !push_sample(ss, g, w)) return false;
    }
    return true;
}

static void fail_vkg(vkgb_result *r, const char *what) {
    r->status = VKGB_FAIL;
    snprintf(r->reason, sizeof r->reason, "%s: %s", what, vkg_last_error());
}

/* ---- op and model cases ------------------------------------------------------------------- */
typedef struct op_rep {
    vkgb_inst *inst;
    int inner;
} op_rep;

static bool op_rep_run(void *arg) {
    op_rep *o = arg;
    for (int i = 0; i < o->inner; i++)
        if (!vkgb_inst_run(o->inst)) return false;
    return true;
}

static void run_op_case(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    const vkgb_settings *st = &run->settings;
    vkgb_inst inst;
    if (!vkgb_inst_setup(&inst, c, r->reason, sizeof r->reason)) {
        r->status = VKGB_FAIL;
        return;
    }
    snprintf(r->shape, sizeof r->shape, "%s", inst.shape);
    r->flops = inst.flops;
    r->bytes = inst.bytes;
    r->items = inst.items;
    r->items_unit = inst.items_unit;
    /* 1. check: the kernel's result against the reference (a model's loss), before any timing */
    char scratch[8];
    vkg_trace_variants(scratch, sizeof scratch); /* forget earlier dispatches */
    bool corrupt = corrupt_case && strcmp(corrupt_case, c->name) == 0; /* test switch only */
    if (!vkgb_inst_verify(&inst, corrupt, &r->max_err, r->reason, sizeof r->reason)) r->status = VKGB_FAIL;
    vkg_trace_variants(r->variant, sizeof r->variant);
    snprintf(r->note, sizeof r->note, "%s", inst.check_note);
    if (r->status != VKGB_OK) {
        vkgb_inst_free(&inst);
        return;
    }
    /* 2. calibrate: operations per repetition until one lasts rep_target (also the warm-up) */
    op_rep o = { &inst, 1 };
    double g = 0, w = 0;
    for (;;) {
        if (!timed(op_rep_run, &o, &g, &w)) {
            fail_vkg(r, "calibrating");
            vkgb_inst_free(&inst);
            return;
        }
        double t = g >= 0 ? g : w;
        if (t >= st->rep_target || o.inner >= 256) break;
        int k = t > 0 ? (int)ceil(st->rep_target / t * o.inner) : 2 * o.inner;
        o.inner = k > 2 * o.inner ? 2 * o.inner : (k > o.inner ? k : o.inner + 1);
        if (o.inner > 256) o.inner = 256;
    }
    r->inner = o.inner;
    for (int i = 0; i < st->warmup; i++) timed(op_rep_run, &o, &g, &w);
    /* 3. time */
    sample_set ss = { 0 };
    if (!repeat(st, c->max_reps, op_rep_run, &o, &ss)) fail_vkg(r, "timing");
    finish_stats(r, &ss, o.inner);
    if (c->max_reps && r->reps >= c->max_reps) {
        size_t n = strlen(r->note);
        snprintf(r->note + n, sizeof r->note - n, "%srepetitions capped at %d (a repetition takes %.1f s)", n ? "; " : "",
                 c->max_reps, r->wall_ms.median * 1e-3 * r->inner);
    }
    vkgb_inst_free(&inst);
}

/* ---- peaks ----------------------------------------------------------------------------------- */
struct fma_push { /* mirrors the Push block of shaders/bench_fma.glsl */
    uint32_t loops, n_check;
    float m, a;
};

#define FMA_WG 256
#define FMA_CHECK 64

typedef struct fma_rep {
    const char *shader;
    vkg_tensor *out;
    uint32_t groups;
    struct fma_push push;
    double flops;
} fma_rep;

static bool fma_rep_run(void *arg) {
    fma_rep *f = arg;
    return vkg_dispatch(&(vkg_dispatch_desc){ .shader = f->shader, .op = VKG_OP_COUNT, .name = f->shader,
                                              .local_size = FMA_WG, .groups = { f->groups }, .bind = { f->out },
                                              .nout = 1, .push = &f->push, .push_size = sizeof f->push,
                                              .flops = f->flops, .bytes = FMA_CHECK * 4.0 }) == VKG_OK;
}

static float fma_start(uint32_t gid, uint32_t chain) { return (float)((gid * 32u + chain) & 255u) * (1.0f / 256.0f); }

static void run_fma(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    const vkgb_settings *st = &run->settings;
    bool f16 = c->kind == VKGB_FMA16;
    if (f16 && !vkg_device()->fp16) {
        r->status = VKGB_SKIPPED;
        snprintf(r->reason, sizeof r->reason, "the device does not support shaderFloat16 (or has Vulkan < 1.2)");
        return;
    }
    fma_rep f = { .shader = f16 ? "bench_fma_f16" : "bench_fma", .groups = 1,
                  .push = { .loops = 256, .n_check = FMA_CHECK, .m = -1.0f, .a = 1.0f } };
    snprintf(r->shape, sizeof r->shape, "%s x8 chains, wg %d, m=-1 a=1, target %.0f ms", f16 ? "f16vec4" : "vec4",
             FMA_WG, st->peak_target * 1e3);
    vkg_scope_begin();
    f.out = vkg_zeros(VKG_SHAPE(FMA_CHECK));
    uint32_t max_groups = vkg_device()->max_workgroup_count[0] < 65535 ? vkg_device()->max_workgroup_count[0] : 65535;
    double t0 = now(), g = 0, w = 0, t = 0;
    int confirmed = 0;
    char scratch[8];
    vkg_trace_variants(scratch, sizeof scratch);
    for (;;) { /* double the work until one submit lasts peak_target, seen twice */
        f.flops = (double)f.groups * FMA_WG * f.push.loops * 512.0;
        if (!f.out || !timed(fma_rep_run, &f, &g, &w)) {
            fail_vkg(r, "fma dispatch");
            vkg_scope_end();
            return;
        }
        t = g >= 0 ? g : w;
        if (t >= st->peak_target) {
            if (++confirmed >= 2) break;
            continue;
        }
        confirmed = 0;
        if (now() - t0 > st->peak_cap) {
            snprintf(r->note, sizeof r->note, "doubling stopped after %.0f s below the target time", st->peak_cap);
            break;
        }
        if (f.groups <= max_groups / 2) f.groups *= 2;
        else f.push.loops *= 2;
    }
    vkg_trace_variants(r->variant, sizeof r->variant);
    sample_set ss = { 0 };
    vkgb_settings reps = *st;
    reps.min_time = 0, reps.min_reps = 5; /* best of 5 at that size */
    if (!repeat(&reps, 5, fma_rep_run, &f, &ss)) fail_vkg(r, "fma dispatch");
    /* check: each chain alternates x, 1 - x; 8 * loops steps is even, so each invocation
     * returns the sum of its start values exactly */
    float got[FMA_CHECK];
    if (r->status == VKGB_OK && vkg_tensor_read(f.out, got, sizeof got) != VKG_OK) fail_vkg(r, "read-back");
    if (corrupt_case && strcmp(corrupt_case, c->name) == 0) got[3] += 1.0f;
    for (uint32_t gid = 0; gid < FMA_CHECK && r->status == VKGB_OK; gid++) {
        float want = 0;
        for (uint32_t ch = 0; ch < 32; ch++) want += fma_start(gid, ch);
        if (got[gid] != want) {
            r->status = VKGB_FAIL;
            snprintf(r->reason, sizeof r->reason, "wrong result: invocation %u returned %.9g, expected %.9g", gid,
                     (double)got[gid], (double)want);
        }
    }
    vkg_scope_end();
    r->flops = f.flops;
    r->inner = 1;
    if (!r->note[0]) /* the size found is per device, so a note, not a setting compare must match */
        snprintf(r->note, sizeof r->note, "%u groups x %u loops per submit", f.groups, f.push.loops);
    finish_stats(r, &ss, 1);
    if (r->status == VKGB_OK) {
        double best = r->flops / (r->gpu_ms.min * 1e-3) * 1e-9; /* vkpeak keeps the best */
        if (f16) run->peak_gflops_f16 = best;
        else run->peak_gflops = best;
    }
}

/* mirrors the Push blocks of shaders/bench_copy.comp (n) and bench_copy_tex.comp (both) */
struct copy_push { uint32_t n, src_off; };

typedef struct copy_rep {
    vkg_tensor **dst, *src;
    int ndst, count;
    uint32_t groups, n;
    bool texel;      /* src read through a uniform texel buffer (bench_copy_tex) */
    double bytes;
} copy_rep;

static bool copy_rep_run(void *arg) {
    copy_rep *c = arg;
    /* the texel view spans the source's whole block: its first texel */
    struct copy_push push = { c->n, (uint32_t)((c->src->storage->off / 4 + (VkDeviceSize)c->src->offset) / 4) };
    const char *shader = c->texel ? "bench_copy_tex" : "bench_copy";
    for (int i = 0; i < c->count; i++)
        if (vkg_dispatch(&(vkg_dispatch_desc){ .shader = shader, .op = VKG_OP_COUNT, .name = shader, .local_size = 256,
                                               .groups = { c->groups }, .bind = { c->dst[i % c->ndst], c->src }, .nout = 1,
                                               .texel = c->texel ? 1u << 1 : 0, .push = &push,
                                               .push_size = c->texel ? sizeof push : sizeof push.n,
                                               .bytes = c->bytes }) != VKG_OK)
            return false;
    return true;
}

/* The pattern a copy must reproduce: float values (a texel read may quieten NaN bit patterns). */
static uint32_t copy_word(size_t i) {
    float f = (float)(i & 0xfffff) - 524288.0f;
    uint32_t w;
    memcpy(&w, &f, sizeof w);
    return w;
}

static void run_copybw(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    bool texel = c->p[1] == 1;
    if (texel && !vkg_device()->texel_buffers) {
        r->status = VKGB_SKIPPED;
        snprintf(r->reason, sizeof r->reason, "the device has no RGBA32F uniform texel buffers");
        return;
    }
    size_t bytes = (size_t)c->p[0] << 20;
    if (bytes > vkg_device()->max_storage_buffer_range) bytes = (size_t)vkg_device()->max_storage_buffer_range & ~(size_t)15;
    size_t n = bytes / 4;
    uint32_t *pattern = malloc(bytes);
    if (!pattern) {
        r->status = VKGB_FAIL;
        snprintf(r->reason, sizeof r->reason, "out of host memory");
        return;
    }
    for (size_t i = 0; i < n; i++) pattern[i] = copy_word(i);
    vkg_scope_begin();
    vkg_tensor *src = vkg_from_data_dtype(VKG_SHAPE((int64_t)n), VKG_I32, pattern);
    vkg_tensor *dst = vkg_empty_dtype(VKG_SHAPE((int64_t)n), VKG_I32);
    copy_rep cr = { .dst = &dst, .src = src, .ndst = 1, .count = 1, .n = (uint32_t)(n / 4), .texel = texel,
                    .bytes = 2.0 * (double)bytes };
    /* one vec4 per invocation, like bench/rawvk: a peak is the device's, not the op grid's
     * choice (on lavapipe a capped grid-stride copy walks memory a grid apart: 3.5x slower) */
    uint32_t max_groups = vkg_device()->max_workgroup_count[0] < 65535 ? vkg_device()->max_workgroup_count[0] : 65535;
    cr.groups = (cr.n + 255) / 256 < max_groups ? (cr.n + 255) / 256 : max_groups;
    r->bytes = cr.bytes;
    r->inner = 1;
    snprintf(r->shape, sizeof r->shape, "%zu MiB vec4%s, wg 256", bytes >> 20, texel ? " (texel reads)" : "");
    sample_set ss = { 0 };
    double g, w;
    char scratch[8];
    vkg_trace_variants(scratch, sizeof scratch);
    if (!src || !dst || !timed(copy_rep_run, &cr, &g, &w)) fail_vkg(r, "copy"); /* warm-up */
    vkg_trace_variants(r->variant, sizeof r->variant);
    vkgb_settings reps = run->settings;
    reps.min_time = 0, reps.min_reps = 10;
    if (r->status == VKGB_OK && !repeat(&reps, 10, copy_rep_run, &cr, &ss)) fail_vkg(r, "copy");
    if (r->status == VKGB_OK) {
        memset(pattern, 0, bytes);
        if (vkg_tensor_read(dst, pattern, bytes) != VKG_OK) fail_vkg(r, "read-back");
        if (corrupt_case && strcmp(corrupt_case, c->name) == 0) pattern[n / 2] ^= 1;
        for (size_t i = 0; i < n && r->status == VKGB_OK; i++)
            if (pattern[i] != copy_word(i)) {
                r->status = VKGB_FAIL;
                snprintf(r->reason, sizeof r->reason, "wrong result: word %zu is 0x%08x, expected 0x%08x", i, pattern[i],
                         copy_word(i));
            }
    }
    vkg_scope_end();
    free(pattern);
    finish_stats(r, &ss, 1);
    /* the peak that %roof uses is the copy that reads the way the memory-bound kernels do on this
     * device: through texel views where vkg_texel_read chooses them (lavapipe), else storage
     * buffers */
    double gbps = r->status == VKGB_OK ? r->bytes / (r->gpu_ms.min * 1e-3) * 1e-9 : 0.0;
    if (!texel) {
        run->copy_gbps = gbps;
    } else if (gbps > 0 && run->copy_gbps > 0) {
        snprintf(r->note, sizeof r->note, "best %.2f GB/s, %.2fx the storage-buffer copy's best in this run%s", gbps,
                 gbps / run->copy_gbps,
                 vkg_ctx.texel_reads ? "; the roofline's bandwidth (kernels read texel views)" : "");
        if (vkg_ctx.texel_reads) run->copy_gbps = gbps;
    }
}

/* Many tiny dispatches in one submit, each to its own output (no hazard, so no barrier): the
 * cost of one vkg_dispatch; or one dispatch and a wait per repetition: a submit round trip. */
static void run_launch(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    bool round_trip = c->kind == VKGB_ROUNDTRIP;
    int count = round_trip ? 1 : (int)c->p[0];
    vkg_scope_begin();
    vkg_tensor **dst = calloc((size_t)count, sizeof *dst);
    vkg_tensor *src = vkg_full(VKG_SHAPE(4), 3.0f);
    bool ok = dst && src;
    for (int i = 0; i < count && ok; i++) ok = (dst[i] = vkg_zeros(VKG_SHAPE(4))) != NULL;
    copy_rep cr = { .dst = dst, .src = src, .ndst = count, .count = count, .n = 1, .groups = 1, .bytes = 32 };
    snprintf(r->shape, sizeof r->shape, round_trip ? "1 dispatch of 16 bytes + vkg_sync" : "%d dispatches of 16 bytes, one submit",
             count);
    r->bytes = 0;
    r->inner = count;
    sample_set ss = { 0 };
    double g, w;
    char scratch[8];
    vkg_trace_variants(scratch, sizeof scratch);
    if (!ok || !timed(copy_rep_run, &cr, &g, &w)) fail_vkg(r, "dispatch");
    vkg_trace_variants(r->variant, sizeof r->variant);
    if (r->status == VKGB_OK && !repeat(&run->settings, c->max_reps, copy_rep_run, &cr, &ss)) fail_vkg(r, "dispatch");
    float got[4];
    if (r->status == VKGB_OK && vkg_tensor_read(dst[count - 1], got, sizeof got) != VKG_OK) fail_vkg(r, "read-back");
    if (corrupt_case && strcmp(corrupt_case, c->name) == 0) got[0] = 0;
    if (r->status == VKGB_OK && got[0] != 3.0f) {
        r->status = VKGB_FAIL;
        snprintf(r->reason, sizeof r->reason, "wrong result: the copied value is %g, expected 3", (double)got[0]);
    }
    vkg_scope_end();
    free(dst);
    finish_stats(r, &ss, count);
}

/* ---- the suite ------------------------------------------------------------------------------- */
void vkgb_run_case(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    memset(r, 0, sizeof *r);
    r->c = c;
    r->pct_roofline = -1;
    double t0 = now();
    vkg_clear_error();
    switch (c->kind) {
    case VKGB_MISSING:
        r->status = VKGB_UNAVAILABLE;
        snprintf(r->reason, sizeof r->reason, "not yet available: needs %s", c->missing);
        return;
    case VKGB_FMA32:
    case VKGB_FMA16: run_fma(run, c, r); break;
    case VKGB_COPYBW: run_copybw(run, c, r); break;
    case VKGB_DISPATCH:
    case VKGB_ROUNDTRIP: run_launch(run, c, r); break;
    case VKGB_HOST: vkgb_run_host(run, c, r); break;
    default: run_op_case(run, c, r); break;
    }
    r->note_seconds = now() - t0;
    if (r->status != VKGB_OK) { /* a failed case reports no time */
        memset(&r->gpu_ms, 0, sizeof r->gpu_ms);
        memset(&r->wall_ms, 0, sizeof r->wall_ms);
        r->reps = 0;
        return;
    }
    if (c->kind == VKGB_HOST) return; /* a ratio, set by host.c */
    double s = r->gpu_ms.median * 1e-3;
    if (r->items > 0) { /* model cases: from the wall clock per step, host work included, as a user sees it */
        double ms = r->wall_ms.median, per_s = ms > 0 ? 1e3 / ms : 0;
        bool train = c->kind == VKGB_MODEL_TRAIN;
        r->unit = train ? r->items_unit : "ms/batch";
        r->value = train ? r->items * per_s : ms;
        size_t n = strlen(r->note);
        snprintf(r->note + n, sizeof r->note - n, "%s%.1f ms/%s = %.2f %s/s = %.0f %s (GPU %.1f ms)", n ? "; " : "", ms,
                 train ? "step" : "batch", per_s, train ? "steps" : "batches", r->items * per_s, r->items_unit,
                 r->gpu_ms.median);
        return;
    }
    if (c->kind == VKGB_DISPATCH || c->kind == VKGB_ROUNDTRIP) {
        r->unit = c->kind == VKGB_DISPATCH ? "us/dispatch" : "us/submit";
        r->value = r->wall_ms.median * 1e3; /* what the host waits per dispatch or submit */
        return;
    }
    if (s <= 0) return;
    if (r->flops > 0) r->gflops = r->flops / s * 1e-9;
    if (r->bytes > 0) r->gbps = r->bytes / s * 1e-9;
    r->unit = r->flops > 0 ? "GFLOP/s" : "GB/s";
    r->value = r->flops > 0 ? r->gflops : r->gbps;
    /* roofline: attainable = min(peak, intensity x bandwidth), both measured in this run */
    double peak = run->peak_gflops, bw = run->copy_gbps;
    if (r->flops > 0 && r->bytes > 0 && peak > 0 && bw > 0) {
        double ai = r->flops / r->bytes, attain = fmin(peak, ai * bw);
        r->bound = ai * bw < peak ? "memory" : "compute";
        r->pct_roofline = 100.0 * r->gflops / attain;
    } else if (r->flops > 0 && peak > 0) {
        r->bound = "compute";
        r->pct_roofline = 100.0 * r->gflops / peak;
    } else if (r->bytes > 0 && bw > 0) {
        r->bound = "memory";
        r->pct_roofline = 100.0 * r->gbps / bw;
    }
}

vkgb_run *vkgb_run_suite(const vkgb_settings *s) {
    vkgb_run *run = calloc(1, sizeof *run);
    if (!run) return NULL;
    run->settings = *s;
    time_t t = time(NULL);
    strftime(run->started, sizeof run->started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    int n = 0;
    for (int i = 0; i < vkgb_ncases; i++) n += vkgb_case_selected(&vkgb_cases[i], s);
    run->results = calloc((size_t)(n ? n : 1), sizeof *run->results);
    if (!run->results) {
        free(run);
        return NULL;
    }
    double t0 = now();
    for (int i = 0, k = 0; i < vkgb_ncases; i++) {
        const vkgb_case *c = &vkgb_cases[i];
        if (!vkgb_case_selected(c, s)) continue;
        if (s->progress) {
            double el = now() - t0;
            int timed_left = 0;
            for (int j = i; j < vkgb_ncases; j++)
                timed_left += vkgb_case_selected(&vkgb_cases[j], s) && vkgb_cases[j].kind != VKGB_MISSING;
            double per = k > 0 ? el / k : s->min_time + 0.5;
            fprintf(stderr, "[%d/%d] %-44s elapsed %5.1f s, about %.0f s left\n", k + 1, n, c->name, el,
                    per * timed_left);
        }
        vkgb_run_case(run, c, &run->results[k]);
        if (s->progress && run->results[k].status == VKGB_FAIL)
            fprintf(stderr, "       FAILED: %s\n", run->results[k].reason);
        k++;
        run->n = k;
    }
    run->seconds = now() - t0;
    return run;
}

void vkgb_run_free(vkgb_run *r) {
    if (!r) return;
    free(r->results);
    free(r);
}
