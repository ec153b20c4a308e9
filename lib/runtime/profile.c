/* Timing and tracing of the command stream, kept out of stream.c, which only calls the hooks:
 * VKG_PROFILE=1|file.json (timestamp queries around every dispatch and at the start and end of
 * every submitted command buffer, a per-op table and the run's GPU time at shutdown),
 * VKG_EXPLAIN=1|file (each dispatch, barrier and submit printed as it is recorded), the variant
 * trace and the region timer that vkgrad-bench reads. Query pools are reset in the command
 * buffer (vkCmdResetQueryPool) before any timestamp is written, so the validation layer is happy. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/runtime.h"

#define MAX_SLOTS_PER_FRAME 4096
#define MAX_VARIANTS 16

typedef struct op_stat {
    char name[32], shader[32];
    uint64_t calls, timed;
    double ns, flops, bytes;     /* over timed calls                                            */
    bool counted_flops;
} op_stat;

typedef struct slot {
    int op;                      /* index into P.ops                                             */
    double flops, bytes;
} slot;

static struct {
    bool on;                     /* profile_init ran                                            */
    bool profile, explain;
    char profile_path[1024];
    FILE *explain_out;
    double ns_per_tick;
    uint64_t tick_mask;
    /* VKG_PROFILE */
    VkQueryPool pool;            /* VKG_FRAMES x (per_frame x 2 + 2) timestamps: the dispatches',
                                  * then the command buffer's start and end                     */
    uint32_t per_frame;
    bool frame_closed[VKG_FRAMES];   /* the command buffer's end timestamp is recorded          */
    slot *slots[VKG_FRAMES];
    uint32_t nslots[VKG_FRAMES];
    op_stat *ops;
    int nops, capops;
    uint64_t untimed;
    bool pending;                /* the dispatch being recorded has its first timestamp         */
    double span_ns;              /* first to last dispatch timestamp of every submit, summed    */
    double run_ns;               /* every submitted command buffer from start to end, summed:
                                  * the GPU time of the run (copies, fills, barriers, gaps)      */
    /* region timer */
    VkQueryPool timer_pool;
    bool timer_begun, timer_ended;
    /* explain */
    uint64_t ndispatch, nsubmit, frame_barriers;
    const char *why;
    /* variants */
    char variants[MAX_VARIANTS][96];
    int nvariants;
    bool trace_held;
} P;

static int frame_index(const vkg_frame *f) { return (int)(f - vkg_ctx.frames); }
/* Queries of a frame: 2 per dispatch slot, then the command buffer's start and end. */
static uint32_t frame_queries(void) { return P.per_frame * 2 + 2; }
static uint32_t frame_base(int fi) { return (uint32_t)fi * frame_queries(); }

/* ---- workgroup size from the SPIR-V: literals, or spec constants the pipeline set ---------- */
static uint32_t spec_value(const uint32_t *code, size_t words, uint32_t id, uint32_t dflt, const vkg_dispatch_desc *d,
                           uint32_t local_size) {
    for (size_t i = 5; i < words;) { /* OpDecorate id SpecId k */
        uint32_t op = code[i] & 0xffff, n = code[i] >> 16;
        if (n == 0) break;
        if (op == 71 && n >= 4 && code[i + 1] == id && code[i + 2] == 1) {
            uint32_t k = code[i + 3];
            if (k == 0) return local_size;
            if ((int)k <= d->nspec) return d->spec[k - 1];
            return dflt;
        }
        i += n;
    }
    return dflt;
}

static void workgroup_size(const vkg_dispatch_desc *d, uint32_t local_size, uint32_t wg[3]) {
    wg[0] = local_size, wg[1] = 1, wg[2] = 1;
    const vkg_shader_code *sc = NULL;
    for (const vkg_shader_code *t = vkg_shader_table; t->name; t++)
        if (strcmp(t->name, d->shader) == 0) sc = t;
    if (!sc) return;
    const uint32_t *c = sc->code;
    size_t words = sc->size / 4;
    uint32_t wg_id = 0;
    for (size_t i = 5; i < words;) { /* OpDecorate id BuiltIn WorkgroupSize */
        uint32_t op = c[i] & 0xffff, n = c[i] >> 16;
        if (n == 0) return;
        if (op == 71 && n >= 4 && c[i + 2] == 11 && c[i + 3] == 25) wg_id = c[i + 1];
        if (op == 16 && n >= 6 && c[i + 2] == 17) { /* OpExecutionMode LocalSize x y z */
            wg[0] = c[i + 3], wg[1] = c[i + 4], wg[2] = c[i + 5];
        }
        i += n;
    }
    if (!wg_id) return;
    for (size_t i = 5; i < words;) {
        uint32_t op = c[i] & 0xffff, n = c[i] >> 16;
        if (n == 0) return;
        if ((op == 51 || op == 44) && n >= 6 && c[i + 2] == wg_id) { /* Op(Spec)ConstantComposite */
            for (int k = 0; k < 3; k++) {
                uint32_t cid = c[i + 3 + k];
                for (size_t j = 5; j < words;) { /* its constituents: OpConstant / OpSpecConstant */
                    uint32_t op2 = c[j] & 0xffff, n2 = c[j] >> 16;
                    if (n2 == 0) break;
                    if ((op2 == 43 || op2 == 50) && n2 >= 4 && c[j + 2] == cid) {
                        wg[k] = op2 == 50 ? spec_value(c, words, cid, c[j + 3], d, local_size) : c[j + 3];
                        break;
                    }
                    j += n2;
                }
            }
            return;
        }
        i += n;
    }
}

/* ---- init / shutdown ---------------------------------------------------------------------- */
static VkQueryPool make_pool(uint32_t count) {
    VkQueryPoolCreateInfo qi = { .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                 .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = count };
    VkQueryPool pool = VK_NULL_HANDLE;
    if (vkCreateQueryPool(vkg_ctx.device, &qi, NULL, &pool) != VK_SUCCESS) return VK_NULL_HANDLE;
    return pool;
}

static bool env_on(const char *v) { return v && *v && strcmp(v, "0") != 0 && strcmp(v, "off") != 0; }
static bool env_is_flag(const char *v) { return strcmp(v, "1") == 0 || strcmp(v, "on") == 0 || strcmp(v, "yes") == 0; }

vkg_status vkg_profile_init(void) {
    memset(&P, 0, sizeof P);
    P.on = true;
    if (vkg_ctx.info.timestamp_period > 0.0f) {
        uint32_t nq = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(vkg_ctx.physical, &nq, NULL);
        VkQueueFamilyProperties qf[16];
        if (nq > 16) nq = 16;
        vkGetPhysicalDeviceQueueFamilyProperties(vkg_ctx.physical, &nq, qf);
        uint32_t bits = vkg_ctx.queue_family < nq ? qf[vkg_ctx.queue_family].timestampValidBits : 0;
        P.tick_mask = bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
        P.ns_per_tick = vkg_ctx.info.timestamp_period;
        if (bits) P.timer_pool = make_pool(2);
    }
    const char *prof = getenv("VKG_PROFILE");
    if (env_on(prof)) {
        P.profile = true;
        if (!env_is_flag(prof)) snprintf(P.profile_path, sizeof P.profile_path, "%s", prof);
        P.per_frame = vkg_ctx.batch_limit < MAX_SLOTS_PER_FRAME ? vkg_ctx.batch_limit : MAX_SLOTS_PER_FRAME;
        if (P.timer_pool) P.pool = make_pool(VKG_FRAMES * frame_queries());
        for (int i = 0; i < VKG_FRAMES && P.pool; i++) {
            P.slots[i] = calloc(P.per_frame, sizeof *P.slots[i]);
            if (!P.slots[i]) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "VKG_PROFILE: out of host memory");
        }
        if (!P.pool)
            vkg_log_msg(VKG_LOG_WARN, "VKG_PROFILE: %s has no timestamp queries on its compute queue; nothing is timed",
                        vkg_ctx.info.name);
    }
    const char *ex = getenv("VKG_EXPLAIN");
    if (env_on(ex)) {
        P.explain = true;
        P.explain_out = stderr;
        if (!env_is_flag(ex)) {
            P.explain_out = fopen(ex, "w");
            if (!P.explain_out) return vkg_fail(VKG_ERR_IO, "VKG_EXPLAIN=%s: cannot open for writing", ex);
        }
        fprintf(P.explain_out, "explain: device %s; %s descriptors; a submit every %u dispatches at most\n",
                vkg_ctx.info.name, vkg_ctx.info.push_descriptor ? "push" : "pooled", vkg_ctx.batch_limit);
    }
    return VKG_OK;
}

static void profile_report(void);

void vkg_profile_shutdown(void) {
    if (!P.on) return;
    if (P.profile) {
        /* the device is idle: frames still marked in flight have their results ready */
        for (int i = 0; i < VKG_FRAMES; i++)
            if (vkg_ctx.frames[i].in_flight) vkg_profile_frame_done(&vkg_ctx.frames[i]);
        profile_report();
    }
    if (P.explain_out && P.explain_out != stderr) fclose(P.explain_out);
    if (P.pool) vkDestroyQueryPool(vkg_ctx.device, P.pool, NULL);
    if (P.timer_pool) vkDestroyQueryPool(vkg_ctx.device, P.timer_pool, NULL);
    for (int i = 0; i < VKG_FRAMES; i++) free(P.slots[i]);
    free(P.ops);
    memset(&P, 0, sizeof P);
}

bool vkg_profile_active(void) { return P.profile && P.pool; }
bool vkg_profile_reporting(void) { return P.profile || P.explain; }
bool vkg_timer_open(void) { return P.timer_begun && !P.timer_ended; }
void vkg_trace_hold(bool on) { P.trace_held = on; }

/* ---- per-dispatch timestamps -------------------------------------------------------------- */
void vkg_profile_frame_begin(const vkg_frame *f) {
    P.frame_barriers = 0;
    if (!P.pool) return;
    int fi = frame_index(f);
    P.nslots[fi] = 0; /* a frame that was never waited for (failed submit) is dropped */
    P.frame_closed[fi] = false;
    vkCmdResetQueryPool(f->cmd, P.pool, frame_base(fi), frame_queries());
    vkCmdWriteTimestamp(f->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, P.pool, frame_base(fi) + P.per_frame * 2);
}

/* stream.c calls vkg_explain_submit before every submit, with the command buffer still open */
static void profile_frame_close(const vkg_frame *f) {
    if (!P.pool) return;
    int fi = frame_index(f);
    vkCmdWriteTimestamp(f->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, P.pool, frame_base(fi) + P.per_frame * 2 + 1);
    P.frame_closed[fi] = true;
}

static int op_index(const vkg_dispatch_desc *d) {
    const char *name = d->name ? d->name : d->shader;
    for (int i = 0; i < P.nops; i++)
        if (strcmp(P.ops[i].name, name) == 0 && strcmp(P.ops[i].shader, d->shader) == 0) return i;
    if (P.nops == P.capops) {
        int cap = P.capops ? 2 * P.capops : 32;
        op_stat *n = realloc(P.ops, (size_t)cap * sizeof *n);
        if (!n) return -1;
        P.ops = n;
        P.capops = cap;
    }
    op_stat *o = &P.ops[P.nops];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", name);
    snprintf(o->shader, sizeof o->shader, "%s", d->shader);
    return P.nops++;
}

static double tensor_bytes(const vkg_tensor *t) { return (double)vkg_numel(t) * (double)vkg_dtype_size(t->dtype); }

/* Work counts: the dispatch's own, else what the op's kind implies (bytes: every binding's
 * elements once; FLOPs: 2MNK for matmul, one per input element for reductions). */
static void counts(const vkg_dispatch_desc *d, double *flops, double *bytes) {
    *flops = d->flops;
    *bytes = d->bytes;
    if (*bytes == 0)
        for (int i = 0; i < VKG_MAX_DESCRIPTORS && d->bind[i]; i++) {
            bool dup = false; /* a tensor bound twice (in place) counts once */
            for (int j = 0; j < i; j++) dup |= d->bind[j] == d->bind[i];
            if (!dup) *bytes += tensor_bytes(d->bind[i]);
        }
    if (*flops == 0 && (int)d->op >= 0 && d->op < VKG_OP_COUNT && d->bind[0] && d->bind[1]) {
        vkg_op_kind kind = vkg_op_table[d->op].kind;
        if (kind == VKG_KIND_MATMUL) {
            const vkg_tensor *a = d->bind[1];
            *flops = 2.0 * (double)vkg_numel(d->bind[0]) * (double)(a->shape.ndim ? a->shape.d[a->shape.ndim - 1] : 1);
        } else if (kind == VKG_KIND_REDUCE) {
            *flops = (double)vkg_numel(d->bind[1]);
        }
    }
}

/* The variant of the previous dispatch: a chain of the same kernel formats its name once. */
static struct {
    const char *shader;
    uint32_t spec[VKG_MAX_SPEC], local_size;
    int nspec, nvariants;
} last_variant = { .nspec = -1 };

static bool same_variant(const vkg_dispatch_desc *d) {
    if (d->shader == last_variant.shader && d->nspec == last_variant.nspec && d->local_size == last_variant.local_size &&
        P.nvariants == last_variant.nvariants && memcmp(d->spec, last_variant.spec, (size_t)d->nspec * sizeof *d->spec) == 0)
        return true;
    last_variant.shader = d->shader;
    last_variant.nspec = d->nspec;
    last_variant.local_size = d->local_size;
    memcpy(last_variant.spec, d->spec, sizeof last_variant.spec);
    return false;
}

void vkg_profile_dispatch_begin(const vkg_frame *f, const vkg_dispatch_desc *d) {
    P.pending = false;
    if (P.trace_held) return;
    if (P.nvariants < MAX_VARIANTS && !same_variant(d)) { /* the variant trace is always kept: it is cheap */
        char v[96];
        int n = snprintf(v, sizeof v, "%s", d->shader);
        for (int i = 0; i < d->nspec && n < (int)sizeof v; i++)
            n += snprintf(v + n, sizeof v - (size_t)n, "%s%u", i ? "," : "[", d->spec[i]);
        if (d->nspec && n < (int)sizeof v) n += snprintf(v + n, sizeof v - (size_t)n, "]");
        if (n < (int)sizeof v) snprintf(v + n, sizeof v - (size_t)n, "/wg%u", d->local_size ? d->local_size : 128);
        bool seen = false;
        for (int i = 0; i < P.nvariants && !seen; i++) seen = strcmp(P.variants[i], v) == 0;
        if (!seen) snprintf(P.variants[P.nvariants++], sizeof P.variants[0], "%s", v);
        last_variant.nvariants = P.nvariants;
    }
    if (!P.pool) return;
    int fi = frame_index(f);
    int op = op_index(d);
    if (P.nslots[fi] >= P.per_frame || op < 0) {
        P.untimed++;
        return;
    }
    P.pending = true;
    slot *s = &P.slots[fi][P.nslots[fi]];
    s->op = op;
    counts(d, &s->flops, &s->bytes);
    vkCmdWriteTimestamp(f->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, P.pool, frame_base(fi) + P.nslots[fi] * 2);
}

void vkg_profile_dispatch_end(const vkg_frame *f) {
    if (!P.pool || !P.pending) return;
    int fi = frame_index(f);
    uint32_t q = frame_base(fi) + P.nslots[fi] * 2 + 1;
    /* a slot counts once its second timestamp is recorded, so results are read for both or neither */
    vkCmdWriteTimestamp(f->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, P.pool, q);
    P.nslots[fi]++;
    P.pending = false;
}

void vkg_profile_frame_done(const vkg_frame *f) {
    if (!P.pool) return;
    int fi = frame_index(f);
    uint32_t n = P.nslots[fi];
    P.nslots[fi] = 0;
    if (P.frame_closed[fi]) {
        uint64_t se[2];
        if (vkGetQueryPoolResults(vkg_ctx.device, P.pool, frame_base(fi) + P.per_frame * 2, 2, sizeof se, se, sizeof se[0],
                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) == VK_SUCCESS)
            P.run_ns += (double)((se[1] - se[0]) & P.tick_mask) * P.ns_per_tick;
        P.frame_closed[fi] = false;
    }
    if (n == 0) return;
    uint64_t *ts = malloc((size_t)n * 2 * sizeof *ts);
    if (!ts) return;
    VkResult r = vkGetQueryPoolResults(vkg_ctx.device, P.pool, frame_base(fi), n * 2, (size_t)n * 2 * sizeof *ts, ts,
                                       sizeof *ts, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r == VK_SUCCESS) {
        for (uint32_t i = 0; i < n; i++) {
            const slot *s = &P.slots[fi][i];
            op_stat *o = &P.ops[s->op];
            double ns = (double)((ts[2 * i + 1] - ts[2 * i]) & P.tick_mask) * P.ns_per_tick;
            o->calls++;
            o->timed++;
            o->ns += ns;
            o->flops += s->flops;
            o->bytes += s->bytes;
            o->counted_flops |= s->flops > 0;
        }
        P.span_ns += (double)((ts[2 * n - 1] - ts[0]) & P.tick_mask) * P.ns_per_tick;
    } else {
        P.untimed += n;
    }
    free(ts);
}

/* ---- the report at shutdown ------------------------------------------------------------- */
static int by_time(const void *a, const void *b) {
    double x = ((const op_stat *)a)->ns, y = ((const op_stat *)b)->ns;
    return (x < y) - (x > y);
}

static void profile_report(void) {
    if (!P.pool) return;
    qsort(P.ops, (size_t)P.nops, sizeof *P.ops, by_time);
    double total = 0;
    uint64_t calls = 0;
    for (int i = 0; i < P.nops; i++) total += P.ops[i].ns, calls += P.ops[i].calls;
    if (!P.profile_path[0]) {
        FILE *o = stderr;
        fprintf(o, "vkgrad profile: %s, GPU time from timestamps around each dispatch\n", vkg_ctx.info.name);
        fprintf(o, "%-16s %-12s %8s %11s %10s %7s %9s %9s\n", "op", "shader", "calls", "total ms", "mean us", "share",
                "GFLOP/s", "GB/s");
        for (int i = 0; i < P.nops; i++) {
            const op_stat *s = &P.ops[i];
            char gf[16] = "-", gb[16] = "-";
            if (s->counted_flops && s->ns > 0) snprintf(gf, sizeof gf, "%.2f", s->flops / s->ns);
            if (s->bytes > 0 && s->ns > 0) snprintf(gb, sizeof gb, "%.2f", s->bytes / s->ns);
            fprintf(o, "%-16s %-12s %8llu %11.3f %10.2f %6.1f%% %9s %9s\n", s->name, s->shader,
                    (unsigned long long)s->calls, s->ns * 1e-6, s->timed ? s->ns / (double)s->timed * 1e-3 : 0.0,
                    total > 0 ? 100.0 * s->ns / total : 0.0, gf, gb);
        }
        fprintf(o, "%-16s %-12s %8llu %11.3f   (from each submit's first to last dispatch: %.3f ms;"
                   " untimed dispatches: %llu)\n",
                "total", "", (unsigned long long)calls, total * 1e-6, P.span_ns * 1e-6, (unsigned long long)P.untimed);
        fprintf(o, "GPU time of the run: %.3f ms (every submit's command buffer from start to end, summed);"
                   " the dispatches above are %.1f%% of it\n",
                P.run_ns * 1e-6, P.run_ns > 0 ? 100.0 * total / P.run_ns : 0.0);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "vkgrad-profile/1");
    cJSON_AddStringToObject(root, "device", vkg_ctx.info.name);
    cJSON_AddNumberToObject(root, "total_ms", total * 1e-6);
    cJSON_AddNumberToObject(root, "span_ms", P.span_ns * 1e-6);
    cJSON_AddNumberToObject(root, "run_ms", P.run_ns * 1e-6);
    cJSON_AddNumberToObject(root, "dispatches", (double)calls);
    cJSON_AddNumberToObject(root, "untimed", (double)P.untimed);
    cJSON *ops = cJSON_AddArrayToObject(root, "ops");
    for (int i = 0; i < P.nops; i++) {
        const op_stat *s = &P.ops[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "op", s->name);
        cJSON_AddStringToObject(j, "shader", s->shader);
        cJSON_AddNumberToObject(j, "calls", (double)s->calls);
        cJSON_AddNumberToObject(j, "total_ms", s->ns * 1e-6);
        cJSON_AddNumberToObject(j, "mean_us", s->timed ? s->ns / (double)s->timed * 1e-3 : 0.0);
        cJSON_AddNumberToObject(j, "share", total > 0 ? s->ns / total : 0.0);
        if (s->counted_flops && s->ns > 0) cJSON_AddNumberToObject(j, "gflops", s->flops / s->ns);
        else cJSON_AddNullToObject(j, "gflops");
        if (s->bytes > 0 && s->ns > 0) cJSON_AddNumberToObject(j, "gbps", s->bytes / s->ns);
        else cJSON_AddNullToObject(j, "gbps");
        cJSON_AddItemToArray(ops, j);
    }
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(P.profile_path, "w") : NULL;
    if (f) {
        fputs(text, f);
        fputc('\n', f);
    }
    if (!f || fclose(f) != 0) vkg_log_msg(VKG_LOG_ERROR, "VKG_PROFILE=%s: cannot write the report", P.profile_path);
    cJSON_free(text);
    cJSON_Delete(root);
}

/* ---- explain ---------------------------------------------------------------------------- */
static void ex(const char *fmt, ...) VKG_PRINTF(1, 2);
static void ex(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(P.explain_out, fmt, ap);
    va_end(ap);
}

void vkg_explain_dispatch(const vkg_dispatch_desc *d, uint32_t local_size, uint32_t ndesc) {
    if (!P.explain || P.trace_held) return;
    uint32_t wg[3], g[3];
    workgroup_size(d, local_size, wg);
    for (int i = 0; i < 3; i++) g[i] = d->groups[i] ? d->groups[i] : 1;
    ex("dispatch #%llu %s: shader %s.comp", (unsigned long long)++P.ndispatch, d->name ? d->name : d->shader, d->shader);
    if (d->nspec) {
        ex(", constants [");
        for (int i = 0; i < d->nspec; i++) ex("%s%u", i ? ", " : "", d->spec[i]);
        ex("]");
    }
    ex(", workgroup %ux%ux%u, %ux%ux%u groups = %llu invocations, push %u bytes\n", wg[0], wg[1], wg[2], g[0], g[1],
       g[2], (unsigned long long)wg[0] * wg[1] * wg[2] * g[0] * g[1] * g[2], d->push_size);
    for (uint32_t i = 0, b = 0, e = 0; i < ndesc; i++) { /* descriptor i is element e of binding b */
        const vkg_tensor *t = d->bind[i];
        char sh[160], at[24] = "";
        if (d->array[b]) snprintf(at, sizeof at, "[%u]", e);
        const char *view = !(d->texel >> b & 1) ? "" : d->texel_r32 >> b & 1 ? ", read through an R32F texel view"
                                                                               : ", read through an RGBA32F texel view";
        ex("  binding %u%s %-5s %s %s, %.0f bytes (storage range %llu bytes at offset %llu%s)\n", b, at,
           (int)i < d->nout ? "write" : "read", vkg_shape_str(t->shape, sh, sizeof sh), vkg_dtype_name(t->dtype),
           tensor_bytes(t), (unsigned long long)t->storage->size, (unsigned long long)t->storage->off, view);
        if (++e >= (d->array[b] ? d->array[b] : 1u)) {
            b++;
            e = 0;
        }
    }
}

void vkg_explain_barrier(int k, bool earlier_write, bool write) {
    if (!P.explain || P.trace_held) return;
    P.frame_barriers++;
    const char *kind = earlier_write ? (write ? "write after write" : "read after write") : "write after read";
    ex("  barrier before it: binding %d %s bytes that an earlier %s since the last barrier (%s)\n", k,
       write ? "writes" : "reads", earlier_write ? "command wrote" : "command read", kind);
}

void vkg_explain_copy(const char *what, uint64_t bytes) {
    if (!P.explain) return;
    ex("copy %s: %llu bytes\n", what, (unsigned long long)bytes);
}

void vkg_explain_why(const char *why) { P.why = why; }

void vkg_explain_submit(const vkg_frame *f) {
    profile_frame_close(f);
    if (P.explain) {
        ex("submit #%llu: %u dispatches, %llu barriers between them, then a barrier for the host; trigger: %s\n",
           (unsigned long long)++P.nsubmit, f->dispatches, (unsigned long long)P.frame_barriers,
           P.why ? P.why : "vkg_sync");
        fflush(P.explain_out);
    }
    P.why = NULL;
}

/* ---- variants and the region timer ------------------------------------------------------- */
void vkg_trace_variants(char *buf, size_t size) {
    size_t n = 0;
    if (size) buf[0] = '\0';
    for (int i = 0; i < P.nvariants && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "; " : "", P.variants[i]);
    P.nvariants = 0;
}

vkg_status vkg_timer_begin(void) {
    if (!vkg_ready("vkg_timer_begin")) return vkg_last_status();
    P.timer_begun = P.timer_ended = false;
    if (!P.timer_pool) return VKG_OK;
    VkCommandBuffer cmd;
    vkg_status st = vkg_stream_cmd(&cmd);
    if (st != VKG_OK) return st;
    vkCmdResetQueryPool(cmd, P.timer_pool, 0, 2);
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, P.timer_pool, 0);
    P.timer_begun = true;
    return VKG_OK;
}

vkg_status vkg_timer_end(void) {
    if (!vkg_ready("vkg_timer_end")) return vkg_last_status();
    if (!P.timer_begun) return VKG_OK;
    VkCommandBuffer cmd;
    vkg_status st = vkg_stream_cmd(&cmd);
    if (st != VKG_OK) return st;
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, P.timer_pool, 1);
    P.timer_ended = true;
    return VKG_OK;
}

double vkg_timer_elapsed_ns(void) {
    if (!P.timer_begun || !P.timer_ended) return -1.0;
    uint64_t ts[2];
    VkResult r = vkGetQueryPoolResults(vkg_ctx.device, P.timer_pool, 0, 2, sizeof ts, ts, sizeof ts[0],
                                       VK_QUERY_RESULT_64_BIT);
    if (r != VK_SUCCESS) return -1.0;
    return (double)((ts[1] - ts[0]) & P.tick_mask) * P.ns_per_tick;
}
