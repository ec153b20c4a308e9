/* The caching sub-allocator: few large VkDeviceMemory blocks, each with one VkBuffer, carved
 * into aligned ranges for tensors. A freed range remembers the batch that last used it: later
 * dispatches may reuse it at once (the stream's hazard tracking orders them), while host writes
 * take only ranges whose batch has completed. Out of memory: drop the cache, retry once, fail. */
#include <stdlib.h>
#include <string.h>

#include "runtime/graph_internal.h"

#define DEFAULT_BLOCK ((VkDeviceSize)64 << 20)

static uint32_t find_type(VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
    const VkPhysicalDeviceMemoryProperties *mp = &vkg_ctx.memprops;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mp->memoryTypes[i].propertyFlags;
        if ((f & want) == want && !(f & avoid)) return i;
    }
    return UINT32_MAX;
}

vkg_status vkg_allocator_init(void) {
    const VkMemoryPropertyFlags dl = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    vkg_ctx.map_storage = vkg_ctx.info.unified_memory && !vkg_ctx.desc.force_staging;
    if (vkg_ctx.map_storage) {
        vkg_ctx.device_type_index = find_type(dl | hv, 0);
    } else {
        vkg_ctx.device_type_index = find_type(dl, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        if (vkg_ctx.device_type_index == UINT32_MAX) vkg_ctx.device_type_index = find_type(dl, 0);
        /* read-backs are faster from cached memory; uploads work from either */
        vkg_ctx.staging_type_index = find_type(hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
        if (vkg_ctx.staging_type_index == UINT32_MAX) vkg_ctx.staging_type_index = find_type(hv, 0);
        if (vkg_ctx.staging_type_index == UINT32_MAX)
            return vkg_fail(VKG_ERR_NO_DEVICE, "%s has no host-visible coherent memory type", vkg_ctx.info.name);
    }
    if (vkg_ctx.device_type_index == UINT32_MAX)
        return vkg_fail(VKG_ERR_NO_DEVICE, "%s has no device-local memory type", vkg_ctx.info.name);
    uint32_t heap = vkg_ctx.memprops.memoryTypes[vkg_ctx.device_type_index].heapIndex;
    vkg_ctx.heap_budget = vkg_ctx.memprops.memoryHeaps[heap].size;
    VkDeviceSize bs = DEFAULT_BLOCK;
    if (bs > vkg_ctx.heap_budget / 8) bs = vkg_ctx.heap_budget / 8;
    if (vkg_ctx.info.max_allocation_size && bs > vkg_ctx.info.max_allocation_size) bs = vkg_ctx.info.max_allocation_size;
    vkg_ctx.block_size = bs;
    return VKG_OK;
}

static void block_destroy(vkg_block *b) {
    if (b->mapped) vkUnmapMemory(vkg_ctx.device, b->memory);
    if (b->texel_view) vkDestroyBufferView(vkg_ctx.device, b->texel_view, NULL);
    if (b->texel_view_r32) vkDestroyBufferView(vkg_ctx.device, b->texel_view_r32, NULL);
    if (b->buffer) vkDestroyBuffer(vkg_ctx.device, b->buffer, NULL);
    if (b->memory) {
        vkFreeMemory(vkg_ctx.device, b->memory, NULL);
        vkg_ctx.mem.device_bytes -= b->size;
        vkg_ctx.mem.allocations--;
    }
    free(b->free);
    free(b);
}

/* Frees blocks that hold no live tensor; returns the bytes given back. */
static VkDeviceSize empty_cache(void) {
    bool any = false;
    for (int i = 0; i < vkg_ctx.nblocks; i++) any |= vkg_ctx.blocks[i]->live == 0;
    /* a cached block may still be read by unfinished work: wait before freeing any, and free
     * nothing if the wait fails (the work may still be running) */
    if (!any || vkg_sync() != VKG_OK) return 0;
    VkDeviceSize freed = 0;
    int k = 0;
    for (int i = 0; i < vkg_ctx.nblocks; i++) {
        vkg_block *b = vkg_ctx.blocks[i];
        if (b->live == 0) {
            freed += b->size;
            block_destroy(b);
        } else {
            vkg_ctx.blocks[k++] = b;
        }
    }
    vkg_ctx.nblocks = k;
    return freed;
}

void vkg_memory_empty_cache(void) {
    if (vkg_ctx.initialized) empty_cache();
}

static VkResult block_try(VkDeviceSize size, vkg_block *b) {
    VkBufferCreateInfo bi = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT |
                                       (vkg_ctx.info.texel_buffers ? VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT : 0),
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE };
    VkResult r = vkCreateBuffer(vkg_ctx.device, &bi, NULL, &b->buffer);
    if (r != VK_SUCCESS) return r;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vkg_ctx.device, b->buffer, &req);
    VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = vkg_ctx.device_type_index };
    r = vkAllocateMemory(vkg_ctx.device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS) return r;
    vkg_ctx.mem.device_bytes += size;
    vkg_ctx.mem.allocations++;
    r = vkBindBufferMemory(vkg_ctx.device, b->buffer, b->memory, 0);
    if (r != VK_SUCCESS) return r;
    if (vkg_ctx.map_storage) {
        void *p = NULL;
        r = vkMapMemory(vkg_ctx.device, b->memory, 0, VK_WHOLE_SIZE, 0, &p);
        if (r != VK_SUCCESS) return r;
        b->mapped = p;
    }
    return VK_SUCCESS;
}

static vkg_block *block_new(VkDeviceSize size, VkResult *res) {
    vkg_block *b = calloc(1, sizeof *b);
    if (!b) {
        *res = VK_ERROR_OUT_OF_HOST_MEMORY;
        return NULL;
    }
    b->size = size;
    *res = block_try(size, b);
    if (*res != VK_SUCCESS) {
        block_destroy(b);
        return NULL;
    }
    b->free = malloc(8 * sizeof *b->free);
    if (!b->free) {
        *res = VK_ERROR_OUT_OF_HOST_MEMORY;
        block_destroy(b);
        return NULL;
    }
    b->capfree = 8;
    b->nfree = 1;
    b->free[0] = (vkg_range){ 0, size, 0 };
    return b;
}

static bool blocks_push(vkg_block *b) {
    if (vkg_ctx.nblocks == vkg_ctx.capblocks) {
        int cap = vkg_ctx.capblocks ? 2 * vkg_ctx.capblocks : 16;
        vkg_block **nb = realloc(vkg_ctx.blocks, (size_t)cap * sizeof *nb);
        if (!nb) return false;
        vkg_ctx.blocks = nb;
        vkg_ctx.capblocks = cap;
    }
    vkg_ctx.blocks[vkg_ctx.nblocks++] = b;
    return true;
}

/* Best fit over every block; host writes only take ranges whose last batch has completed. */
static bool carve(VkDeviceSize size, bool host_write, vkg_block **ob, VkDeviceSize *ooff, uint64_t *oserial) {
    vkg_block *best = NULL;
    int bi = -1;
    for (int i = 0; i < vkg_ctx.nblocks; i++) {
        vkg_block *b = vkg_ctx.blocks[i];
        for (int j = 0; j < b->nfree; j++) {
            vkg_range *r = &b->free[j];
            if (r->size < size) continue;
            if (host_write && r->serial > vkg_ctx.completed_serial) continue;
            if (!best || r->size < best->free[bi].size) {
                best = b;
                bi = j;
            }
        }
    }
    if (!best) return false;
    vkg_range *r = &best->free[bi];
    *ob = best;
    *ooff = r->off;
    *oserial = r->serial;
    r->off += size;
    r->size -= size;
    if (r->size == 0) {
        memmove(r, r + 1, (size_t)(best->nfree - bi - 1) * sizeof *r);
        best->nfree--;
    }
    best->live++;
    best->used += size;
    return true;
}

static bool range_insert(vkg_block *b, VkDeviceSize off, VkDeviceSize size, uint64_t serial) {
    int i = 0;
    while (i < b->nfree && b->free[i].off < off) i++;
    bool left = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    bool right = i < b->nfree && off + size == b->free[i].off;
    if (left && right) {
        vkg_range *l = &b->free[i - 1];
        l->size += size + b->free[i].size;
        if (serial > l->serial) l->serial = serial;
        if (b->free[i].serial > l->serial) l->serial = b->free[i].serial;
        memmove(&b->free[i], &b->free[i + 1], (size_t)(b->nfree - i - 1) * sizeof *b->free);
        b->nfree--;
        return true;
    }
    if (left) {
        b->free[i - 1].size += size;
        if (serial > b->free[i - 1].serial) b->free[i - 1].serial = serial;
        return true;
    }
    if (right) {
        b->free[i].off = off;
        b->free[i].size += size;
        if (serial > b->free[i].serial) b->free[i].serial = serial;
        return true;
    }
    if (b->nfree == b->capfree) {
        vkg_range *nf = realloc(b->free, (size_t)b->capfree * 2 * sizeof *nf);
        if (!nf) return false; /* the range is lost to this block; only capacity, never memory safety */
        b->free = nf;
        b->capfree *= 2;
    }
    memmove(&b->free[i + 1], &b->free[i], (size_t)(b->nfree - i) * sizeof *b->free);
    b->free[i] = (vkg_range){ off, size, serial };
    b->nfree++;
    return true;
}

static void human(VkDeviceSize n, char *buf, size_t size) {
    if (n >= ((VkDeviceSize)1 << 30)) snprintf(buf, size, "%.2f GiB", (double)n / (1u << 30));
    else if (n >= ((VkDeviceSize)1 << 20)) snprintf(buf, size, "%.1f MiB", (double)n / (1u << 20));
    else snprintf(buf, size, "%.1f KiB", (double)n / 1024);
}

/* What a message names: the caller's words, or a tensor made by op (formatted only on failure:
 * an allocation per op must not pay for a message it almost never prints). */
typedef struct alloc_what {
    const char *what, *op;
    vkg_shape shape;
    vkg_dtype dtype;
} alloc_what;

static const char *what_str(const alloc_what *w, char *buf, size_t size) {
    if (w->what) return w->what;
    char b[160];
    snprintf(buf, size, "%s: tensor %s %s", w->op, vkg_shape_str(w->shape, b, sizeof b), vkg_dtype_name(w->dtype));
    return buf;
}

static vkg_storage *storage_new(VkDeviceSize bytes, bool host_write, const alloc_what *aw) {
    char wbuf[256];
    VkDeviceSize align = vkg_ctx.storage_align;
    VkDeviceSize size = bytes < 16 ? 16 : bytes;
    if (size > UINT64_MAX - align) return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: %llu bytes is too large", what_str(aw, wbuf, sizeof wbuf), (unsigned long long)bytes);
    size = (size + align - 1) / align * align;
    if (size > vkg_ctx.info.max_tensor_bytes) {
        /* name the limit that binds: on NVIDIA the allocation size is the smaller one */
        bool range = !vkg_ctx.info.max_allocation_size ||
                     vkg_ctx.info.max_storage_buffer_range <= vkg_ctx.info.max_allocation_size;
        char h[32], lim[32];
        human(bytes, h, sizeof h);
        human(range ? vkg_ctx.info.max_storage_buffer_range : vkg_ctx.info.max_allocation_size, lim, sizeof lim);
        return vkg_fail_null(VKG_ERR_TOO_LARGE,
                             "%s: %llu bytes (%s) is more than one %s on %s (%s %s, largest tensor %llu bytes); "
                             "split the tensor",
                             what_str(aw, wbuf, sizeof wbuf), (unsigned long long)bytes, h,
                             range ? "storage binding can address" : "memory allocation can hold", vkg_ctx.info.name,
                             range ? "maxStorageBufferRange" : "maxMemoryAllocationSize", lim,
                             (unsigned long long)vkg_ctx.info.max_tensor_bytes);
    }
    /* during a capture, the step's freed temporaries serve its later tensors (not host writes:
     * those would land before the step) */
    vkg_storage *s = host_write ? NULL : vkg_graph_storage_reuse(size);
    if (s) return s;
    s = vkg_recycled_calloc(&vkg_spare_storage);
    if (!s) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", what_str(aw, wbuf, sizeof wbuf));
    vkg_block *b = NULL;
    VkDeviceSize off = 0;
    uint64_t serial = 0;
    if (!carve(size, host_write, &b, &off, &serial)) {
        VkDeviceSize bsize = size > vkg_ctx.block_size ? size : vkg_ctx.block_size;
        VkResult r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
        vkg_block *nb = NULL;
        for (int attempt = 0; attempt < 2 && !nb; attempt++) {
            if (attempt == 1 && empty_cache() == 0) break;
            if (vkg_ctx.mem.device_bytes + bsize > vkg_ctx.heap_budget) {
                if (bsize > size && vkg_ctx.mem.device_bytes + size <= vkg_ctx.heap_budget) bsize = size;
                else continue;
            }
            if (vkg_ctx.mem.allocations >= vkg_ctx.info.max_allocation_count) continue;
            nb = block_new(bsize, &r);
        }
        if (!nb || !blocks_push(nb)) {
            if (nb) block_destroy(nb);
            char h[32], used[32], heap[32];
            human(bytes, h, sizeof h);
            human(vkg_ctx.mem.in_use, used, sizeof used);
            human(vkg_ctx.heap_budget, heap, sizeof heap);
            vkg_recycle(&vkg_spare_storage, s);
            if (r == VK_ERROR_DEVICE_LOST) vkg_ctx.lost = true;
            return vkg_fail_null(r == VK_ERROR_DEVICE_LOST ? VKG_ERR_DEVICE_LOST : VKG_ERR_OUT_OF_MEMORY,
                                 "%s: out of device memory allocating %llu bytes (%s): %s in use by live tensors, "
                                 "heap %s, %u Vulkan allocations (%s)",
                                 what_str(aw, wbuf, sizeof wbuf), (unsigned long long)bytes, h, used, heap,
                                 vkg_ctx.mem.allocations,
                                 vkg_vk_result_name(r));
        }
        carve(size, host_write, &b, &off, &serial); /* the new block qualifies; an in-flight range elsewhere must not */
    }
    s->block = b;
    s->off = off;
    s->size = size;
    s->refs = 1;
    s->capture_born = vkg_graph_capture_gen();
    /* the bytes may still be in use by unfinished work (a range freed in stream order): a host
     * write into the new tensor (vkg_tensor_write) waits for that work */
    s->last_serial = serial;
    vkg_ctx.mem.in_use += size;
    if (vkg_ctx.mem.in_use > vkg_ctx.mem.peak) vkg_ctx.mem.peak = vkg_ctx.mem.in_use;
    return s;
}

vkg_storage *vkg_storage_new(VkDeviceSize bytes, bool host_write, const char *what) {
    return storage_new(bytes, host_write, &(alloc_what){ .what = what });
}

vkg_storage *vkg_storage_new_tensor(VkDeviceSize bytes, bool host_write, const char *op, vkg_shape shape,
                                    vkg_dtype dtype) {
    return storage_new(bytes, host_write, &(alloc_what){ .op = op, .shape = shape, .dtype = dtype });
}

void vkg_storage_release(vkg_storage *s) {
    if (!s) return;
    if (--s->refs > 0) {
        if (s->refs == 1 && vkg_stream_capturing()) vkg_graph_storage_unused(s);
        return;
    }
    vkg_block *b = s->block;
    range_insert(b, s->off, s->size, s->last_serial);
    b->live--;
    b->used -= s->size;
    vkg_ctx.mem.in_use -= s->size;
    vkg_recycle(&vkg_spare_storage, s);
}

void vkg_allocator_shutdown(void) {
    for (int i = 0; i < vkg_ctx.nblocks; i++) block_destroy(vkg_ctx.blocks[i]);
    free(vkg_ctx.blocks);
    vkg_ctx.blocks = NULL;
    vkg_ctx.nblocks = vkg_ctx.capblocks = 0;
}

vkg_memory_stats vkg_memory_stats_get(void) {
    vkg_memory_stats m = vkg_ctx.mem;
    m.cached = m.device_bytes > m.in_use ? m.device_bytes - m.in_use : 0;
    return m;
}
