/* matmul with PyTorch's semantics: 1-D operands are promoted to matrices and the added dim is
 * dropped from the result; batch dims broadcast; both operands are read through their
 * strides, so a transposed view costs no copy. matmul_bias_act adds an epilogue to the same
 * kernels: C = act(A @ B + bias), applied as C is stored (shaders/matmul_epilogue.glsl). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ops/ops.h"
#include "vkgrad/graph.h"

/* Mirrors the Push block of shaders/matmul.comp: change both. */
typedef struct vkg_matmul_push {
    uint32_t mnk[4];
    uint32_t bshape[4];
    int32_t a_bst[4], b_bst[4];
    int32_t a_mat[4], b_mat[4];
    uint32_t c_off[4];       /* C offset, row stride, batch stride of slots 0-1 (slot 0's is slot 1's
                                times its size), of slot 2: C may be a strided view (matmul_into) */
    int32_t epi[4];          /* bias offset, bias stride: read only when the epilogue adds a bias */
} vkg_matmul_push;

/* The epilogue: add bias (NULL: none) over C's last dim (rows: over C's rows instead), then
 * act, then with res the residual zin; or, with zin and no res, C = (A @ B) gelu'(zin) (GELU's
 * backward, vkg_matmul_gelu_grad). Plain matmuls (code 0) run the kernels as they were (3
 * bindings). An epilogue runs the same kernel built with MM_EPILOGUE, "<shader>_epi"
 * (shaders/matmul_epilogue.glsl), with its EPI specialization constant (id 7: bit 0 bias, bits
 * 1-2 the activation, 3 gelu', bit 3 rows, bit 4 the residual), the bias at binding 3 and zin at
 * binding 4, A in their place where there is none (never read, but the validation layer wants
 * every declared binding bound). */
typedef struct mm_epi {
    vkg_tensor *bias;
    vkg_activation act;
    bool rows;
    vkg_tensor **z;     /* GELU: where the pre-activation z (its backward's input) is returned */
    vkg_tensor *zin;    /* gelu'(zin) times the product, or with res zin added last: the
                           product's shape and layout (binding 4) */
    bool res;
} mm_epi;

static const mm_epi MM_PLAIN = { NULL, VKG_ACTIVATION_NONE, false, NULL, NULL, false };

static uint32_t epi_code(const mm_epi *e) {
    return (e->bias ? 1u : 0u) | (e->act == VKG_ACTIVATION_RELU ? 2u : e->act == VKG_ACTIVATION_GELU ? 4u : 0u) |
           (e->bias && e->rows ? 8u : 0u) | (e->zin ? (e->res ? 16u : 6u) : 0u);
}

/* The product's output. With GELU, y and z share one buffer, z n4 elements (n rounded up to a
 * multiple of 4, so vec4 stores stay aligned) after y: the kernel writes both through its one
 * written binding (shaders/matmul_epilogue.glsl). */
static vkg_tensor *alloc_out(vkg_shape out, const mm_epi *e, int64_t *zoff) {
    *zoff = 0;
    if (e->act != VKG_ACTIVATION_GELU) return vkg_tensor_alloc(out, VKG_F32, false, "matmul");
    int64_t n4 = (vkg_shape_numel(out) + 3) / 4 * 4;
    vkg_tensor *both = vkg_tensor_alloc(VKG_SHAPE(2 * n4 > 0 ? 2 * n4 : 1), VKG_F32, false, "matmul_bias_act");
    if (!both) return NULL;
    int64_t st[VKG_MAX_DIMS] = { 0 }, s = 1;
    for (int i = out.ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= out.d[i];
    }
    vkg_tensor *y = vkg_tensor_view_of(both, out, st, 0), *z = y ? vkg_tensor_view_of(both, out, st, n4) : NULL;
    vkg_free(both); /* the views hold the buffer */
    if (!z) {
        vkg_free(y);
        return NULL;
    }
    *e->z = z;
    *zoff = n4;
    return y;
}

#define TILE 64 /* 16 x 16 invocations, 4 x 4 outputs each: shaders/matmul.comp */

/* The kernels (all take the push block above):
 *   general  shaders/matmul.comp: any strides, scalar loads; the fallback.
 *   reg      shaders/matmul_reg.comp: register-blocked, vec4 loads in place, no shared memory;
 *            an operand that is not vec4-readable (vec4_dim) is read one float per load. For
 *            CPU-like devices.
 *   reg_sg   the same with SG = 1: a subgroup of 8 shares its rows of A by shuffles.
 *   tiled    shaders/matmul_tiled.comp: shared-memory tiles + register blocking, any strides;
 *            for GPUs.
 *   reg_tex, reg_sg_tex  reg and reg_sg reading A and B as uniform texel buffers (RGBA32F views
 *            of their blocks, the same indices counted from the block's start) where the
 *            device has them: on lavapipe a texel fetch is straight-line code, a storage-buffer
 *            load a loop over the lanes (bench/MATMUL.md). The CPU default; reg and reg_sg stay
 *            for devices without texel buffers and for operands whose block is too large.
 * VKG_MATMUL_VARIANT=name forces one where it applies (else general runs); the one used is
 * vkg_matmul_variant_last(). */
typedef enum mm_variant { MM_GENERAL, MM_REG, MM_REG_SG, MM_TILED, MM_REG_TEX, MM_REG_SG_TEX, MM_COUNT } mm_variant;
static const char *const mm_names[MM_COUNT] = { "general", "reg", "reg_sg", "tiled", "reg_tex", "reg_sg_tex" };

static bool mm_tex(mm_variant v) { return v == MM_REG_TEX || v == MM_REG_SG_TEX; }
static bool mm_sg(mm_variant v) { return v == MM_REG_SG || v == MM_REG_SG_TEX; }
static bool mm_reg(mm_variant v) { return v == MM_REG || v == MM_REG_TEX || mm_sg(v); }
static const char *mm_last = "none";

const char *vkg_matmul_variant_last(void) { return mm_last; }

/* Tile shape of a variant: rows/cols per invocation, workgroup x/y, K step of the tiled one. */
typedef struct mm_config { uint32_t tm, tn, wx, wy, bk; } mm_config;

static mm_config mm_default(mm_variant v) {
    switch (v) {
    case MM_REG:
    case MM_REG_TEX: return (mm_config){ 16, 8, 8, 1, 0 };
    case MM_REG_SG:
    case MM_REG_SG_TEX: return (mm_config){ 32, 8, 8, 1, 0 };   /* bench/MATMUL.md */
    case MM_TILED: return (mm_config){ 4, 4, 16, 16, 16 };
    default: return (mm_config){ 4, 4, 16, 16, 0 };
    }
}

/* VKG_MATMUL_CONFIG=tm,tn,wx,wy overrides the tile shape of reg, reg_sg and tiled (for tuning
 * by hand; values the shader cannot take are ignored). */
static mm_config mm_config_for(mm_variant v, const vkg_matmul_push *pc) {
    mm_config c = mm_default(v);
    /* the rule's tile for large products on GPUs: 128 x 128 per workgroup, 8 x 8 per invocation
     * (on an H100, 1.4x the 64 x 64 tile's GFLOP/s at 2048^3 and 4096^3; the same below 1024) */
    if (v == MM_TILED && pc && pc->mnk[0] > 1024 && pc->mnk[1] > 1024) c = (mm_config){ 8, 8, 16, 16, 16 };
    /* reg_sg on a short or narrow C: a subgroup covers TM rows x 8 TN cols, and rows and cols
     * past C's edge cost their full share of loads and FMAs. TN 4 when N <= 32 (attention's
     * 64x64 @ 64x32 products: 1.6x on lavapipe), TM 8 or 16 when M is at most that. */
    if (mm_sg(v) && pc) {
        if (pc->mnk[1] <= 32) c.tn = 4;
        if (pc->mnk[0] <= 16) c.tm = pc->mnk[0] <= 8 ? 8 : 16;
    }
    const char *e = getenv("VKG_MATMUL_CONFIG");
    unsigned tm, tn, wx, wy;
    if (v == MM_GENERAL || !e || sscanf(e, "%u,%u,%u,%u", &tm, &tn, &wx, &wy) != 4) return c;
    bool ok = tm >= 4 && tm <= 32 && tm % 4 == 0 && tn >= 4 && tn <= 32 && tn % 4 == 0 && wx >= 1 && wy >= 1 &&
              wx * wy <= 1024 && (!mm_sg(v) || (tm % 8 == 0 && wx == 8));
    if (ok) c = (mm_config){ tm, tn, wx, wy, c.bk };
    return c;
}

/* Whether t, seen as a batch of rows x cols matrices with strides rs, cs and the folded batch
 * strides bst over bdim, can be read as aligned vec4s along one dim: returns 1 along cols, 0
 * along rows, -1 if neither. That dim needs stride 1 (or size 1); the other stride, the batch
 * strides and the offset must be multiples of 4 and non-negative; and every vec4 read, up to
 * the next multiple of 4 of that dim, must lie inside the tensor's storage. */
static int vec4_dim(const vkg_tensor *t, int64_t rows, int64_t cols, int64_t rs, int64_t cs, const int64_t *bst,
                    const int64_t *bdim, int nb) {
    int64_t base = t->offset;
    if (base % 4 != 0) return -1;
    for (int i = 0; i < nb; i++) {
        if (bdim[i] == 1) continue;
        if (bst[i] < 0 || bst[i] % 4 != 0) return -1;
        base += (bdim[i] - 1) * bst[i];
    }
    int64_t elems = (int64_t)(t->storage->size / sizeof(float));
    for (int along = 1; along >= 0; along--) {
        int64_t n = along ? cols : rows, m = along ? rows : cols;
        int64_t unit = along ? cs : rs, other = along ? rs : cs;
        if (unit != 1 && n != 1) continue;
        if (m > 1 && (other < 0 || other % 4 != 0)) continue;
        int64_t last = base + (m > 1 ? (m - 1) * other : 0) + (n + 3) / 4 * 4 - 1;
        if (last < elems) return along;
    }
    return -1;
}

/* Subgroup size 8 with shuffles: what reg_sg assumes. */
static bool sg8_ok(void) {
    static int known = -1;
    if (known < 0) {
        VkPhysicalDeviceSubgroupProperties sp = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
        VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sp };
        vkGetPhysicalDeviceProperties2(vkg_ctx.physical, &p2);
        known = sp.subgroupSize == 8 && (sp.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                (sp.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    }
    return known == 1;
}

/* Whether A and B can be read as texel buffers (reg_tex, reg_sg_tex): the device has them, their
 * blocks fit maxTexelBufferElements, and element offsets from the block start fit the push
 * constants' int32. */
static bool tex_ok(const vkg_tensor *a, const vkg_tensor *b) {
    return vkg_texel_ok(a->storage) && vkg_texel_ok(b->storage) && a->storage->block->size / 4 <= INT32_MAX &&
           b->storage->block->size / 4 <= INT32_MAX;
}

/* v, or the nearest variant that runs here: the tex forms need tex_ok, the sg forms sg8_ok. */
static mm_variant usable(mm_variant v, const vkg_tensor *a, const vkg_tensor *b) {
    if (mm_tex(v) && !tex_ok(a, b)) v = v == MM_REG_TEX ? MM_REG : MM_REG_SG;
    if (mm_sg(v) && !sg8_ok()) v = mm_tex(v) ? MM_REG_TEX : MM_REG;
    return v;
}

static mm_variant mm_variant_by_name(const char *s) {
    for (int v = 0; s && v < MM_COUNT; v++)
        if (strcmp(s, mm_names[v]) == 0) return (mm_variant)v;
    return MM_COUNT;
}

/* Records C = A @ B with variant v and tile shape cf; cv: 0, or the convolution constant of
 * the implicit-GEMM modules (vkg_conv_gemm_*: a reg variant, B the image x). */
static vkg_status mm_record_cv(vkg_tensor *c, vkg_tensor *a, vkg_tensor *b, const vkg_matmul_push *pc, int a_dim,
                               int b_dim, mm_variant v, mm_config cf, const mm_epi *e, uint32_t cv) {
    uint32_t M = pc->mnk[0], N = pc->mnk[1], nbatch = pc->mnk[3];
    if (mm_tex(v) && e->zin && !vkg_texel_ok(e->zin->storage)) v = v == MM_REG_TEX ? MM_REG : MM_REG_SG;
    uint32_t zcap = vkg_groups_cap(vkg_ctx.info.max_workgroup_count[2]); /* batch entries side by side */
    vkg_dispatch_desc d = { .op = VKG_OP_MATMUL, .name = "matmul", .bind = { c, a, b }, .nout = 1, .push = pc,
                            .push_size = sizeof *pc };
    uint64_t tr = TILE, tc = TILE;
    switch (v) {
    case MM_GENERAL:
        d.shader = "matmul";
        d.local_size = 16;
        break;
    case MM_REG:
    case MM_REG_SG:
    case MM_REG_TEX:
    case MM_REG_SG_TEX:
        d.shader = cv ? (mm_tex(v) ? "matmul_reg_tex_conv" : "matmul_reg_conv")
                 : mm_tex(v) ? "matmul_reg_tex"
                             : "matmul_reg";
        d.local_size = cf.wx;
        d.spec[0] = cf.tm;
        d.spec[1] = cf.tn;
        d.spec[2] = a_dim < 0 ? 2u : (uint32_t)a_dim;  /* A_KC: A's cols are K (2: scalar loads) */
        d.spec[3] = b_dim < 0 ? 2u : (uint32_t)(b_dim == 0); /* B_KC: B's rows are K (2: scalar loads) */
        /* MODE: bit 0 shares A across the subgroup, bit 1 stores C as vec4s (N and C's offset
         * multiples of 4, so every row starts aligned), bit 2 compiles the K tail in (lavapipe
         * would run it, masked, even when K % 4 == 0), bit 3 runs the product without the batch
         * loop when the grid has a workgroup row per batch entry (see the shader) */
        d.spec[4] = (mm_sg(v) ? 1u : 0u) |
                    (N % 4 == 0 && pc->c_off[0] % 4 == 0 && pc->c_off[1] % 4 == 0 && pc->c_off[2] % 4 == 0 &&
                             pc->c_off[3] % 4 == 0
                         ? 2u
                         : 0u) |
                    (pc->mnk[2] % 4 != 0 ? 4u : 0u) | (nbatch <= zcap ? 8u : 0u);
        d.spec[5] = cf.wy;
        d.nspec = 6;
        tr = (uint64_t)cf.tm * cf.wy;
        tc = (uint64_t)cf.tn * cf.wx;
        break;
    case MM_TILED:
        d.shader = "matmul_tiled";
        d.local_size = cf.wx;
        d.spec[0] = cf.tm;
        d.spec[1] = cf.tn;
        d.spec[2] = cf.bk;
        d.spec[5] = cf.wy;
        d.nspec = 6;
        tr = (uint64_t)cf.tm * cf.wy;
        tc = (uint64_t)cf.tn * cf.wx;
        break;
    default: break;
    }
    uint32_t code = epi_code(e);
    if (code) { /* spec[0..5] the variant's (zero where it has none), spec[6] = EPI */
        static const char *const epi_shader[MM_COUNT] = { "matmul_epi", "matmul_reg_epi", "matmul_reg_epi",
                                                          "matmul_tiled_epi", "matmul_reg_tex_epi",
                                                          "matmul_reg_tex_epi" };
        d.shader = cv ? (mm_tex(v) ? "matmul_reg_tex_conv_epi" : "matmul_reg_conv_epi") : epi_shader[v];
        d.op = VKG_OP_MATMUL_BIAS_ACT;
        d.name = "matmul_bias_act";
        d.bind[3] = e->bias ? e->bias : a;
        d.bind[4] = e->zin ? e->zin : a;
        d.spec[6] = code;
        d.nspec = 7;
    }
    if (cv) {
        d.op = VKG_OP_CONV2D;
        d.name = "conv2d (implicit GEMM)";
        d.spec[6] = code; /* EPI, 0 without an epilogue: the plain module declares no id 7 */
        d.spec[7] = cv;
        d.nspec = 8;
        d.flops = 2.0 * (double)M * (double)N * (double)pc->mnk[2] * (double)nbatch;
    }
    uint64_t gx = (N + tc - 1) / tc, gy = (M + tr - 1) / tr;
    const uint32_t *lim = vkg_ctx.info.max_workgroup_count;
    if (gx > lim[0] || gy > lim[1])
        return vkg_fail(VKG_ERR_TOO_LARGE, "vkg_matmul: %u x %u output is larger than one dispatch covers", M, N);
    d.groups[0] = (uint32_t)gx;
    d.groups[1] = (uint32_t)gy;
    d.groups[2] = nbatch > zcap ? zcap : nbatch;
    vkg_matmul_push pt;
    if (mm_tex(v)) { /* A and B texel views span their blocks: offsets count from the block start */
        pt = *pc;
        pt.a_mat[2] += (int32_t)vkg_texel_base(a->storage);
        pt.b_mat[2] += (int32_t)vkg_texel_base(b->storage);
        if (e->zin) pt.epi[2] += (int32_t)vkg_texel_base(e->zin->storage);
        d.push = &pt;
        d.texel = 6u | (code ? 16u : 0u); /* bindings 1 (A) and 2 (B), and 4 (zin) in the _epi modules */
        d.texel_r32 = cv ? 4u : 0u;  /* the image the implicit GEMM gathers floats from */
    }
    mm_last = mm_names[v];
    return vkg_dispatch(&d);
}

static vkg_status mm_record(vkg_tensor *c, vkg_tensor *a, vkg_tensor *b, const vkg_matmul_push *pc, int a_dim,
                            int b_dim, mm_variant v, mm_config cf, const mm_epi *e) {
    return mm_record_cv(c, a, b, pc, a_dim, b_dim, v, cf, e, 0);
}

/* ---- autotuning ------------------------------------------------------------------------------
 * A matmul's kernel and tile are chosen per shape class: ceil log2 of M, N and K, the vec4
 * layouts of A and B, batched or not. VKG_TUNE says how:
 *   unset, "" or auto (the default): first-use tuning. A class in the tuning file runs the
 *         file's choice; a class met for the first time is timed once (every candidate: a
 *         warm-up, then the best of 3 submits of a few dispatches; the rule stays unless a
 *         candidate is 5% faster), and the winner runs and is added to the file,
 *         so no later call or process times that class again.
 *   off:    the fixed rule; the file is neither read nor written.
 *   cached: the file's choice, else the rule; nothing is timed or written.
 *   full:   every class is timed on its first use in each context (vkg_init), even one the file
 *         has, and the file rewritten: to tune again (a new driver has its own file anyway).
 * Nothing is timed where timing is impossible or would be wrong; the file's choice, else the
 * rule, runs there and nothing is written: inside a graph capture (the host cannot wait for its
 * work), under validation (the layer's cost swamps the kernels') or VKG_SYNC, inside a region
 * timer (vkgrad-bench's timed repetitions), where C shares memory with an operand (each
 * candidate would read what the one before wrote), and with VKG_MATMUL_VARIANT (a forced kernel
 * is not chosen); and by default while VKG_PROFILE or VKG_EXPLAIN reports the run, or where no
 * cache directory would keep the choice (VKG_NO_PIPELINE_CACHE, no HOME: every process would
 * time again). full times in those two cases too, its candidates kept out of the per-op table
 * and the dispatch lines. Tuning first
 * waits for the work recorded before it (vkg_sync): an eager batch may be submitted at any
 * point, and the later ops see the same memory. Every candidate writes C, which the chosen
 * kernel writes again last. A failure while tuning is no failure of the op: the rule runs, no
 * error is reported or left, and the class is not timed again in this context. The file sits
 * beside the pipeline cache, one per device UUID and driver version
 * (matmul-tune-<uuid>-<driver>.txt), one line per shape class:
 * "log2 M, N, K buckets, A and B vec4 layout, batched: variant tm tn wx wy bk". */
typedef enum tune_mode { TUNE_OFF, TUNE_CACHED, TUNE_FIRST_USE, TUNE_FULL } tune_mode;
typedef struct mm_choice {
    int key[6];
    mm_variant v;
    mm_config cf;
    bool tuned;      /* timed in this context                                            */
    bool failed;     /* timing failed: the rule runs, and the file does not learn the class */
} mm_choice;
static struct {
    char path[1100];   /* the file of the context below ("" when there is no cache dir)  */
    uint64_t serial;   /* the context (vkg_context_serial) whose file was read             */
    mm_choice c[256];
    int n;
} T;

static int ceil_log2(uint32_t x) {
    int l = 0;
    while (l < 31 && (1u << l) < x) l++;
    return l;
}

static mm_choice *tune_find(const int key[6]) {
    for (int i = 0; i < T.n; i++)
        if (memcmp(T.c[i].key, key, sizeof T.c[i].key) == 0) return &T.c[i];
    return NULL;
}

/* Adds the file's lines whose class the table does not have yet: at the start of a context, and
 * before each write, so that classes another process tuned meanwhile are kept. */
static void tune_merge_file(void) {
    FILE *f = T.path[0] ? fopen(T.path, "r") : NULL;
    if (!f) return;
    char line[256], name[32];
    mm_choice e = { 0 };
    while (T.n < (int)(sizeof T.c / sizeof *T.c) && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%d %d %d %d %d %d: %31s %u %u %u %u %u", &e.key[0], &e.key[1], &e.key[2], &e.key[3],
                   &e.key[4], &e.key[5], name, &e.cf.tm, &e.cf.tn, &e.cf.wx, &e.cf.wy, &e.cf.bk) != 12)
            continue;
        e.v = mm_variant_by_name(name);
        bool ok = e.v != MM_COUNT && e.cf.tm >= 1 && e.cf.tm <= 64 && e.cf.tn >= 1 && e.cf.tn <= 64 && e.cf.wx >= 1 &&
                  e.cf.wy >= 1 && e.cf.wx * e.cf.wy <= vkg_ctx.info.max_workgroup_invocations && e.cf.bk <= 64 &&
                  (!mm_sg(e.v) || (e.cf.tm % 8 == 0 && e.cf.wx == 8 && sg8_ok())) &&
                  (e.v != MM_TILED || e.cf.bk >= 1) && (!mm_reg(e.v) || e.cf.tm % 4 == 0);
        if (ok && !tune_find(e.key)) T.c[T.n++] = e; /* a line that is not ours is skipped: never handed to the driver */
    }
    fclose(f);
}

static void tune_save(void) {
    if (!T.path[0]) return;
    tune_merge_file();
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s", T.path);
    for (char *p = tmp + 1; *p; p++) /* the directory may not exist before the pipeline cache is saved */
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", T.path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    for (int i = 0; i < T.n; i++) {
        const mm_choice *e = &T.c[i];
        if (e->failed) continue;
        fprintf(f, "%d %d %d %d %d %d: %s %u %u %u %u %u\n", e->key[0], e->key[1], e->key[2], e->key[3], e->key[4],
                e->key[5], mm_names[e->v], e->cf.tm, e->cf.tn, e->cf.wx, e->cf.wy, e->cf.bk);
    }
    bool ok = fclose(f) == 0;
    if (!ok || rename(tmp, T.path) != 0) unlink(tmp); /* a half-written file never replaces a good one */
}

/* The table of this context's device: read from its file on first use after each vkg_init. */
static void tune_open(void) {
    if (T.serial == vkg_context_serial()) return;
    memset(&T, 0, sizeof T);
    T.serial = vkg_context_serial();
    const char *pc = vkg_ctx.cache_path, *slash = strrchr(pc, '/');
    if (!pc[0] || !slash) return;
    char uuid[33];
    for (int i = 0; i < 16; i++) snprintf(uuid + 2 * i, 3, "%02x", vkg_ctx.info.device_uuid[i]);
    snprintf(T.path, sizeof T.path, "%.*s/matmul-tune-%s-%08x.txt", (int)(slash - pc), pc, uuid,
             vkg_ctx.info.driver_version);
    tune_merge_file();
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Why this call must not time candidates (see above); NULL where it may. */
static const char *no_timing(tune_mode mode, const vkg_tensor *c, const vkg_tensor *a, const vkg_tensor *b,
                             const mm_epi *ep) {
    if (vkg_graph_is_capturing()) return "inside a graph capture";
    if (vkg_ctx.desc.validate || vkg_ctx.desc.validate_sync) return "under validation";
    if (vkg_ctx.sync_mode) return "under VKG_SYNC";
    if (vkg_timer_open()) return "inside a timed region";
    if (mode != TUNE_FULL && vkg_profile_reporting()) return "while VKG_PROFILE or VKG_EXPLAIN reports";
    if (mode != TUNE_FULL && !T.path[0]) return "no cache directory keeps the choice"; /* every run would pay */
    if (vkg_shares_storage(c, a) || vkg_shares_storage(c, b) || (ep->bias && vkg_shares_storage(c, ep->bias)))
        return "C shares memory with an operand";
    return NULL;
}

/* Times each candidate for this call, *best (the rule's choice) among them; true with the
 * fastest in *best (c then holds some candidate's result), false when none could be timed.
 * Errors stay inside (muted). */
static bool tune(vkg_tensor *c, vkg_tensor *a, vkg_tensor *b, const vkg_matmul_push *pc, int a_dim, int b_dim,
                 const mm_epi *ep, mm_choice *best) {
    mm_choice cand[24];
    int n = 0;
    /* On a CPU device every candidate costs an LLVM compile (lavapipe: about half a second),
     * which dominates the time tuning takes, so the kernels measured never to win there are
     * left out: general and tiled ran at 1/9 and 1/15 of reg_sg, and the storage-buffer forms
     * of reg at 1/1.17 to 1/1.54 of their texel forms at every shape (bench/MATMUL.md). */
    bool cpu = vkg_ctx.info.type == VKG_DEVICE_CPU, tex = tex_ok(a, b);
    if (!cpu) {
        cand[n++] = (mm_choice){ .v = MM_GENERAL, .cf = mm_default(MM_GENERAL) };
        cand[n++] = (mm_choice){ .v = MM_TILED, .cf = mm_default(MM_TILED) };
        /* larger register blocks for large shapes on GPUs */
        cand[n++] = (mm_choice){ .v = MM_TILED, .cf = { 8, 8, 16, 16, 16 } };
        cand[n++] = (mm_choice){ .v = MM_TILED, .cf = { 8, 4, 16, 16, 16 } };
        cand[n++] = (mm_choice){ .v = MM_TILED, .cf = { 8, 8, 16, 16, 8 } };
    }
    cand[n++] = (mm_choice){ .v = MM_REG, .cf = mm_default(MM_REG) };
    cand[n++] = (mm_choice){ .v = MM_REG, .cf = { 8, 8, 8, 1, 0 } };
    if (sg8_ok()) {
        cand[n++] = (mm_choice){ .v = MM_REG_SG, .cf = mm_default(MM_REG_SG) };
        cand[n++] = (mm_choice){ .v = MM_REG_SG, .cf = { 16, 8, 8, 1, 0 } };
        cand[n++] = (mm_choice){ .v = MM_REG_SG, .cf = { 32, 16, 8, 1, 0 } };
        cand[n++] = (mm_choice){ .v = MM_REG_SG, .cf = { 32, 4, 8, 1, 0 } };
        cand[n++] = (mm_choice){ .v = MM_REG_SG, .cf = { 8, 8, 8, 1, 0 } };
    }
    for (int i = 0, n0 = n; i < n0 && tex; i++) /* each reg tile also reading texel buffers */
        if (mm_reg(cand[i].v)) {
            mm_choice t = { .v = mm_sg(cand[i].v) ? MM_REG_SG_TEX : MM_REG_TEX, .cf = cand[i].cf };
            if (cpu) cand[i] = t; /* instead of the storage-buffer form */
            else cand[n++] = t;
        }
    /* the rule's own choice (narrow shapes take their own tile) is always a candidate, the first */
    const mm_choice rule = *best;
    int r = 0;
    while (r < n && !(cand[r].v == rule.v && memcmp(&cand[r].cf, &rule.cf, sizeof rule.cf) == 0)) r++;
    if (r == n) n++;
    memmove(&cand[1], &cand[0], (size_t)r * sizeof *cand);
    cand[0] = rule;
    /* Each candidate: one dispatch to warm up (its pipeline's compile), then the best of 3
     * submits of k dispatches, k such that a submit of the rule lasts about 2 ms (a lone small
     * product is mostly the submit's and the wait's cost, and noise). A candidate replaces the
     * rule only when it is at least 5% faster: a near-tie timed once on a busy host is noise,
     * and on lavapipe every other tile is one more compile in every later process. */
    vkg_error_mute_begin();
    vkg_trace_hold(true);
    double t_start = now_s(), trule = INFINITY, tbest = INFINITY;
    int k = 1;
    vkg_explain_why("matmul autotuning");
    vkg_status st = vkg_sync(); /* time our dispatches alone */
    for (int i = 0; i < n && st == VKG_OK; i++) {
        double t = INFINITY;
        bool recorded = true;
        for (int rep = 0; rep < (i ? 4 : 5) && recorded && st == VKG_OK; rep++) { /* the rule's rep 1 sets k */
            double t0 = now_s();
            for (int j = 0; j < (rep ? k : 1) && recorded; j++) /* not here: the next candidate */
                recorded = mm_record(c, a, b, pc, a_dim, b_dim, cand[i].v, cand[i].cf, ep) == VKG_OK;
            vkg_explain_why("matmul autotuning");
            st = vkg_sync();
            double dt = (now_s() - t0) / (rep ? k : 1);
            if ((i ? rep > 0 : rep > 1) && recorded && dt < t) t = dt;
            if (i == 0 && rep == 1 && recorded) { /* the rule's lone timed submit sets k */
                k = (int)ceil(2e-3 / (dt > 0 ? dt : 1e-6));
                k = k < 1 ? 1 : k > 32 ? 32 : k;
            }
        }
        if (i == 0) trule = t;
        if (st == VKG_OK && t < tbest && (i == 0 || t < 0.95 * trule)) {
            tbest = t;
            *best = cand[i];
        }
    }
    vkg_trace_hold(false);
    vkg_error_mute_end();
    bool ok = st == VKG_OK && tbest < INFINITY;
    if (ok)
        vkg_log_msg(VKG_LOG_INFO, "matmul %ux%ux%u: tuned in %.3f s, %s %ux%u (%.3f ms; the rule %.3f ms)", pc->mnk[0],
                    pc->mnk[2], pc->mnk[1], now_s() - t_start, mm_names[best->v], best->cf.tm, best->cf.tn, tbest * 1e3,
                    trule * 1e3);
    else
        vkg_log_msg(VKG_LOG_DEBUG, "matmul %ux%ux%u: tuning failed; the rule runs", pc->mnk[0], pc->mnk[2], pc->mnk[1]);
    return ok;
}

/* Records and submits C = A @ B with the variant chosen for this device and these operands. */
static vkg_status matmul_dispatch(vkg_tensor *c, vkg_tensor *a, vkg_tensor *b, const vkg_matmul_push *pc,
                                  int a_dim, int b_dim, const mm_epi *ep) {
    /* the rule: CPU devices the register-blocked kernel (scalar loads for an operand that is not
     * vec4-readable: on lavapipe the MLP's (128, 10) gradients ran 3x faster so than in general)
     * reading texel buffers where it can, GPUs the tiled one */
    mm_variant v = vkg_ctx.info.type == VKG_DEVICE_CPU ? (sg8_ok() ? MM_REG_SG_TEX : MM_REG_TEX) : MM_TILED;
    v = usable(v, a, b);
    const char *force = getenv("VKG_MATMUL_VARIANT");
    if (force && *force) {
        mm_variant f = mm_variant_by_name(force);
        if (f == MM_COUNT) return vkg_fail(VKG_ERR_INVALID, "VKG_MATMUL_VARIANT=%s: no such matmul variant "
                                           "(general, reg, reg_sg, tiled, reg_tex, reg_sg_tex)", force);
        v = usable(f, a, b);
        return mm_record(c, a, b, pc, a_dim, b_dim, v, mm_config_for(v, pc), ep);
    }
    const char *env = getenv("VKG_TUNE");
    tune_mode mode = !env || !*env || strcmp(env, "auto") == 0 ? TUNE_FIRST_USE
                     : strcmp(env, "off") == 0                 ? TUNE_OFF
                     : strcmp(env, "cached") == 0              ? TUNE_CACHED
                     : strcmp(env, "full") == 0                ? TUNE_FULL
                                                               : (tune_mode)-1;
    if (mode == (tune_mode)-1) return vkg_fail(VKG_ERR_INVALID, "VKG_TUNE=%s: want auto, off, cached or full", env);
    mm_choice rule = { .v = v, .cf = mm_config_for(v, pc) };
    if (mode == TUNE_OFF) return mm_record(c, a, b, pc, a_dim, b_dim, v, rule.cf, ep);
    tune_open();
    int key[6] = { ceil_log2(pc->mnk[0]), ceil_log2(pc->mnk[1]), ceil_log2(pc->mnk[2]), a_dim, b_dim, pc->mnk[3] > 1 };
    mm_choice *e = tune_find(key);
    bool want = mode == TUNE_FULL ? !e || !e->tuned : mode == TUNE_FIRST_USE && !e;
    if (want && !no_timing(mode, c, a, b, ep)) {
        mm_choice best = rule;
        bool ok = tune(c, a, b, pc, a_dim, b_dim, ep, &best);
        /* a failure is remembered too, so that the class is not timed again on every call: a
         * new class runs the rule (and is not written), a class from the file its choice */
        bool fresh = !e;
        if (fresh && T.n < (int)(sizeof T.c / sizeof *T.c)) e = &T.c[T.n++];
        if (e && (ok || fresh)) {
            *e = ok ? best : rule;
            memcpy(e->key, key, sizeof key);
            e->failed = !ok;
        }
        if (e) e->tuned = true;
        if (ok) tune_save();
        if (!ok) best = rule;
        return mm_record(c, a, b, pc, a_dim, b_dim, best.v, best.cf, ep);
    }
    if (e && !e->failed) return mm_record(c, a, b, pc, a_dim, b_dim, usable(e->v, a, b), e->cf, ep);
    return mm_record(c, a, b, pc, a_dim, b_dim, v, rule.cf, ep);
}

/* Batch dims of an operand, aligned right against the broadcast batch shape. */
static void batch_strides(const vkg_tensor *t, int nb_t, const vkg_shape *bs, int64_t *st) {
    for (int i = 0; i < bs->ndim; i++) {
        int ti = i - (bs->ndim - nb_t);
        st[i] = (ti < 0 || t->shape.d[ti] == 1) ? 0 : t->strides[ti];
    }
}

/* Split-K: how many K slices a 2-D product runs as (1: none). On a GPU a product with few
 * output tiles leaves most multiprocessors idle while each workgroup walks a long K (an MLP's
 * 128 x 784 @ 784 x 512 makes 16 workgroups of 64 x 64 for an H100's 132): S slices make S times
 * the workgroups. Slices keep at least 64 of K and divide it exactly. VKG_MATMUL_SPLIT_K=S forces
 * S on any device where S divides K, for the tests (0 or unset: the rule). */
static int split_k(int64_t M, int64_t N, int64_t K, int an, int bn) {
    const char *v = getenv("VKG_MATMUL_VARIANT"), *e = getenv("VKG_MATMUL_SPLIT_K");
    if (an != 2 || bn != 2 || (v && *v)) return 1; /* a forced kernel runs on the whole product */
    int forced = e && *e ? atoi(e) : 0;
    if (forced > 1) return K % forced == 0 ? forced : 1;
    if (vkg_ctx.info.type == VKG_DEVICE_CPU || K < 256) return 1;
    int64_t tiles = ((M + 63) / 64) * ((N + 63) / 64);
    int S = 1;
    while (tiles * S < 128 && S < 16 && K % (2 * S) == 0 && K / (2 * S) >= 64) S *= 2;
    return S;
}

/* The epilogue as separate ops on a finished product c (which it frees when it makes a new
 * tensor): for the paths that sum partial products after the kernels ran (split-K, K slices)
 * and for K = 0. No node: the caller records one for the whole op. */
static vkg_tensor *epilogue_ops(vkg_tensor *c, const mm_epi *e) {
    if (!c || epi_code(e) == 0) return c;
    vkg_no_grad_begin();
    vkg_tensor *col = e->bias && e->rows ? vkg_unsqueeze(e->bias, 1) : e->bias; /* (M, 1): over rows */
    vkg_tensor *r = !e->bias ? c : col ? vkg_add(c, col) : NULL;
    if (col != e->bias) vkg_free(col);
    if (r && e->act == VKG_ACTIVATION_RELU) {
        vkg_tensor *y = vkg_relu(r);
        if (r != c) vkg_free(r);
        r = y;
    } else if (r && e->zin && !e->res) {
        vkg_tensor *y = vkg_unary_grad(VKG_OP_GELU, e->zin, r);
        if (r != c) vkg_free(r);
        r = y;
    } else if (r && e->act == VKG_ACTIVATION_GELU) { /* z = r is kept for the backward */
        if (*e->z && *e->z != r) vkg_free(*e->z);
        *e->z = r;
        r = vkg_gelu(r);
    }
    if (r && e->zin && e->res) { /* act is none here: the residual is added last */
        vkg_tensor *y = vkg_add(e->zin, r);
        if (r != c) vkg_free(r);
        r = y;
    }
    vkg_no_grad_end();
    if (r != c && (!e->z || *e->z != c)) vkg_free(c);
    return r;
}

/* r copied into dst (and freed), or r itself without dst: the paths that make the product as a
 * new tensor (sums of partial products, unfoldable layouts) and then meet a destination. */
static vkg_tensor *into(vkg_tensor *dst, vkg_tensor *r) {
    if (!dst || !r) return r;
    vkg_status st = vkg_copy_into(dst, r);
    vkg_free(r);
    return st == VKG_OK ? dst : NULL;
}

/* ---- f16 operands ------------------------------------------------------------------------------
 * A product with an f16 operand is an f32 tensor, accumulated in f32. Both operands f16, on a
 * device where the tensor-core kernel runs (shaders/matmul_coopmat.comp) and a plain product
 * (no epilogue) whose sizes are multiples of 16 and whose layouts it loads: that kernel. Anything
 * else: the f16 operands widened to f32 (vkg_to_dtype) and the f32 kernels, the same values,
 * since every f16 is exact in f32. */
static vkg_tensor *matmul_forward(vkg_tensor *a, vkg_tensor *b, const mm_epi *ep, vkg_tensor *dst);

static vkg_tensor *matmul_widened(vkg_tensor *a, vkg_tensor *b, const mm_epi *ep, vkg_tensor *dst) {
    vkg_no_grad_begin();
    vkg_tensor *a32 = a->dtype == VKG_F16 ? vkg_to_dtype(a, VKG_F32) : a;
    vkg_tensor *b32 = b->dtype == VKG_F16 ? vkg_to_dtype(b, VKG_F32) : b;
    vkg_no_grad_end();
    vkg_tensor *r = a32 && b32 ? matmul_forward(a32, b32, ep, dst) : NULL;
    if (a32 != a) vkg_free(a32);
    if (b32 != b) vkg_free(b32);
    return r;
}

/* The coopmat kernel's block of C per workgroup (BM x BN in shaders/matmul_coopmat.comp). */
#define CM_ROWS 64
#define CM_COLS 128

/* Records C = A @ B on the tensor-core kernel, or returns false (nothing recorded, no error) when
 * these operands do not fit it: sizes multiples of 16, A row-major and B row- or column-major,
 * offsets and strides multiples of 8 halves (16 bytes), C's multiples of 4 floats. */
static bool coopmat_record(vkg_tensor *c, vkg_tensor *a, vkg_tensor *b, const vkg_matmul_push *pc, vkg_status *st) {
    uint32_t M = pc->mnk[0], N = pc->mnk[1], K = pc->mnk[2];
    if (M % 16 || N % 16 || K % 16 || !M || !N || !K) return false;
    const int32_t *am = pc->a_mat, *bm = pc->b_mat;
    bool b_col = bm[0] == 1 && bm[1] != 1;
    if (am[1] != 1 || (!b_col && bm[1] != 1)) return false;
    int32_t al[] = { am[0], am[1], am[2], pc->a_bst[0], pc->a_bst[1], pc->a_bst[2], bm[0], bm[1], bm[2],
                     pc->b_bst[0], pc->b_bst[1], pc->b_bst[2] };
    for (size_t i = 0; i < sizeof al / sizeof *al; i++)
        if (al[i] != 1 && al[i] % 8 != 0) return false; /* a unit stride, or 16-byte steps */
    for (int i = 0; i < 4; i++)
        if (pc->c_off[i] % 4 != 0) return false;
    vkg_dispatch_desc d = { .shader = "matmul_coopmat", .op = VKG_OP_MATMUL, .name = "matmul", .bind = { c, a, b },
                            .nout = 1, .push = pc, .push_size = offsetof(vkg_matmul_push, epi), .local_size = 128 };
    d.spec[3] = b_col; /* B_COL, constant 4 */
    d.nspec = 4;
    const uint32_t *lim = vkg_ctx.info.max_workgroup_count;
    uint64_t gx = (N + CM_COLS - 1) / CM_COLS, gy = (M + CM_ROWS - 1) / CM_ROWS;
    if (gx > lim[0] || gy > lim[1]) return false;
    d.groups[0] = (uint32_t)gx;
    d.groups[1] = (uint32_t)gy;
    d.groups[2] = pc->mnk[3] > lim[2] ? lim[2] : pc->mnk[3];
    mm_last = "coopmat";
    *st = vkg_dispatch(&d);
    return true;
}

/* The product's batch dims (a's and b's broadcast) and its shape (1-D operands promoted and
 * their added dim dropped); false when the batch dims do not broadcast. a, b of 1 dim or more. */
static bool product_shape(const vkg_tensor *a, const vkg_tensor *b, vkg_shape *batch, vkg_shape *out) {
    int an = a->shape.ndim, bn = b->shape.ndim, a_nb = an > 2 ? an - 2 : 0, b_nb = bn > 2 ? bn - 2 : 0;
    vkg_shape as = { .ndim = a_nb }, bsh = { .ndim = b_nb };
    for (int i = 0; i < a_nb; i++) as.d[i] = a->shape.d[i];
    for (int i = 0; i < b_nb; i++) bsh.d[i] = b->shape.d[i];
    if (!vkg_broadcast_shape(as, bsh, batch)) return false;
    *out = *batch;
    if (an > 1) out->d[out->ndim++] = a->shape.d[an - 2];
    if (bn > 1) out->d[out->ndim++] = b->shape.d[bn - 1];
    return true;
}

/* C = A @ B (with the epilogue ep) into a new contiguous tensor, or, where dst is given, into
 * dst, a view of the product's shape whose last dim has stride 1: a product written in place
 * of another layout (attention's heads side by side, a gradient into its place in a larger
 * one) needs no copy after it. Returns the new tensor or dst; NULL on failure. */
static vkg_tensor *matmul_forward(vkg_tensor *a, vkg_tensor *b, const mm_epi *ep, vkg_tensor *dst) {
    if (!a || !b) return NULL;
    bool a_ok = a->dtype == VKG_F32 || a->dtype == VKG_F16, b_ok = b->dtype == VKG_F32 || b->dtype == VKG_F16;
    if (!a_ok || !b_ok) {
        char x[192], y[192];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: a is %s and b is %s; the operands must be f32 or f16",
                             vkg_desc(a, x, sizeof x), vkg_desc(b, y, sizeof y));
    }
    if (a->dtype == VKG_F16 || b->dtype == VKG_F16) {
        const char *force = getenv("VKG_MATMUL_VARIANT");
        if (a->dtype != b->dtype || !vkg_ctx.coopmat_nv || epi_code(ep) || (force && *force))
            return matmul_widened(a, b, ep, dst);
    }
    bool f16 = a->dtype == VKG_F16; /* both, for the tensor-core kernel */
    char x[160], y[160];
    if (a->shape.ndim == 0 || b->shape.ndim == 0)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: a is %s and b is %s; both need at least 1 dim",
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y));
    /* matrix views of both operands (1-D promoted) */
    int an = a->shape.ndim, bn = b->shape.ndim;
    int64_t M = an == 1 ? 1 : a->shape.d[an - 2], K = a->shape.d[an - 1];
    int64_t a_rs = an == 1 ? 0 : a->strides[an - 2], a_cs = a->strides[an - 1];
    int64_t Kb = bn == 1 ? b->shape.d[0] : b->shape.d[bn - 2], N = bn == 1 ? 1 : b->shape.d[bn - 1];
    int64_t b_rs = bn == 1 ? b->strides[0] : b->strides[bn - 2], b_cs = bn == 1 ? 0 : b->strides[bn - 1];
    if (K != Kb)
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: a is %s but b is %s: inner sizes %lld != %lld",
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y),
                             (long long)K, (long long)Kb);
    uint64_t budget = vkg_loop_budget();
    if (!f16 && (uint64_t)K + 64 > budget) {
        /* one output's K loop would run past lavapipe's loop limit: sum products of K slices,
         * in order (views, no copies) */
        uint64_t step = budget / 2;
        vkg_tensor *sum = NULL;
        vkg_no_grad_begin();
        for (int64_t k0 = 0; k0 < K && (k0 == 0 || sum); k0 += (int64_t)step) {
            int64_t len = K - k0 < (int64_t)step ? K - k0 : (int64_t)step;
            vkg_tensor *av = vkg_narrow(a, an - 1, k0, len), *bv = vkg_narrow(b, bn == 1 ? 0 : bn - 2, k0, len);
            vkg_tensor *p = av && bv ? matmul_forward(av, bv, &MM_PLAIN, NULL) : NULL;
            vkg_tensor *s2 = !p ? NULL : sum ? vkg_add(sum, p) : p;
            vkg_free(av);
            vkg_free(bv);
            if (p && p != s2) vkg_free(p);
            if (sum && sum != s2) vkg_free(sum);
            sum = s2;
        }
        vkg_no_grad_end();
        return into(dst, epilogue_ops(sum, ep)); /* after the whole sum */
    }
    int S = f16 ? 1 : split_k(M, N, K, an, bn);
    if (S > 1) {
        /* a (M, S, K/S) view of A, transposed to (S, M, K/S), times a (S, K/S, N) view of B: one
         * batched product of the K slices, whose S results a sum over the batch adds */
        vkg_no_grad_begin();
        vkg_tensor *a3 = vkg_view(a, VKG_SHAPE(M, S, K / S)), *b3 = vkg_view(b, VKG_SHAPE(S, K / S, N));
        vkg_tensor *at = a3 ? vkg_transpose(a3, 0, 1) : NULL, *r = NULL;
        if (at && b3) {
            vkg_tensor *p = matmul_forward(at, b3, &MM_PLAIN, NULL);
            r = p ? vkg_sum(p, 0, false) : NULL;
            vkg_free(p);
        } else {
            vkg_clear_error(); /* no view (cannot happen: splitting one dim always is one): unsplit */
            S = 1;
        }
        vkg_free(a3);
        vkg_free(b3);
        vkg_free(at);
        vkg_no_grad_end();
        if (S > 1) return into(dst, epilogue_ops(r, ep)); /* after the sum over the slices */
    }
    int a_nb = an > 2 ? an - 2 : 0, b_nb = bn > 2 ? bn - 2 : 0;
    vkg_shape batch, out;
    if (!product_shape(a, b, &batch, &out))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: batch dims of a %s and b %s do not broadcast",
                             vkg_shape_str(a->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y));

    if (dst && !vkg_shape_eq(&dst->shape, &out)) {
        char z[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul: the product is %s but its destination is %s",
                             vkg_shape_str(out, x, sizeof x), vkg_shape_str(dst->shape, z, sizeof z));
    }
    if (ep->zin && (dst || !vkg_is_contiguous(ep->zin) || ep->zin->offset % 4 != 0 || ep->zin->offset > INT32_MAX ||
                    !vkg_shape_eq(&ep->zin->shape, &out)))
        /* the kernels read z at C's index, so it must lie as a new C does: else the two passes */
        return into(dst, epilogue_ops(matmul_forward(a, b, &MM_PLAIN, NULL), ep));
    /* C's strides: contiguous, or dst's (a 2-D product's row stride; its last dim's must be 1) */
    int64_t ast[VKG_MAX_DIMS], bst[VKG_MAX_DIMS], cfull[VKG_MAX_DIMS], c_rs = N;
    batch_strides(a, a_nb, &batch, ast);
    batch_strides(b, b_nb, &batch, bst);
    bool c_ok = true;
    if (dst) {
        c_ok = an > 1 && bn > 1 && (N == 1 || dst->strides[out.ndim - 1] == 1);
        c_rs = c_ok ? dst->strides[out.ndim - 2] : 0;
        if (M > 1 && c_rs < 0) c_ok = false;
        for (int i = 0; i < batch.ndim; i++) cfull[i] = dst->strides[i];
    } else {
        int64_t s = M * N;
        for (int i = batch.ndim - 1; i >= 0; i--) {
            cfull[i] = s;
            s *= batch.d[i];
        }
    }
    /* fold batch dims into at most 3: drop size-1 dims, merge dims contiguous in both operands
     * and in C (a contiguous C merges wherever the operands do) */
    int64_t bdim[VKG_MAX_DIMS], sa[VKG_MAX_DIMS], sb[VKG_MAX_DIMS], sc[VKG_MAX_DIMS];
    int nb = 0;
    for (int i = 0; i < batch.ndim; i++) {
        if (batch.d[i] == 1) continue;
        if (nb > 0 && sa[nb - 1] == ast[i] * batch.d[i] && sb[nb - 1] == bst[i] * batch.d[i] &&
            sc[nb - 1] == cfull[i] * batch.d[i]) {
            bdim[nb - 1] *= batch.d[i];
            sa[nb - 1] = ast[i];
            sb[nb - 1] = bst[i];
            sc[nb - 1] = cfull[i];
            continue;
        }
        bdim[nb] = batch.d[i];
        sa[nb] = ast[i];
        sb[nb] = bst[i];
        sc[nb] = cfull[i];
        nb++;
    }
    /* the kernels take slot 0's C stride as slot 1's times its size (a contiguous C's is) */
    for (int i = 0; i < nb && dst; i++) c_ok = c_ok && sc[i] >= 0;
    if (dst && nb == 3) c_ok = c_ok && sc[0] == sc[1] * bdim[1];
    if (dst && (!c_ok || nb > 3)) /* a layout the kernels do not write: a product, then a copy */
        return into(dst, matmul_forward(a, b, ep, NULL));
    if (nb > 3) {
        /* rare: operands whose batch dims do not fold into 3; gather each one with batch dims
         * into a contiguous copy of the full batch shape, which then folds into one */
        vkg_tensor *cp[2] = { a, b };
        const int nds[2] = { an, bn };
        for (int k = 0; k < 2; k++) {
            if (nds[k] <= 2) continue;
            vkg_shape e = batch;
            e.d[e.ndim++] = cp[k]->shape.d[nds[k] - 2];
            e.d[e.ndim++] = cp[k]->shape.d[nds[k] - 1];
            vkg_tensor *v = vkg_expand(cp[k], e);
            cp[k] = v ? vkg_copy(v) : NULL;
            vkg_free(v);
        }
        vkg_tensor *r = (cp[0] && cp[1]) ? matmul_forward(cp[0], cp[1], ep, dst) : NULL;
        if (cp[0] != a) vkg_free(cp[0]);
        if (cp[1] != b) vkg_free(cp[1]);
        return r;
    }
    int64_t zoff = 0;
    vkg_tensor *c = dst ? dst : alloc_out(out, ep, &zoff);
    if (!c) return NULL;
    int64_t nbatch = vkg_shape_numel(batch);
    if (vkg_numel(c) == 0) {
        mm_last = "none";
        return c;
    }
    if (K == 0) {
        mm_last = "fill";
        if (dst) return into(dst, matmul_forward(a, b, ep, NULL));
        return epilogue_ops(vkg_fill_(c, 0.0f), ep);
    }
    vkg_matmul_push pc = { .mnk = { (uint32_t)M, (uint32_t)N, (uint32_t)K, (uint32_t)nbatch },
                           .bshape = { 1, 1, 1, 1 },
                           .a_mat = { (int32_t)a_rs, (int32_t)a_cs, (int32_t)a->offset },
                           .b_mat = { (int32_t)b_rs, (int32_t)b_cs, (int32_t)b->offset },
                           .c_off = { (uint32_t)c->offset, (uint32_t)c_rs },
                           .epi = { ep->bias ? (int32_t)ep->bias->offset : 0, ep->bias ? (int32_t)ep->bias->strides[0] : 0,
                                    (int32_t)(ep->zin ? ep->zin->offset : zoff) } };
    for (int i = 0; i < nb; i++) { /* right-align into the 3 slots */
        int slot = 3 - nb + i;
        pc.bshape[slot] = (uint32_t)bdim[i];
        pc.a_bst[slot] = (int32_t)sa[i];
        pc.b_bst[slot] = (int32_t)sb[i];
        if (slot >= 1) pc.c_off[slot + 1] = (uint32_t)sc[i];
    }
    if (f16) {
        vkg_status st = VKG_OK;
        vkg_tensor *r = c;
        if (!coopmat_record(c, a, b, &pc, &st)) r = matmul_widened(a, b, ep, c); /* a layout it cannot load */
        else if (st != VKG_OK) r = NULL;
        if (!r && c != dst) vkg_free(c);
        return r;
    }
    int a_dim = vec4_dim(a, M, K, a_rs, a_cs, sa, bdim, nb), b_dim = vec4_dim(b, K, N, b_rs, b_cs, sb, bdim, nb);
    if (matmul_dispatch(c, a, b, &pc, a_dim, b_dim, ep) != VKG_OK) {
        if (c != dst) vkg_free(c);
        return NULL;
    }
    return c;
}

vkg_tensor *vkg_matmul_into(vkg_tensor *dst, vkg_tensor *a, vkg_tensor *b) {
    if (!dst || !vkg_require_f32(dst, "matmul", "dst")) return NULL;
    return matmul_forward(a, b, &MM_PLAIN, dst);
}

vkg_tensor *vkg_matmul(vkg_tensor *a, vkg_tensor *b) {
    vkg_tensor *c = matmul_forward(a, b, &MM_PLAIN, NULL);
    vkg_node_record(c, VKG_OP_MATMUL, (vkg_tensor *[]){ a, b }, 2); /* backward: lib/autograd */
    return c;
}

/* vkg_matmul_bias_act and its _residual form (r NULL: none); fn names the caller in messages */
static vkg_tensor *bias_act(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias, vkg_activation act, vkg_tensor *r,
                            const char *fn) {
    if (!a || !b) return NULL;
    if (act != VKG_ACTIVATION_NONE && act != VKG_ACTIVATION_RELU && act != VKG_ACTIVATION_GELU)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: act %d is not VKG_ACTIVATION_NONE, "
                                              "VKG_ACTIVATION_RELU or VKG_ACTIVATION_GELU", fn, (int)act);
    if (!bias && act == VKG_ACTIVATION_NONE && !r) return vkg_matmul(a, b); /* nothing to fuse */
    if (bias) {
        if (!vkg_require_f32(bias, fn, "bias")) return NULL;
        /* C's last dim is b's last (a 1-D b adds none: then N = 1) */
        int64_t N = b->shape.ndim == 1 ? 1 : b->shape.ndim >= 2 ? b->shape.d[b->shape.ndim - 1] : 0;
        if (bias->shape.ndim != 1 || bias->shape.d[0] != N || b->shape.ndim == 0) {
            char x[160], y[160];
            return vkg_fail_null(VKG_ERR_INVALID, "%s: bias is %s but b is %s: bias must be (%lld,), "
                                                  "one value per column of the product",
                                 fn, vkg_shape_str(bias->shape, x, sizeof x), vkg_shape_str(b->shape, y, sizeof y),
                                 (long long)N);
        }
    }
    if (r) {
        vkg_shape batch, out;
        if (!vkg_require_f32(r, fn, "r")) return NULL;
        if (a->shape.ndim > 0 && b->shape.ndim > 0 && product_shape(a, b, &batch, &out) &&
            !vkg_shape_eq(&out, &r->shape)) {
            char x[160], y[160];
            return vkg_fail_null(VKG_ERR_INVALID, "%s: r is %s but the product is %s: r must have the product's shape",
                                 fn, vkg_shape_str(r->shape, x, sizeof x), vkg_shape_str(out, y, sizeof y));
        }
    }
    vkg_tensor *z = NULL;
    mm_epi e = { bias, act, false, &z, r, r != NULL };
    vkg_tensor *c = matmul_forward(a, b, &e, NULL);
    if (!c) {
        vkg_free(z);
        return NULL;
    }
    /* backward (lib/autograd): relu's mask comes from c itself, gelu's derivative from z; r gets
     * the gradient as it is */
    vkg_node *n = vkg_node_record(c, VKG_OP_MATMUL_BIAS_ACT, (vkg_tensor *[]){ a, b, bias, z, r },
                                  r ? 5 : z ? 4 : bias ? 3 : 2);
    if (n) n->ip[0] = act;
    else vkg_free(z); /* no backward: z is not needed */
    return c;
}

vkg_tensor *vkg_matmul_bias_act(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias, vkg_activation act) {
    return bias_act(a, b, bias, act, NULL, "vkg_matmul_bias_act");
}

vkg_tensor *vkg_matmul_bias_act_residual(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias, vkg_tensor *r) {
    if (!r) return NULL;
    return bias_act(a, b, bias, VKG_ACTIVATION_NONE, r, "vkg_matmul_bias_act_residual");
}

vkg_tensor *vkg_matmul_gelu_grad(vkg_tensor *a, vkg_tensor *b, vkg_tensor *z) {
    if (!a || !b || !z) return NULL;
    if (!vkg_require_f32(z, "matmul_gelu_grad", "z")) return NULL;
    return matmul_forward(a, b, &(mm_epi){ NULL, VKG_ACTIVATION_NONE, false, NULL, z, false }, NULL);
}

vkg_tensor *vkg_matmul_row_bias(vkg_tensor *a, vkg_tensor *b, vkg_tensor *bias) {
    if (!a || !b || !bias) return NULL;
    if (!vkg_require_f32(bias, "matmul_row_bias", "bias")) return NULL;
    int64_t M = a->shape.ndim >= 2 ? a->shape.d[a->shape.ndim - 2] : 1;
    if (bias->shape.ndim != 1 || bias->shape.d[0] != M) {
        char x[160], y[160];
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_matmul_row_bias: bias is %s but a is %s: bias must be (%lld,), "
                                              "one value per row of the product",
                             vkg_shape_str(bias->shape, x, sizeof x), vkg_shape_str(a->shape, y, sizeof y), (long long)M);
    }
    return matmul_forward(a, b, &(mm_epi){ bias, VKG_ACTIVATION_NONE, true, NULL, NULL, false }, NULL);
}

/* ---- convolution as an implicit GEMM -----------------------------------------------------------
 * The register-blocked kernels with B the unfolding of an image batch (vkg_conv_gemm in
 * lib/ops/ops.h, shaders/matmul_reg.comp MM_CONV): conv2d's forward and input gradient (as a
 * convolution of g) and its weight gradient, without the unfolded copy. The kernel and tile are
 * the rule's for a product of the same shape (not tuned: the tuning file keys plain products);
 * on devices where the rule is the tiled kernel, the reg form (texel or storage) runs. */

/* The pieces of constant 8 of the MM_CONV modules (shaders/matmul_reg.comp). */
static uint32_t conv_constant(const vkg_conv_gemm *g, bool wgrad) {
    return (wgrad ? 1u : 0u) | (uint32_t)g->kh << 1 | (uint32_t)g->kw << 8 | (uint32_t)g->OW << 15;
}

static bool in_range(int v, int lo, int hi) { return v >= lo && v <= hi; }

bool vkg_conv_gemm_ok(const vkg_tensor *x, const vkg_conv_gemm *g) {
    if (!x || x->shape.ndim != 4 || x->dtype != VKG_F32 || x->strides[3] != 1 || x->shape.d[2] > 0xffff ||
        x->shape.d[3] > 0xffff)
        return false;
    if (g->kh < 1 || g->kh > 127 || g->kw < 1 || g->kw > 127 || g->OW < 1 || g->OW >= (1 << 17) || g->OH < 1)
        return false;
    if (!in_range(g->sh, -128, 127) || !in_range(g->sw, -128, 127) || !in_range(g->dh, -128, 127) ||
        !in_range(g->dw, -128, 127) || !in_range(g->ph, -32768, 32767) || !in_range(g->pw, -32768, 32767))
        return false;
    /* every index the kernel forms fits its int32, and the K loop (taps or positions) stays
     * inside lavapipe's loop limit (the plain matmul's K slices have no counterpart here) */
    int64_t C = x->shape.d[1], taps = C * g->kh * g->kw, P = g->OH * g->OW;
    uint64_t budget = vkg_loop_budget();
    if ((uint64_t)taps + 64 > budget || (uint64_t)P + 64 > budget) return false;
    for (int i = 0; i < 4; i++)
        if (x->strides[i] < 0) return false;
    int64_t last = x->offset + (x->shape.d[0] - 1) * x->strides[0] + (C - 1) * x->strides[1] +
                   (x->shape.d[2] - 1) * x->strides[2] + x->shape.d[3];
    return last < INT32_MAX && taps < INT32_MAX && P < INT32_MAX && x->storage->block->size / 4 <= INT32_MAX;
}

/* c = a (@) unfold(x) in the form wgrad says; a: (M, K) shared by every image (forward) or
 * (nb, M, K) one per image (wgrad). */
static vkg_tensor *conv_gemm(vkg_tensor *a, vkg_tensor *x, const vkg_conv_gemm *g, bool wgrad, vkg_tensor *row_bias) {
    const char *name = wgrad ? "vkg_conv_gemm_wgrad" : "vkg_conv_gemm_forward";
    if (!a || !x) return NULL;
    if (!vkg_conv_gemm_ok(x, g))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x or the geometry is out of the implicit GEMM's range", name);
    int64_t nb = x->shape.d[0], taps = x->shape.d[1] * g->kh * g->kw, P = g->OH * g->OW;
    int64_t M = a->shape.d[a->shape.ndim - 2], K = wgrad ? P : taps, N = wgrad ? taps : P;
    char s1[160], s2[160];
    if (a->dtype != VKG_F32 || a->shape.ndim != (wgrad ? 3 : 2) || a->shape.d[a->shape.ndim - 1] != K ||
        (wgrad && a->shape.d[0] != nb))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: a is %s but x is %s: want a (%s%lld, %lld)", name,
                             vkg_desc(a, s1, sizeof s1), vkg_desc(x, s2, sizeof s2), wgrad ? "nb, " : "",
                             (long long)M, (long long)K);
    vkg_tensor *c = vkg_tensor_alloc(VKG_SHAPE(nb, M, N), VKG_F32, false, name);
    if (!c || vkg_numel(c) == 0) return c;
    int64_t sa[1] = { wgrad ? a->strides[0] : 0 }, bdim[1] = { nb };
    int nd = a->shape.ndim;
    int64_t a_rs = a->strides[nd - 2], a_cs = a->strides[nd - 1];
    vkg_matmul_push pc = {
        .mnk = { (uint32_t)M, (uint32_t)N, (uint32_t)K, (uint32_t)nb },
        .bshape = { 1, 1, (uint32_t)nb, 1 },
        .a_bst = { 0, 0, (int32_t)sa[0] },
        .b_bst = { (int32_t)((uint32_t)(g->sh & 0xff) | (uint32_t)(g->sw & 0xff) << 8 | (uint32_t)(g->dh & 0xff) << 16 |
                             (uint32_t)(g->dw & 0xff) << 24),
                   (int32_t)((uint32_t)(g->ph & 0xffff) | (uint32_t)(g->pw & 0xffff) << 16), (int32_t)x->strides[0] },
        .a_mat = { (int32_t)a_rs, (int32_t)a_cs, (int32_t)a->offset },
        .b_mat = { (int32_t)x->strides[1], (int32_t)x->strides[2], (int32_t)x->offset,
                   (int32_t)((uint32_t)x->shape.d[2] | (uint32_t)x->shape.d[3] << 16) },
        .c_off = { (uint32_t)c->offset, (uint32_t)N, 0, (uint32_t)(M * N) },
        .epi = { row_bias ? (int32_t)row_bias->offset : 0, row_bias ? (int32_t)row_bias->strides[0] : 0, 0 },
    };
    int a_dim = vec4_dim(a, M, K, a_rs, a_cs, sa, bdim, 1);
    mm_variant v = usable(MM_REG_SG_TEX, a, x); /* without subgroups of 8 (GPUs): reg_tex */
    const char *force = getenv("VKG_MATMUL_VARIANT");
    mm_variant f = force && *force ? mm_variant_by_name(force) : MM_COUNT;
    if (f != MM_COUNT && mm_reg(f)) v = usable(f, a, x); /* tests run every reg form */
    if (mm_tex(v) && !vkg_texel_r32_ok(x->storage)) v = v == MM_REG_TEX ? MM_REG : MM_REG_SG; /* x as R32F texels */
    mm_epi e = { row_bias, VKG_ACTIVATION_NONE, row_bias != NULL, NULL, NULL, false };
    mm_config cf = mm_config_for(v, &pc);
    /* TN 4 where K runs over many taps: a gathered float of B serves TM FMAs whatever TN is, and
     * the smaller block keeps more of the invocation in registers (lavapipe, CNN's 3x3 over 32
     * and 64 channels: 0.91x the time of TN 8; its first layer, K = 9, is faster with 8) */
    const char *cfg_env = getenv("VKG_MATMUL_CONFIG");
    if (!wgrad && K >= 64 && mm_sg(v) && !(cfg_env && *cfg_env)) cf.tn = 4;
    if (mm_record_cv(c, a, x, &pc, a_dim, 0, v, cf, &e, conv_constant(g, wgrad)) != VKG_OK) {
        vkg_free(c);
        return NULL;
    }
    return c;
}

vkg_tensor *vkg_conv_gemm_forward(vkg_tensor *a, vkg_tensor *x, const vkg_conv_gemm *g, vkg_tensor *row_bias) {
    return conv_gemm(a, x, g, false, row_bias);
}

vkg_tensor *vkg_conv_gemm_wgrad(vkg_tensor *a, vkg_tensor *x, const vkg_conv_gemm *g) {
    return conv_gemm(a, x, g, true, NULL);
}
