/* The command stream: eager ops, batched execution. Dispatches are recorded into the current
 * frame's command buffer and submitted on read-back, vkg_sync or when the batch budget is
 * reached (never one submit per op). A barrier is recorded only when a dispatch reads or
 * writes bytes that an earlier, not yet synchronised dispatch wrote (or writes bytes it read).
 * Uploads and read-backs go through a staging ring on discrete GPUs and straight through the
 * mapping on unified memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "runtime/graph_internal.h"

#define RING_SIZE ((VkDeviceSize)32 << 20)

static vkg_frame *cur(void) { return &vkg_ctx.frames[vkg_ctx.cur]; }

/* Graph capture (graph.c): dispatches go to the graph's frame, whose command buffer is kept and
 * replayed; the eager hazard list waits aside, since the graph's commands run later. */
static vkg_frame *capture;
static vkg_access *eager_acc;
static int eager_nacc, eager_capacc;
static double wait_seconds;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double vkg_stream_wait_seconds(void) { return wait_seconds; }
bool vkg_stream_capturing(void) { return capture != NULL; }

void vkg_stream_capture_set(vkg_frame *f) {
    if (f && !capture) {
        eager_acc = vkg_ctx.acc;
        eager_nacc = vkg_ctx.nacc;
        eager_capacc = vkg_ctx.capacc;
        vkg_ctx.acc = NULL;
        vkg_ctx.nacc = vkg_ctx.capacc = 0;
    } else if (!f && capture) {
        free(vkg_ctx.acc);
        vkg_ctx.acc = eager_acc;
        vkg_ctx.nacc = eager_nacc;
        vkg_ctx.capacc = eager_capacc;
        eager_acc = NULL;
        eager_nacc = eager_capacc = 0;
    }
    capture = f;
}

/* ---- frames ------------------------------------------------------------------------------- */
static vkg_status frame_wait(vkg_frame *f) {
    if (!f->in_flight) return VKG_OK;
    double t0 = now_s();
    VkResult r = vkWaitForFences(vkg_ctx.device, 1, &f->fence, VK_TRUE, UINT64_MAX);
    wait_seconds += now_s() - t0;
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkWaitForFences");
    vkg_ctx.stats.waits++;
    f->in_flight = false;
    if (f->serial > vkg_ctx.completed_serial) vkg_ctx.completed_serial = f->serial;
    vkg_profile_frame_done(f);
    return VKG_OK;
}

static vkg_status frame_begin(vkg_frame *f) {
    vkg_status st = frame_wait(f);
    if (st != VKG_OK) return st;
    VkResult r = vkResetFences(vkg_ctx.device, 1, &f->fence);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkResetFences");
    for (int i = 0; i < f->npools; i++) vkResetDescriptorPool(vkg_ctx.device, f->pools[i], 0);
    f->pool_in_use = 0;
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
    r = vkBeginCommandBuffer(f->cmd, &bi);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkBeginCommandBuffer");
    f->recording = true;
    f->dispatches = 0;
    f->bound = VK_NULL_HANDLE;
    f->serial = ++vkg_ctx.next_serial;
    vkg_profile_frame_begin(f);
    return VKG_OK;
}

/* The current eager frame, begun if it is not recording yet. */
static vkg_status recording_eager(vkg_frame **out) {
    vkg_frame *f = cur();
    if (!f->recording) {
        vkg_status st = frame_begin(f);
        if (st != VKG_OK) return st;
    }
    *out = f;
    return VKG_OK;
}

/* Where a dispatch goes: the graph being captured, else the current eager frame. */
static vkg_status recording(vkg_frame **out) {
    if (capture) {
        *out = capture;
        return VKG_OK;
    }
    return recording_eager(out);
}

/* Timestamps and other commands outside vkg_dispatch stay eager, even during a capture. */
vkg_status vkg_stream_cmd(VkCommandBuffer *cmd) {
    vkg_frame *f;
    vkg_status st = recording_eager(&f);
    if (st == VKG_OK) *cmd = f->cmd;
    return st;
}

static void global_barrier(VkCommandBuffer cmd, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = dst_access };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, dst_stage, 0,
                         1, &mb, 0, NULL, 0, NULL);
}

/* Submits the current frame's commands (if it is recording) and then `extra` (a graph's command
 * buffer, or none), in one vkQueueSubmit with the frame's fence. */
static vkg_status submit(VkCommandBuffer extra) {
    vkg_frame *f = cur();
    VkCommandBuffer cmds[2];
    uint32_t n = 0;
    VkResult r;
    if (f->recording) {
        vkg_explain_submit(f);
        /* make this batch's writes visible to the host once its fence signals */
        global_barrier(f->cmd, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
        f->recording = false;
        r = vkEndCommandBuffer(f->cmd);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkEndCommandBuffer");
        cmds[n++] = f->cmd;
    } else {
        /* a graph alone: the frame's fence and serial without its command buffer */
        vkg_status st = frame_wait(f);
        if (st != VKG_OK) return st;
        r = vkResetFences(vkg_ctx.device, 1, &f->fence);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkResetFences");
        f->serial = ++vkg_ctx.next_serial;
        f->dispatches = 0;
        vkg_explain_why(NULL); /* the explain and profile hooks write into an open command buffer: none here */
    }
    if (extra) cmds[n++] = extra;
    VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = n, .pCommandBuffers = cmds };
    r = vkQueueSubmit(vkg_ctx.queue, 1, &si, f->fence);
    if (r != VK_SUCCESS) {
        /* the batch is lost: every object stays valid, and what it wrote is marked lost, so a
         * read or an op that uses it fails instead of seeing undefined values */
        if (n && cmds[0] == f->cmd) vkResetCommandBuffer(f->cmd, 0);
        vkg_status why = vkg_vk_fail(r, "vkQueueSubmit");
        if (vkg_ctx.nfailed == vkg_ctx.capfailed) {
            int cap = vkg_ctx.capfailed ? 2 * vkg_ctx.capfailed : 8;
            struct vkg_failed_batch *nf = realloc(vkg_ctx.failed, (size_t)cap * sizeof *nf);
            if (nf) {
                vkg_ctx.failed = nf;
                vkg_ctx.capfailed = cap;
            }
        }
        if (vkg_ctx.nfailed < vkg_ctx.capfailed) vkg_ctx.failed[vkg_ctx.nfailed++] = (struct vkg_failed_batch){ f->serial, why };
        return why;
    }
    vkg_ctx.stats.submits++;
    f->in_flight = true;
    vkg_ctx.cur = (vkg_ctx.cur + 1) % VKG_FRAMES;
    return VKG_OK;
}

vkg_status vkg_stream_flush(void) {
    if (!vkg_ctx.device || !cur()->recording) return VKG_OK;
    return submit(VK_NULL_HANDLE);
}

vkg_status vkg_stream_submit_graph(VkCommandBuffer primary, uint32_t dispatches, uint64_t *serial) {
    vkg_frame *f = cur();
    uint64_t s = f->recording ? f->serial : vkg_ctx.next_serial + 1;
    vkg_status st = submit(primary);
    if (st != VKG_OK) {
        *serial = f->serial; /* a failed submit: what the graph wrote is lost with this batch */
        return st;
    }
    f->dispatches += dispatches;
    vkg_ctx.stats.dispatches += dispatches;
    vkg_ctx.nacc = 0; /* the graph ends with a full barrier: nothing before it is a hazard now */
    *serial = s;
    return VKG_OK;
}

vkg_status vkg_stream_wait_pending(uint64_t serial) {
    if (cur()->recording && cur()->serial <= serial) {
        vkg_status st = vkg_stream_flush();
        if (st != VKG_OK) return st;
    }
    for (int i = 0; i < VKG_FRAMES; i++) {
        vkg_frame *f = &vkg_ctx.frames[i];
        if (f->in_flight && f->serial <= serial) {
            vkg_status st = frame_wait(f);
            if (st != VKG_OK) return st;
        }
    }
    return VKG_OK;
}

vkg_status vkg_stream_sync_all(void) {
    vkg_status st = vkg_stream_flush();
    for (int i = 0; i < VKG_FRAMES; i++) {
        vkg_status s2 = frame_wait(&vkg_ctx.frames[i]);
        if (st == VKG_OK) st = s2;
    }
    /* everything has completed: no hazard is left (but a capture's commands have not run) */
    if (st == VKG_OK && !capture) vkg_ctx.nacc = 0;
    return st;
}

vkg_status vkg_sync(void) {
    if (!vkg_ready("vkg_sync")) return vkg_last_status();
    if (capture) {
        vkg_graph_capture_failed();
        return vkg_fail(VKG_ERR_INVALID, "vkg_sync: called inside a graph capture, whose work runs only at "
                                         "vkg_graph_capture_end (run one eager step before capturing, so that "
                                         "autotuning and other waits happen outside it)");
    }
    return vkg_stream_sync_all();
}

/* ---- hazards -------------------------------------------------------------------------------- */
static bool overlaps(const vkg_access *a, const vkg_block *b, VkDeviceSize off, VkDeviceSize size) {
    return a->block == b && a->off < off + size && off < a->off + a->size;
}

static bool acc_push(const vkg_block *b, VkDeviceSize off, VkDeviceSize size, bool write) {
    for (int i = 0; i < vkg_ctx.nacc; i++) { /* same range again: keep one entry */
        vkg_access *a = &vkg_ctx.acc[i];
        if (a->block == b && a->off == off && a->size == size) {
            a->write |= write;
            return true;
        }
    }
    if (vkg_ctx.nacc == vkg_ctx.capacc) {
        int cap = vkg_ctx.capacc ? 2 * vkg_ctx.capacc : 64;
        vkg_access *na = realloc(vkg_ctx.acc, (size_t)cap * sizeof *na);
        if (!na) return false;
        vkg_ctx.acc = na;
        vkg_ctx.capacc = cap;
    }
    vkg_ctx.acc[vkg_ctx.nacc++] = (vkg_access){ b, off, size, write };
    return true;
}

/* Records a barrier before an access list if any access conflicts with one since the last. */
static void order_accesses(VkCommandBuffer cmd, const vkg_block **blocks, const VkDeviceSize *offs,
                           const VkDeviceSize *sizes, const bool *writes, int n) {
    bool need = false;
    for (int k = 0; k < n && !need; k++)
        for (int i = 0; i < vkg_ctx.nacc && !need; i++) {
            const vkg_access *a = &vkg_ctx.acc[i];
            if ((a->write || writes[k]) && overlaps(a, blocks[k], offs[k], sizes[k])) {
                need = true;
                vkg_explain_barrier(k, a->write, writes[k]);
            }
        }
    if (need) {
        global_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                           VK_ACCESS_TRANSFER_WRITE_BIT);
        vkg_ctx.stats.barriers++;
        vkg_ctx.nacc = 0;
    }
    for (int k = 0; k < n; k++)
        if (!acc_push(blocks[k], offs[k], sizes[k], writes[k])) {
            /* cannot track more: a full barrier keeps it correct */
            global_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                           VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
            vkg_ctx.stats.barriers++;
            vkg_ctx.nacc = 0;
        }
}

/* ---- descriptors ------------------------------------------------------------------------- */
static vkg_status pool_set(vkg_frame *f, VkDescriptorSetLayout layout, VkDescriptorSet *out) {
    for (;;) {
        if (f->pool_in_use < f->npools) {
            VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                               .descriptorPool = f->pools[f->pool_in_use],
                                               .descriptorSetCount = 1, .pSetLayouts = &layout };
            VkResult r = vkAllocateDescriptorSets(vkg_ctx.device, &ai, out);
            if (r == VK_SUCCESS) return VKG_OK;
            if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
                return vkg_vk_fail(r, "vkAllocateDescriptorSets");
            f->pool_in_use++;
            continue;
        }
        if (f->npools == f->cappools) {
            int cap = f->cappools ? 2 * f->cappools : 4;
            VkDescriptorPool *np = realloc(f->pools, (size_t)cap * sizeof *np);
            if (!np) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "descriptor pools: out of host memory");
            f->pools = np;
            f->cappools = cap;
        }
        VkDescriptorPoolSize ps[2] = { { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1024 * 4 },
                                       { VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, 1024 * 4 } };
        VkDescriptorPoolCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 1024,
                                          .poolSizeCount = vkg_ctx.info.texel_buffers ? 2 : 1, .pPoolSizes = ps };
        VkResult r = vkCreateDescriptorPool(vkg_ctx.device, &pi, NULL, &f->pools[f->npools]);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreateDescriptorPool");
        f->npools++;
    }
}

/* ---- lost batches -------------------------------------------------------------------------- */
/* VKG_OK, or the status of the failed submit whose batch last wrote s. */
static vkg_status lost(const vkg_storage *s) {
    vkg_graph_stamp();
    for (int i = 0; i < vkg_ctx.nfailed; i++)
        if (s->written_serial == vkg_ctx.failed[i].serial) return vkg_ctx.failed[i].why;
    return VKG_OK;
}

/* ---- dispatch ------------------------------------------------------------------------------- */
static void check_finite(const vkg_dispatch_desc *d) {
    const vkg_tensor *y = d->bind[0];
    if (!y || y->dtype != VKG_F32) return;
    int64_t n = vkg_numel(y);
    float *buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
    if (!buf) return;
    if (vkg_tensor_read(y, buf, (size_t)n * sizeof *buf) == VKG_OK) {
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += !isfinite(buf[i]);
        if (bad) vkg_log_msg(VKG_LOG_WARN, "VKG_SYNC: %s produced %lld non-finite values of %lld", d->name ? d->name : d->shader,
                         (long long)bad, (long long)n);
    }
    free(buf);
}

bool vkg_texel_ok(const vkg_storage *s) {
    return vkg_ctx.info.texel_buffers && s && s->block->size / 16 <= vkg_ctx.max_texels;
}

bool vkg_texel_r32_ok(const vkg_storage *s) {
    return vkg_ctx.info.texel_buffers && s && s->block->size / 4 <= vkg_ctx.max_texels;
}

/* The block's RGBA32F (or R32F) texel view, made on first use (lives as long as the block).
 * R32F uniform texel buffers are required of every Vulkan device, like RGBA32F. */
static vkg_status texel_view(vkg_block *b, bool r32) {
    VkBufferView *v = r32 ? &b->texel_view_r32 : &b->texel_view;
    if (*v) return VKG_OK;
    VkBufferViewCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO, .buffer = b->buffer,
                                  .format = r32 ? VK_FORMAT_R32_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT, .offset = 0,
                                  .range = r32 ? b->size / 4 * 4 : b->size / 16 * 16 };
    VkResult r = vkCreateBufferView(vkg_ctx.device, &ci, NULL, v);
    return r == VK_SUCCESS ? VKG_OK : vkg_vk_fail(r, "vkCreateBufferView");
}

vkg_status vkg_dispatch(const vkg_dispatch_desc *d) {
    const char *name = d->name ? d->name : d->shader;
    if (!vkg_ready(name)) return vkg_last_status();
    uint32_t ndesc = 0;
    while (ndesc < VKG_MAX_DESCRIPTORS && d->bind[ndesc]) ndesc++;
    /* the bindings: one descriptor each, or array[b] of them */
    uint32_t nbind = 0, first[VKG_MAX_BINDINGS + 1];
    uint64_t arrays[VKG_MAX_BINDINGS / 8];
    _Static_assert(sizeof d->array == sizeof arrays && VKG_MAX_BINDINGS == 16, "array[] is read as two words");
    memcpy(arrays, d->array, sizeof arrays);
    if (!(arrays[0] | arrays[1]) && ndesc <= VKG_MAX_BINDINGS) { /* the common case, a descriptor per binding */
        for (; nbind < ndesc; nbind++) first[nbind] = nbind;
    } else {
        for (uint32_t k = 0; k < ndesc; nbind++) {
            if (nbind == VKG_MAX_BINDINGS)
                return vkg_fail(VKG_ERR_INVALID, "%s: more than %d bindings", name, VKG_MAX_BINDINGS);
            first[nbind] = k;
            k += d->array[nbind] ? d->array[nbind] : 1;
            if (k > ndesc)
                return vkg_fail(VKG_ERR_INVALID, "%s: binding %u's array runs past the %u tensors", name, nbind, ndesc);
        }
    }
    first[nbind] = ndesc;
    for (uint32_t i = 0; i < ndesc; i++) {
        if (!d->bind[i]->storage)
            return vkg_fail(VKG_ERR_INVALID, "%s: input %u is a tensor that was already freed (its scope ended)", name, i);
        vkg_status why = (int)i >= d->nout && vkg_ctx.nfailed ? lost(d->bind[i]->storage) : VKG_OK;
        if (why != VKG_OK)
            return vkg_fail(why, "%s: input %u holds values lost when the submit that computed them failed (%s); "
                                 "compute it again", name, i, vkg_status_name(why));
    }
    uint32_t texel = d->texel & ((1u << nbind) - 1u);
    for (uint32_t b = 0; texel && b < nbind; b++) {
        if (!(texel >> b & 1)) continue;
        const vkg_storage *s = d->bind[first[b]]->storage;
        bool r32 = d->texel_r32 >> b & 1;
        if (d->array[b] > 1 || (int)first[b] < d->nout || !(r32 ? vkg_texel_r32_ok(s) : vkg_texel_ok(s)))
            return vkg_fail(VKG_ERR_INVALID, "%s: binding %u cannot be a texel buffer", name, b);
        vkg_status st = texel_view(s->block, r32);
        if (st != VKG_OK) return st;
    }
    uint32_t ls = d->local_size ? d->local_size : 128;
    vkg_pipeline *p =
        vkg_pipeline_get(d->shader, d->code, d->code_size, d->spec, d->nspec, ls, nbind, d->array, texel);
    if (!p) return vkg_last_status();
    if (!vkg_cmdmem_ready(vkg_ctx.cmd_mem))
        return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory to record commands (%zu bytes held for them)",
                        name, vkg_cmdmem_held(vkg_ctx.cmd_mem));
    vkg_frame *f;
    vkg_status st = recording(&f);
    if (st != VKG_OK) return st;
    bool captured = f == capture;
    for (uint32_t i = 0; captured && i < ndesc; i++) {
        st = vkg_graph_note(d->bind[i]->storage, (int)i < d->nout);
        if (st != VKG_OK) return st;
    }

    const vkg_block *blocks[VKG_MAX_DESCRIPTORS];
    VkDeviceSize offs[VKG_MAX_DESCRIPTORS], sizes[VKG_MAX_DESCRIPTORS];
    bool writes[VKG_MAX_DESCRIPTORS];
    VkDescriptorBufferInfo infos[VKG_MAX_DESCRIPTORS];
    VkWriteDescriptorSet w[VKG_MAX_BINDINGS];
    for (uint32_t i = 0; i < ndesc; i++) {
        vkg_storage *s = d->bind[i]->storage;
        s->last_serial = f->serial;
        if ((int)i < d->nout) s->written_serial = f->serial;
        blocks[i] = s->block;
        offs[i] = s->off;
        sizes[i] = s->size;
        writes[i] = (int)i < d->nout;
        infos[i] = (VkDescriptorBufferInfo){ s->block->buffer, s->off, s->size };
    }
    for (uint32_t b = 0; b < nbind; b++) {
        w[b] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstBinding = b,
                                       .descriptorCount = first[b + 1] - first[b],
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &infos[first[b]] };
        if (texel >> b & 1) {
            w[b].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            w[b].pBufferInfo = NULL;
            w[b].pTexelBufferView = d->texel_r32 >> b & 1 ? &blocks[first[b]]->texel_view_r32 : &blocks[first[b]]->texel_view;
        }
    }
    vkg_explain_dispatch(d, ls, ndesc);
    order_accesses(f->cmd, blocks, offs, sizes, writes, (int)ndesc);
    if (f->bound != p->pipeline) {
        vkCmdBindPipeline(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
        f->bound = p->pipeline;
    }
    if (vkg_ctx.info.push_descriptor) {
        vkCmdPushDescriptorSetKHR(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, nbind, w);
    } else {
        VkDescriptorSet set;
        st = pool_set(f, p->lay->set, &set);
        if (st != VKG_OK) return st;
        for (uint32_t i = 0; i < nbind; i++) w[i].dstSet = set;
        vkUpdateDescriptorSets(vkg_ctx.device, nbind, w, 0, NULL);
        vkCmdBindDescriptorSets(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    }
    /* the whole range, zeros past the op's own push block */
    uint8_t push[VKG_PUSH_SIZE];
    uint32_t psize = d->push ? (d->push_size < VKG_PUSH_SIZE ? d->push_size : VKG_PUSH_SIZE) : 0;
    if (psize) memcpy(push, d->push, psize);
    memset(push + psize, 0, VKG_PUSH_SIZE - psize);
    vkCmdPushConstants(f->cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, VKG_PUSH_SIZE, push);
    if (!captured) vkg_profile_dispatch_begin(f, d); /* no timestamps inside a graph */
    vkCmdDispatch(f->cmd, d->groups[0] ? d->groups[0] : 1, d->groups[1] ? d->groups[1] : 1,
                  d->groups[2] ? d->groups[2] : 1);
    if (!captured) vkg_profile_dispatch_end(f);
    vkg_ctx.stats.dispatches++;
    f->dispatches++;
    if (captured) return VKG_OK; /* nothing runs until the capture ends: no wait, no submit */

    if (vkg_ctx.sync_mode) {
        vkg_explain_why("VKG_SYNC waits after every op");
        st = vkg_sync();
        if (st == VKG_OK) check_finite(d);
        return st;
    }
    if (f->dispatches >= vkg_ctx.batch_limit) {
        vkg_explain_why("batch limit reached (VKG_BATCH)");
        return vkg_stream_flush();
    }
    return VKG_OK;
}

/* ---- staging ring ------------------------------------------------------------------------ */
/* Reserves bytes of the ring for the current frame; waits for older frames when it wraps. */
static vkg_status ring_take(VkDeviceSize bytes, VkDeviceSize *off) {
    bytes = (bytes + 15) & ~(VkDeviceSize)15;
    if (vkg_ctx.ring_head + bytes > vkg_ctx.ring_size) {
        /* wrap: every byte of the ring may be in use by a frame in flight, so wait for all */
        vkg_explain_why("staging ring full");
        vkg_status st = vkg_stream_sync_all();
        if (st != VKG_OK) return st;
        vkg_ctx.ring_head = 0;
    }
    *off = vkg_ctx.ring_head;
    vkg_ctx.ring_head += bytes;
    return VKG_OK;
}

static vkg_status ring_init(void) {
    if (vkg_ctx.map_storage) return VKG_OK;
    vkg_ctx.ring_size = RING_SIZE;
    VkBufferCreateInfo bi = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = RING_SIZE,
                              .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT };
    VkResult r = vkCreateBuffer(vkg_ctx.device, &bi, NULL, &vkg_ctx.ring_buffer);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreateBuffer (staging ring)");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vkg_ctx.device, vkg_ctx.ring_buffer, &req);
    VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = vkg_ctx.staging_type_index };
    r = vkAllocateMemory(vkg_ctx.device, &ai, NULL, &vkg_ctx.ring_memory);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkAllocateMemory (staging ring)");
    r = vkBindBufferMemory(vkg_ctx.device, vkg_ctx.ring_buffer, vkg_ctx.ring_memory, 0);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkBindBufferMemory (staging ring)");
    void *p;
    r = vkMapMemory(vkg_ctx.device, vkg_ctx.ring_memory, 0, VK_WHOLE_SIZE, 0, &p);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkMapMemory (staging ring)");
    vkg_ctx.ring_mapped = p;
    return VKG_OK;
}

/* Moves bytes between host memory and a storage range, in stream order. Unified memory: a
 * memcpy through the mapping, after waiting for unfinished work on those bytes. Otherwise
 * chunks through the staging ring, copied by the queue (a read-back waits per chunk). */
static vkg_status transfer(vkg_storage *s, VkDeviceSize off, uint8_t *host, size_t bytes, bool upload) {
    if (bytes == 0) return VKG_OK; /* host may be NULL then */
    vkg_graph_stamp(); /* s's serials, below */
    vkg_status why = upload ? VKG_OK : lost(s);
    if (why != VKG_OK)
        return vkg_fail(why, "read back: the tensor's values were lost when the submit that computed them failed "
                             "(%s); compute it again", vkg_status_name(why));
    if (capture) {
        /* the captured step has not run: its results do not exist yet, and a host write to
         * bytes it uses would land before the step instead of where the call was made */
        if (!upload || vkg_graph_holds(s)) {
            vkg_graph_capture_failed();
            return vkg_fail(VKG_ERR_INVALID,
                            upload ? "host write inside a graph capture into a tensor the captured step uses: write "
                                     "it before vkg_graph_capture_begin or after vkg_graph_capture_end "
                                     "(vkg_graph_input_write)"
                                   : "read back inside a graph capture: the captured step runs at "
                                     "vkg_graph_capture_end; read its tensors after that");
        }
    }
    if (upload) {
        vkg_ctx.stats.bytes_uploaded += bytes;
        s->capture_born = 0; /* host values: a capture must not give its bytes to another tensor */
    } else {
        vkg_ctx.stats.bytes_read_back += bytes;
    }
    if (vkg_ctx.map_storage) {
        if (s->last_serial > vkg_ctx.completed_serial) {
            vkg_explain_why(upload ? "host write to bytes the device may still use" : "read-back needs the results");
            vkg_status st = vkg_stream_sync_all();
            if (st != VKG_OK) return st;
        }
        uint8_t *dev = s->block->mapped + s->off + off;
        memcpy(upload ? dev : host, upload ? host : dev, bytes);
        if (upload) s->written_serial = 0;
        return VKG_OK;
    }
    VkDeviceSize chunk_max = vkg_ctx.ring_size / 2;
    while (bytes > 0) {
        VkDeviceSize n = bytes < chunk_max ? bytes : chunk_max;
        VkDeviceSize roff;
        vkg_status st = ring_take(n, &roff);
        vkg_frame *f;
        if (st == VKG_OK) st = recording_eager(&f);
        if (st != VKG_OK) return st;
        if (upload) memcpy(vkg_ctx.ring_mapped + roff, host, n);
        const vkg_block *b = s->block;
        VkDeviceSize doff = s->off + off;
        /* during a capture the hazard list is the graph's: order this eager copy by barriers */
        vkg_explain_copy(upload ? "upload through the staging ring" : "read-back through the staging ring", n);
        if (capture) global_barrier(f->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
        else order_accesses(f->cmd, &b, &doff, &n, &upload, 1);
        VkBufferCopy c = { upload ? roff : doff, upload ? doff : roff, n };
        vkCmdCopyBuffer(f->cmd, upload ? vkg_ctx.ring_buffer : s->block->buffer,
                        upload ? s->block->buffer : vkg_ctx.ring_buffer, 1, &c);
        if (capture)
            global_barrier(f->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                           VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                               VK_ACCESS_TRANSFER_WRITE_BIT);
        s->last_serial = f->serial;
        if (upload) s->written_serial = f->serial;
        if (!upload) {
            vkg_explain_why("read-back needs the results");
            st = vkg_stream_sync_all();
            if (st != VKG_OK) return st;
            memcpy(host, vkg_ctx.ring_mapped + roff, n);
        }
        host += n;
        off += n;
        bytes -= n;
    }
    return VKG_OK;
}

vkg_status vkg_stream_upload(vkg_storage *s, VkDeviceSize off, const void *src, size_t bytes) {
    return transfer(s, off, (uint8_t *)(uintptr_t)src, bytes, true);
}

vkg_status vkg_stream_download(vkg_storage *s, VkDeviceSize off, void *dst, size_t bytes) {
    return transfer(s, off, dst, bytes, false);
}

/* ---- graphs: replay and in-place refresh (graph.c) ----------------------------------------- */
void vkg_stream_full_barrier(VkCommandBuffer cmd, bool host) {
    global_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                            (host ? VK_PIPELINE_STAGE_HOST_BIT : 0),
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT | (host ? VK_ACCESS_HOST_READ_BIT : 0));
}

static void full_barrier(VkCommandBuffer cmd) {
    vkg_stream_full_barrier(cmd, false);
    vkg_ctx.stats.barriers++;
}

vkg_status vkg_stream_copy(vkg_storage *dst, VkDeviceSize dst_off, vkg_storage *src, VkDeviceSize src_off,
                           VkDeviceSize bytes) {
    if (bytes == 0) return VKG_OK;
    vkg_status why = lost(src);
    if (why != VKG_OK)
        return vkg_fail(why, "copy: the source's values were lost when the submit that computed them failed (%s)",
                        vkg_status_name(why));
    vkg_frame *f;
    vkg_status st = recording_eager(&f);
    if (st != VKG_OK) return st;
    const vkg_block *blocks[2] = { dst->block, src->block };
    VkDeviceSize offs[2] = { dst->off + dst_off, src->off + src_off }, sizes[2] = { bytes, bytes };
    bool writes[2] = { true, false };
    vkg_explain_copy("device to device", bytes);
    if (capture) full_barrier(f->cmd); /* the hazard list is the graph's */
    else order_accesses(f->cmd, blocks, offs, sizes, writes, 2);
    VkBufferCopy c = { offs[1], offs[0], bytes };
    vkCmdCopyBuffer(f->cmd, src->block->buffer, dst->block->buffer, 1, &c);
    if (capture) full_barrier(f->cmd);
    src->last_serial = dst->last_serial = f->serial;
    dst->written_serial = f->serial;
    return VKG_OK;
}

vkg_status vkg_stream_write_nowait(vkg_storage *s, VkDeviceSize off, const void *src, size_t bytes) {
    vkg_graph_stamp();
    if (!vkg_ctx.map_storage || s->last_serial <= vkg_ctx.completed_serial)
        return vkg_stream_upload(s, off, src, bytes); /* staged by the queue, or nothing to wait for */
    vkg_storage *tmp = vkg_storage_new(bytes, true, "write");
    if (!tmp) return vkg_last_status();
    vkg_status st = vkg_stream_upload(tmp, 0, src, bytes);
    if (st == VKG_OK) st = vkg_stream_copy(s, off, tmp, 0, bytes);
    vkg_storage_release(tmp); /* its range is reused in stream order */
    return st;
}

/* ---- init / shutdown ------------------------------------------------------------------------ */
vkg_status vkg_stream_init(void) {
    vkg_status st = vkg_allocator_init();
    if (st != VKG_OK) return st;
    VkCommandPoolCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = vkg_ctx.queue_family };
    vkg_ctx.cmd_mem = vkg_cmdmem_new();
    if (!vkg_ctx.cmd_mem) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_init: no host memory for the command pool's allocator");
    VkResult r = vkCreateCommandPool(vkg_ctx.device, &pi, vkg_cmdmem_callbacks(vkg_ctx.cmd_mem), &vkg_ctx.cmd_pool);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreateCommandPool");
    for (int i = 0; i < VKG_FRAMES; i++) {
        vkg_frame *f = &vkg_ctx.frames[i];
        VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                           .commandPool = vkg_ctx.cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                           .commandBufferCount = 1 };
        r = vkAllocateCommandBuffers(vkg_ctx.device, &ai, &f->cmd);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkAllocateCommandBuffers");
        VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
        r = vkCreateFence(vkg_ctx.device, &fi, NULL, &f->fence);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreateFence");
    }
    return ring_init();
}

void vkg_stream_shutdown(void) {
    if (!vkg_ctx.device) return;
    vkg_graphs_shutdown(); /* before the command pool and the memory blocks go */
    vkg_stream_capture_set(NULL);
    wait_seconds = 0;
    for (int i = 0; i < VKG_FRAMES; i++) {
        vkg_frame *f = &vkg_ctx.frames[i];
        if (f->fence) vkDestroyFence(vkg_ctx.device, f->fence, NULL);
        for (int k = 0; k < f->npools; k++) vkDestroyDescriptorPool(vkg_ctx.device, f->pools[k], NULL);
        free(f->pools);
    }
    if (vkg_ctx.cmd_pool) vkDestroyCommandPool(vkg_ctx.device, vkg_ctx.cmd_pool, vkg_cmdmem_callbacks(vkg_ctx.cmd_mem));
    vkg_cmdmem_free(vkg_ctx.cmd_mem);
    if (vkg_ctx.ring_mapped) vkUnmapMemory(vkg_ctx.device, vkg_ctx.ring_memory);
    if (vkg_ctx.ring_buffer) vkDestroyBuffer(vkg_ctx.device, vkg_ctx.ring_buffer, NULL);
    if (vkg_ctx.ring_memory) vkFreeMemory(vkg_ctx.device, vkg_ctx.ring_memory, NULL);
    free(vkg_ctx.acc);
    free(vkg_ctx.failed);
}

vkg_stream_stats vkg_stream_stats_get(void) { return vkg_ctx.stats; }

void vkg_stats_print(void *file) {
    FILE *out = file ? file : stderr;
    vkg_stream_stats s = vkg_ctx.stats;
    vkg_memory_stats m = vkg_memory_stats_get();
    fprintf(out,
            "vkgrad stats: submits %llu | dispatches %llu | barriers %llu | waits %llu | uploaded %llu bytes | "
            "read back %llu bytes | pipelines created %llu, from cache %llu (disk cache %llu bytes) | peak memory %llu bytes | "
            "Vulkan allocations %u | command memory %zu bytes\n",
            (unsigned long long)s.submits, (unsigned long long)s.dispatches, (unsigned long long)s.barriers,
            (unsigned long long)s.waits, (unsigned long long)s.bytes_uploaded, (unsigned long long)s.bytes_read_back,
            (unsigned long long)s.pipelines_created, (unsigned long long)s.pipelines_from_cache,
            (unsigned long long)s.pipeline_cache_loaded,
            (unsigned long long)m.peak, m.allocations, vkg_cmdmem_held(vkg_ctx.cmd_mem));
}
