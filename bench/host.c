/* Host overhead cases (issue 8): what vkgrad's eager path costs beyond the Vulkan calls it must
 * make, and what graph replay saves.
 *
 * - p[1] == 0, "chain": p[0] dependent tiny adds (y = y + b, 64 floats) through vkg_add, then one
 *   read-back; and the same dispatches recorded by a minimal raw-Vulkan loop in the same run:
 *   the same SPIR-V (shaders/binary.comp, the add variant, the same push constants and grid),
 *   the pipeline bound once per command buffer, then per dispatch one barrier, push descriptors,
 *   push constants and the dispatch (the commands vkgrad records for the chain); the same
 *   number of submits, three command buffers in flight, one read-back. Value: vkgrad's host CPU
 *   time / raw Vulkan's, medians, on the calling thread's CPU clock from the first op to the
 *   read-back result (vkgrad's includes ending the scope that frees the chain's tensors). Wall
 *   time is in the note: on a CPU device it is mostly the device running the shaders, which
 *   hides the host's share.
 * - p[1] == 1, "mlp replay": the reference MLP (models/models.h, batch p[0]) trained eagerly
 *   and through a captured step fed by host inputs (vkgrad/graph.h). Value: host CPU time per
 *   replayed step / host CPU time per eager step (the calling thread's CPU time, so waiting for
 *   the device is not counted; lavapipe's own threads are not this thread). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "models.h"
#include "runtime/graph_internal.h"
#include "runtime/runtime.h"
#include "vkgrad.h"
#include "vkgrad/graph.h"

#define CHAIN_N 64      /* floats per tensor */
#define RAW_FRAMES 3

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n ? (n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2])) : 0.0;
}

/* What an interval costs the thread CPU clock itself: the median of empty intervals (two readings
 * back to back; a reading is a system call, 0.6 us a pair on this VM). Measured warm, so it is
 * the least that a timed interval holds of it; subtracted from the replay case's intervals,
 * which are a few microseconds. */
static double clock_interval(void) {
    double d[201];
    for (int i = 0; i < 201; i++) {
        double a = cpu_now();
        d[i] = cpu_now() - a;
    }
    return median(d, 201);
}

static double mean(const double *x, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0.0;
}

static void fail(vkgb_result *r, const char *what) {
    r->status = VKGB_FAIL;
    snprintf(r->reason, sizeof r->reason, "%s: %s", what, vkg_last_error());
}

/* ---- the raw-Vulkan loop ------------------------------------------------------------------- */
/* Mirrors vkg_elementwise_push (lib/ops/elementwise.c) and shaders/elementwise.glsl's Push block. */
typedef struct raw_push {
    uint32_t n, out_off, flags, pad;
    uint32_t shape[4];
    int32_t st[3][4];
    uint32_t off[4];
    float s[4];
} raw_push;

typedef struct raw {
    VkDevice dev;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkShaderModule module;
    VkPipeline pipe;
    /* [0]: the driver's own host allocator, the minimal loop; [1]: vkgrad's command allocator
     * (lib/runtime/cmdmem.c), which shows how much of vkgrad's cost is its own code */
    VkCommandPool pool[2];
    VkCommandBuffer cmd[2][RAW_FRAMES];
    vkg_cmdmem *cmdmem;
    VkFence fence[RAW_FRAMES];
    VkBuffer buf;
    VkDeviceMemory mem;
    float *mapped;            /* [a | b | y0 | y1], CHAIN_N floats each */
    VkDeviceSize region;      /* bytes per region, aligned */
} raw;

static void raw_free(raw *w) {
    if (!w->dev) return;
    for (int i = 0; i < RAW_FRAMES; i++)
        if (w->fence[i]) vkDestroyFence(w->dev, w->fence[i], NULL);
    for (int k = 0; k < 2; k++)
        if (w->pool[k]) vkDestroyCommandPool(w->dev, w->pool[k], k ? vkg_cmdmem_callbacks(w->cmdmem) : NULL);
    vkg_cmdmem_free(w->cmdmem);
    if (w->pipe) vkDestroyPipeline(w->dev, w->pipe, NULL);
    if (w->module) vkDestroyShaderModule(w->dev, w->module, NULL);
    if (w->layout) vkDestroyPipelineLayout(w->dev, w->layout, NULL);
    if (w->dsl) vkDestroyDescriptorSetLayout(w->dev, w->dsl, NULL);
    if (w->mapped) vkUnmapMemory(w->dev, w->mem);
    if (w->buf) vkDestroyBuffer(w->dev, w->buf, NULL);
    if (w->mem) vkFreeMemory(w->dev, w->mem, NULL);
    memset(w, 0, sizeof *w);
}

static const char *raw_init(raw *w) {
    memset(w, 0, sizeof *w);
    if (!vkg_ctx.info.push_descriptor) return "the device has no VK_KHR_push_descriptor";
    w->dev = vkg_ctx.device;
    const vkg_shader_code *code = NULL;
    for (int i = 0; vkg_shader_table[i].name; i++)
        if (strcmp(vkg_shader_table[i].name, "binary") == 0) code = &vkg_shader_table[i];
    if (!code) return "no binary shader";
    VkDescriptorSetLayoutBinding b[4];
    for (uint32_t i = 0; i < 4; i++)
        b[i] = (VkDescriptorSetLayoutBinding){ i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL };
    VkDescriptorSetLayoutCreateInfo dci = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                            .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
                                            .bindingCount = 4, .pBindings = b };
    if (vkCreateDescriptorSetLayout(w->dev, &dci, NULL, &w->dsl) != VK_SUCCESS) return "vkCreateDescriptorSetLayout";
    VkPushConstantRange pr = { VK_SHADER_STAGE_COMPUTE_BIT, 0, VKG_PUSH_SIZE };
    VkPipelineLayoutCreateInfo lci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                       .pSetLayouts = &w->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pr };
    if (vkCreatePipelineLayout(w->dev, &lci, NULL, &w->layout) != VK_SUCCESS) return "vkCreatePipelineLayout";
    VkShaderModuleCreateInfo mci = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = code->size,
                                     .pCode = code->code };
    if (vkCreateShaderModule(w->dev, &mci, NULL, &w->module) != VK_SUCCESS) return "vkCreateShaderModule";
    uint32_t spec[2] = { 128, vkg_op_table[VKG_OP_ADD].code };
    VkSpecializationMapEntry map[2] = { { 0, 0, 4 }, { 1, 4, 4 } };
    VkSpecializationInfo si = { 2, map, sizeof spec, spec };
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                   .module = w->module, .pName = "main", .pSpecializationInfo = &si },
        .layout = w->layout };
    if (vkCreateComputePipelines(w->dev, VK_NULL_HANDLE, 1, &pci, NULL, &w->pipe) != VK_SUCCESS)
        return "vkCreateComputePipelines";
    VkCommandPoolCreateInfo cpi = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = vkg_ctx.queue_family };
    if (!(w->cmdmem = vkg_cmdmem_new())) return "out of host memory";
    for (int k = 0; k < 2; k++) {
        if (vkCreateCommandPool(w->dev, &cpi, k ? vkg_cmdmem_callbacks(w->cmdmem) : NULL, &w->pool[k]) != VK_SUCCESS)
            return "vkCreateCommandPool";
        VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = w->pool[k],
                                           .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = RAW_FRAMES };
        if (vkAllocateCommandBuffers(w->dev, &ai, w->cmd[k]) != VK_SUCCESS) return "vkAllocateCommandBuffers";
    }
    for (int i = 0; i < RAW_FRAMES; i++) {
        VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO, .flags = VK_FENCE_CREATE_SIGNALED_BIT };
        if (vkCreateFence(w->dev, &fi, NULL, &w->fence[i]) != VK_SUCCESS) return "vkCreateFence";
    }
    VkDeviceSize align = vkg_ctx.storage_align ? vkg_ctx.storage_align : 256;
    w->region = (CHAIN_N * sizeof(float) + align - 1) / align * align;
    VkBufferCreateInfo bci = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 4 * w->region,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT };
    if (vkCreateBuffer(w->dev, &bci, NULL, &w->buf) != VK_SUCCESS) return "vkCreateBuffer";
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(w->dev, w->buf, &req);
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < vkg_ctx.memprops.memoryTypeCount && type == UINT32_MAX; i++)
        if ((req.memoryTypeBits & (1u << i)) && (vkg_ctx.memprops.memoryTypes[i].propertyFlags & hv) == hv) type = i;
    if (type == UINT32_MAX) return "no host-visible memory type";
    VkMemoryAllocateInfo mai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                 .memoryTypeIndex = type };
    if (vkAllocateMemory(w->dev, &mai, NULL, &w->mem) != VK_SUCCESS) return "vkAllocateMemory";
    if (vkBindBufferMemory(w->dev, w->buf, w->mem, 0) != VK_SUCCESS) return "vkBindBufferMemory";
    void *p;
    if (vkMapMemory(w->dev, w->mem, 0, VK_WHOLE_SIZE, 0, &p) != VK_SUCCESS) return "vkMapMemory";
    w->mapped = p;
    return NULL;
}

static float *region(raw *w, int i) { return (float *)((uint8_t *)w->mapped + (size_t)i * w->region); }

/* n dispatches y_{k+1} = y_k + b (y_0 = a) in `submits` submits, then the result read back;
 * recorded into the command buffers of pool `which` (raw.pool). */
static const char *raw_chain(raw *w, int which, int n, int submits, float *out) {
    for (int i = 0; i < CHAIN_N; i++) {
        region(w, 0)[i] = 0.0f;
        region(w, 1)[i] = 1.0f;
    }
    raw_push pc = { .n = CHAIN_N, .flags = 2u, .shape = { 1, 1, 1, CHAIN_N }, .st = { { 0, 0, 0, 1 }, { 0, 0, 0, 1 } } };
    uint8_t push[VKG_PUSH_SIZE] = { 0 };   /* every pipeline layout has one 128-byte range, as vkgrad's */
    memcpy(push, &pc, sizeof pc);
    VkDescriptorBufferInfo info[4];
    VkWriteDescriptorSet wr[4];
    for (int i = 0; i < 4; i++)
        wr[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstBinding = (uint32_t)i,
                                        .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                        .pBufferInfo = &info[i] };
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT };
    int done = 0, frame = 0;
    int last = 0; /* region holding y_k */
    for (int s = 0; s < submits; s++) {
        int count = (n - done) / (submits - s);
        VkCommandBuffer cmd = w->cmd[which][frame];
        if (vkWaitForFences(w->dev, 1, &w->fence[frame], VK_TRUE, UINT64_MAX) != VK_SUCCESS) return "vkWaitForFences";
        vkResetFences(w->dev, 1, &w->fence[frame]);
        VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
        vkBeginCommandBuffer(cmd, &bi);
        for (int k = 0; k < count; k++) {
            int dst = last == 2 ? 3 : 2;
            info[0] = (VkDescriptorBufferInfo){ w->buf, (VkDeviceSize)dst * w->region, w->region };
            info[1] = (VkDescriptorBufferInfo){ w->buf, (VkDeviceSize)last * w->region, w->region };
            info[2] = (VkDescriptorBufferInfo){ w->buf, w->region, w->region };
            info[3] = info[1];
            vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                                 &mb, 0, NULL, 0, NULL);
            if (k == 0) vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, w->pipe);
            vkCmdPushDescriptorSetKHR(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, w->layout, 0, 4, wr);
            vkCmdPushConstants(cmd, w->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, VKG_PUSH_SIZE, push);
            vkCmdDispatch(cmd, 1, 1, 1);
            last = dst;
        }
        if (s == submits - 1) {
            VkMemoryBarrier hb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                                   .dstAccessMask = VK_ACCESS_HOST_READ_BIT };
            vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &hb, 0,
                                 NULL, 0, NULL);
        }
        if (vkEndCommandBuffer(cmd) != VK_SUCCESS) return "vkEndCommandBuffer";
        VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd };
        if (vkQueueSubmit(vkg_ctx.queue, 1, &si, w->fence[frame]) != VK_SUCCESS) return "vkQueueSubmit";
        done += count;
        frame = (frame + 1) % RAW_FRAMES;
    }
    if (vkWaitForFences(w->dev, RAW_FRAMES, w->fence, VK_TRUE, UINT64_MAX) != VK_SUCCESS) return "vkWaitForFences";
    memcpy(out, region(w, last), CHAIN_N * sizeof *out);
    return NULL;
}

/* ---- the cases --------------------------------------------------------------------------------- */
static void run_chain(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    int n = (int)c->p[0];
    raw w;
    const char *why = raw_init(&w);
    if (why) {
        raw_free(&w);
        r->status = VKGB_SKIPPED;
        snprintf(r->reason, sizeof r->reason, "raw-Vulkan loop: %s", why);
        return;
    }
    vkg_tensor *a = vkg_zeros(VKG_SHAPE(CHAIN_N)), *b = vkg_ones(VKG_SHAPE(CHAIN_N));
    int reps = c->max_reps > 0 ? c->max_reps : run->settings.min_reps > 3 ? run->settings.min_reps : 3;
    /* wall and host CPU per repetition: vkgrad, the minimal raw loop, the raw loop on vkgrad's allocator */
    double *tv = calloc((size_t)(reps + 1) * 6, sizeof *tv), *tr = tv + reps + 1, *cv = tr + reps + 1, *cr = cv + reps + 1,
           *ta = cr + reps + 1, *ca = ta + reps + 1;
    float got[CHAIN_N];
    int submits = 0;
    snprintf(r->shape, sizeof r->shape, "%d dependent adds of %d floats + 1 read-back", n, CHAIN_N);
    /* rep 0 warms both up (pipelines, memory); vkgrad and raw alternate so that drift hits both */
    for (int rep = 0; rep <= reps && r->status == VKGB_OK && a && b && tv; rep++) {
        if (vkg_sync() != VKG_OK) {
            fail(r, "sync");
            break;
        }
        uint64_t s0 = vkg_stream_stats_get().submits;
        char scratch[8];
        vkg_trace_variants(scratch, sizeof scratch);
        double t0 = wall_now(), c0 = cpu_now();
        vkg_scope_begin();
        vkg_tensor *y = a;
        for (int i = 0; i < n && y; i++) y = vkg_add(y, b);
        vkg_status st = y ? vkg_tensor_read(y, got, sizeof got) : vkg_last_status();
        vkg_scope_end();
        double t1 = wall_now(), c1 = cpu_now();
        if (rep == 0) vkg_trace_variants(r->variant, sizeof r->variant);
        if (st != VKG_OK) {
            fail(r, "vkg_add chain");
            break;
        }
        if (got[0] != (float)n || got[CHAIN_N - 1] != (float)n) {
            r->status = VKGB_FAIL;
            snprintf(r->reason, sizeof r->reason, "vkgrad chain: got %g, expected %d", (double)got[0], n);
            break;
        }
        submits = (int)(vkg_stream_stats_get().submits - s0);
        tv[rep] = t1 - t0;
        cv[rep] = c1 - c0;
        for (int k = 0; k < 2 && r->status == VKGB_OK; k++) {
            t0 = wall_now();
            c0 = cpu_now();
            why = raw_chain(&w, k, n, submits > 0 ? submits : 1, got);
            t1 = wall_now();
            c1 = cpu_now();
            if (why || got[0] != (float)n || got[CHAIN_N - 1] != (float)n) {
                r->status = VKGB_FAIL;
                snprintf(r->reason, sizeof r->reason, "raw-Vulkan chain%s: %s (got %g, expected %d)",
                         k ? " (vkgrad's allocator)" : "", why ? why : "wrong result", (double)got[0], n);
            }
            (k ? ta : tr)[rep] = t1 - t0;
            (k ? ca : cr)[rep] = c1 - c0;
        }
    }
    if (r->status == VKGB_OK) {
        /* medians (sorted in place), and the best of each, which a busy machine disturbs least */
        double mv = median(tv + 1, reps), mr = median(tr + 1, reps), mcv = median(cv + 1, reps), mcr = median(cr + 1, reps);
        double mca = median(ca + 1, reps);
        double bv = tv[1], br = tr[1], bcv = cv[1], bcr = cr[1];
        r->reps = reps;
        r->inner = n;
        r->unit = "x raw Vulkan";
        r->value = mcv / mcr;
        for (int i = 0; i < reps; i++) tv[1 + i] *= 1e3 / n;
        r->wall_ms = vkgb_stats_of(tv + 1, reps);
        snprintf(r->note, sizeof r->note,
                 "host CPU median vkgrad %.1f ms, raw %.1f ms = %.2fx (best %.2fx); wall %.1f vs %.1f ms = %.2fx "
                 "(best %.2fx); raw loop on vkgrad's command allocator %.1f ms (vkgrad = %.2fx it); %d submits each",
                 mcv * 1e3, mcr * 1e3, mcv / mcr, bcv / bcr, mv * 1e3, mr * 1e3, mv / mr, bv / br, mca * 1e3, mcv / mca,
                 submits);
    }
    free(tv);
    vkg_free(a);
    vkg_free(b);
    vkg_sync();
    raw_free(&w);
}

/* The MLP's data for k steps of batch B, kept on the device as a training loop that holds its
 * dataset on the GPU does: images (k B, 784); the labels of step k are yh + k B, and its batch
 * rows idx[i] = k B + (i * 37) % B (a gather that reorders, so the step reads its rows through
 * the indices). */
static vkg_tensor *mlp_data(int64_t B, int steps, int32_t *yh, int32_t *idx) {
    int64_t n = (int64_t)steps * B;
    float *xh = malloc((size_t)n * 784 * sizeof *xh);
    if (!xh) return NULL;
    for (int64_t i = 0; i < n * 784; i++) xh[i] = (float)((i * 7 + (i / (B * 784)) * 13) % 17) / 17.0f - 0.5f;
    for (int64_t i = 0; i < n; i++) {
        yh[i] = (int32_t)((i % B + i / B) % 10);
        idx[i] = (int32_t)((i / B) * B + ((i % B) * 37) % B);
    }
    vkg_tensor *x = vkg_keep(vkg_from_data(VKG_SHAPE(n, 784), xh));
    free(xh);
    return x;
}

/* Waits, outside the timed region, until the next batch's frame (and a graph's next command
 * buffer, which cycle alike) is free: the batch three submits back is done. The two after it
 * stay queued, so lavapipe's queue thread stays awake and nothing inside the timing blocks. */
static vkg_status wait_ahead(void) {
    return vkg_ctx.next_serial > 2 ? vkg_stream_wait_serial(vkg_ctx.next_serial - 2) : VKG_OK;
}

/* Whether the two models' parameters are equal bitwise; *what names the first that differs. */
static bool params_equal(vkg_model *a, vkg_model *b, const char **what) {
    const char *const *na, *const *nb;
    vkg_tensor *const *ta, *const *tb;
    int n = vkg_module_params(vkg_model_module(a), &na, &ta);
    if (n != vkg_module_params(vkg_model_module(b), &nb, &tb)) return false;
    bool same = true;
    for (int i = 0; i < n && same; i++) {
        size_t bytes = (size_t)vkg_numel(ta[i]) * sizeof(float);
        float *pa = malloc(bytes), *pb = malloc(bytes);
        same = pa && pb && vkg_tensor_read(ta[i], pa, bytes) == VKG_OK && vkg_tensor_read(tb[i], pb, bytes) == VKG_OK &&
               memcmp(pa, pb, bytes) == 0;
        if (!same) *what = na[i];
        free(pa);
        free(pb);
    }
    return same;
}

/* The MLP's steps, eager and then, on a second model from the same start, through a graph:
 * step 0 eager (warm-up), step 1 captured with the batch's indices and labels as host inputs
 * (vkg_graph_host_input), then for each step vkg_graph_input_write of both and a replay. Each
 * step gathers its images from the dataset on the device by index. Timed, on the calling
 * thread's CPU clock: eager, the step's ops and the submit (the index and label uploads before
 * it are not counted); graph, the two input writes and the replay. Neither run drains the
 * device between steps, as a training loop that reads its loss now and then does not: before
 * each step they wait (untimed) only for the batch three submits back (wait_ahead). Waiting for
 * all work instead leaves lavapipe's queue thread asleep, and waking it made each vkQueueSubmit
 * cost 15-20 us of the caller's CPU on this VM, and a blocking wait inside the timing 8-18 us,
 * eager or replayed alike. The runs are apart, so that each pays only for its own frames; at
 * the end their parameters and last losses must be equal bitwise. 60 steps each: each run's
 * host time per step spreads by 60-90% on this VM, and the medians of 20 put the ratio at
 * 0.075-0.118 in five runs of one build (bench/README.md, run 11). The value is the ratio of
 * the medians; every interval has the clock's own cost taken off (clock_interval: 0.6 us, a
 * tenth of a replay here), and the note gives the ratio without that too, and the means (a
 * replay computes the optimizer's values for eight runs at once, one run in eight). */
static void run_mlp_replay(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    int64_t B = c->p[0] > 0 ? c->p[0] : 128;
    int steps = run->settings.min_reps > 60 ? run->settings.min_reps : 60, total = steps + 2;
    vkg_model *m[2] = { vkg_model_new(VKG_MODEL_MLP, NULL, 7), vkg_model_new(VKG_MODEL_MLP, NULL, 7) };
    vkg_optim *o[2] = { NULL, NULL };
    for (int i = 0; i < 2 && m[i]; i++) {
        o[i] = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM, .lr = 1e-3 });
        if (o[i]) vkg_optim_add_module(o[i], vkg_model_module(m[i]));
    }
    snprintf(r->shape, sizeof r->shape, "MLP 784-512-256-10, batch %lld, Adam; %d steps each", (long long)B, steps);
    int32_t *yh = malloc((size_t)(total * B) * sizeof *yh), *idx = malloc((size_t)(total * B) * sizeof *idx);
    vkg_tensor *data = yh && idx ? mlp_data(B, total, yh, idx) : NULL;
    vkg_graph *g = NULL;
    vkg_tensor *gi = NULL, *gy = NULL, *gloss = NULL, *eloss = NULL;
    double *ce = calloc((size_t)total * 3, sizeof *ce), *cg = ce + total, *cr = cg + total; /* cr: the replay alone */
    if (!m[0] || !m[1] || !o[0] || !o[1] || !data || !ce) {
        fail(r, "setup");
        goto done;
    }
    vkg_status st = VKG_OK;
    char scratch[8];
    double clk = clock_interval();
    vkg_trace_variants(scratch, sizeof scratch); /* from here: the step's kernels */
    for (int k = 0; k < total && st == VKG_OK; k++) {
        vkg_scope_begin();
        vkg_tensor *ik = vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, idx + k * B);
        vkg_tensor *y = vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, yh + k * B);
        st = wait_ahead();
        uint64_t sub = vkg_ctx.stats.submits;
        double c0 = cpu_now();
        vkg_optim_zero_grad(o[0]);
        vkg_tensor *loss = vkg_model_loss(m[0], vkg_index_select(data, 0, ik), y);
        st = loss ? vkg_backward(loss) : vkg_last_status();
        if (st == VKG_OK) st = vkg_optim_step(o[0]);
        if (st == VKG_OK) st = vkg_stream_flush();
        ce[k] = cpu_now() - c0 - clk;
        /* a timed step makes one submit: a second frame's wait would be timed (steps 0 and 1 warm
         * up: pipelines, and first-use matmul tuning, which waits for every candidate) */
        if (st == VKG_OK && k >= 2 && vkg_ctx.stats.submits != sub + 1) {
            r->status = VKGB_FAIL;
            snprintf(r->reason, sizeof r->reason, "eager step %d made %llu submits, not one", k,
                     (unsigned long long)(vkg_ctx.stats.submits - sub));
            st = VKG_ERR_INVALID;
        }
        if (k == 0) vkg_trace_variants(r->variant, sizeof r->variant);
        if (k == total - 1) eloss = vkg_keep(loss);
        vkg_scope_end();
    }
    if (st != VKG_OK) {
        if (r->status != VKGB_FAIL) fail(r, "eager step");
        goto done;
    }
    for (int k = 0; k < total && st == VKG_OK; k++) {
        vkg_scope_begin();
        if (k == 0) {
            vkg_optim_zero_grad(o[1]);
            vkg_tensor *ik = vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, idx);
            vkg_tensor *y = vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, yh);
            vkg_tensor *loss = vkg_model_loss(m[1], vkg_index_select(data, 0, ik), y);
            st = loss ? vkg_backward(loss) : vkg_last_status();
            if (st == VKG_OK) st = vkg_optim_step(o[1]);
        } else if (k == 1) {
            g = vkg_graph_new();
            gi = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, idx + B));
            gy = vkg_keep(vkg_from_data_dtype(VKG_SHAPE(B), VKG_I32, yh + B));
            st = g && gi && gy ? vkg_graph_capture_begin(g) : vkg_last_status();
            if (st == VKG_OK) {
                vkg_scope_begin();
                vkg_graph_host_input(g, gi);
                vkg_graph_host_input(g, gy);
                vkg_optim_zero_grad(o[1]);
                vkg_tensor *l1 = vkg_model_loss(m[1], vkg_index_select(data, 0, gi), gy);
                if (l1 && vkg_backward(l1) == VKG_OK && vkg_optim_step(o[1]) == VKG_OK) gloss = vkg_keep(vkg_keep(l1));
                vkg_scope_end();
                st = vkg_graph_capture_end(g);
            }
        } else if ((st = wait_ahead()) == VKG_OK) {
            double c0 = cpu_now();
            st = vkg_graph_input_write(g, gi, idx + k * B, (size_t)B * sizeof *idx);
            if (st == VKG_OK) st = vkg_graph_input_write(g, gy, yh + k * B, (size_t)B * sizeof *yh);
            double c1 = cpu_now();
            if (st == VKG_OK) st = vkg_graph_replay(g);
            double c2 = cpu_now();
            cg[k] = c2 - c0 - 2 * clk; /* two intervals' worth of readings: c1 is inside */
            cr[k] = c2 - c1 - clk;
        }
        vkg_scope_end();
    }
    if (st != VKG_OK) {
        fail(r, "graph step");
        goto done;
    }
    float le = vkg_item(eloss), lg = vkg_item(gloss);
    const char *differs = "the last loss";
    if (memcmp(&le, &lg, sizeof le) != 0 || !params_equal(m[0], m[1], &differs)) {
        r->status = VKGB_FAIL;
        snprintf(r->reason, sizeof r->reason, "after %d steps the eager and replayed runs differ in %s (must be equal "
                 "bitwise; last losses %.9g and %.9g)", total, differs, le, lg);
        goto done;
    }
    double ae = mean(ce + 2, steps), ag = mean(cg + 2, steps), ar = mean(cr + 2, steps);
    double me = median(ce + 2, steps), mg = median(cg + 2, steps), mr = median(cr + 2, steps);
    r->reps = steps;
    r->inner = 1;
    r->unit = "x eager host time";
    r->value = mg / me;
    snprintf(r->note, sizeof r->note,
             "host CPU/step, 2 batches queued, medians: eager %.1f us, replay %.1f with its 2 input writes, %.1f "
             "without (%.3fx); means %.1f, %.1f, %.1f (%.3fx); %lld dispatches, 1 submit; the clock's %.2f us per "
             "interval subtracted (not: %.3fx); parameters equal bitwise",
             me * 1e6, mg * 1e6, mr * 1e6, mr / me, ae * 1e6, ag * 1e6, ar * 1e6, ag / ae,
             (long long)vkg_graph_dispatches(g), clk * 1e6, (mg + 2 * clk) / (me + clk));
    for (int i = 0; i < steps; i++) cg[2 + i] *= 1e3;
    r->wall_ms = vkgb_stats_of(cg + 2, steps);
done:
    vkg_graph_free(g);
    vkg_free(gi);
    vkg_free(gy);
    vkg_free(gloss);
    vkg_free(eloss);
    vkg_free(data);
    for (int i = 0; i < 2; i++) {
        vkg_optim_free(o[i]);
        vkg_model_free(m[i]);
    }
    free(yh);
    free(idx);
    free(ce);
}

void vkgb_run_host(vkgb_run *run, const vkgb_case *c, vkgb_result *r) {
    if (c->p[1] == 1) run_mlp_replay(run, c, r);
    else run_chain(run, c, r);
}
