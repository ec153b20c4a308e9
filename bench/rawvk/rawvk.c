/* vkgrad-rawvk: a raw-Vulkan reference for vkgrad-bench's micro suite — f32/f16 FMA peak and
 * device-memory copy bandwidth — written with no vkgrad code at all, so the two can check each
 * other. Method after vkpeak: double the work until one submit lasts long enough, repeat, keep
 * the best, count FLOPs and bytes explicitly. See README.md beside this file. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L        /* clock_gettime */
#endif
#include <volk.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copy_v4.h"
#include "fma_f16_s16.h"
#include "fma_f16_v4a8.h"
#include "fma_f32_s16.h"
#include "fma_f32_s8.h"
#include "fma_f32_v4a16.h"
#include "fma_f32_v4a4.h"
#include "fma_f32_v4a8.h"

/* ---- errors: this is a program, so a failure prints what failed and exits ---------------- */

static const char *vk_result_name(VkResult r) {
    switch (r) {
#define NAME(x) case x: return #x;
    NAME(VK_SUCCESS) NAME(VK_NOT_READY) NAME(VK_TIMEOUT) NAME(VK_INCOMPLETE)
    NAME(VK_ERROR_OUT_OF_HOST_MEMORY) NAME(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    NAME(VK_ERROR_INITIALIZATION_FAILED) NAME(VK_ERROR_DEVICE_LOST)
    NAME(VK_ERROR_MEMORY_MAP_FAILED) NAME(VK_ERROR_LAYER_NOT_PRESENT)
    NAME(VK_ERROR_EXTENSION_NOT_PRESENT) NAME(VK_ERROR_FEATURE_NOT_PRESENT)
    NAME(VK_ERROR_INCOMPATIBLE_DRIVER) NAME(VK_ERROR_TOO_MANY_OBJECTS)
    NAME(VK_ERROR_FORMAT_NOT_SUPPORTED) NAME(VK_ERROR_UNKNOWN)
#undef NAME
    default: return "VkResult";
    }
}

static void vk_check(VkResult r, const char *call, int line) {
    if (r == VK_SUCCESS) return;
    fprintf(stderr, "vkgrad-rawvk: %s failed: %s (%d), rawvk.c:%d\n", call, vk_result_name(r),
            (int)r, line);
    exit(1);
}
#define VK_CHECK(call) vk_check((call), #call, __LINE__)

static void fail(const char *msg) {
    fprintf(stderr, "vkgrad-rawvk: %s\n", msg);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the device, one queue, one command buffer, one timestamp pair ----------------------- */

typedef struct ctx {
    VkInstance instance;
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem;
    char driver[VK_MAX_DRIVER_NAME_SIZE + VK_MAX_DRIVER_INFO_SIZE + 2];
    bool fp16;                         /* shaderFloat16 supported and enabled */
    const char *fp16_why;              /* why not, when not */
    VkDevice device;
    uint32_t family;
    VkQueue queue;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkQueryPool queries;               /* VK_NULL_HANDLE: no timestamps, wall clock is used */
    double ns_per_tick;
    uint64_t tick_mask;
} ctx;

static const char *device_type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

static int device_rank(VkPhysicalDeviceType t) {   /* discrete > integrated > virtual > CPU */
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static bool contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return true;
    }
    return n == 0;
}

/* VKG_DEVICE (an index, or a substring of the name) else the best type; same rule as vkgrad. */
static VkPhysicalDevice pick_device(VkInstance instance) {
    uint32_t n = 0;
    VK_CHECK(vkEnumeratePhysicalDevices(instance, &n, NULL));
    if (n == 0) fail("no Vulkan device (is a driver installed? try mesa-vulkan-drivers for lavapipe)");
    VkPhysicalDevice *all = malloc(n * sizeof *all);
    if (!all) fail("out of host memory");
    VK_CHECK(vkEnumeratePhysicalDevices(instance, &n, all));
    const char *want = getenv("VKG_DEVICE");
    long chosen = -1;
    if (want && *want) {
        char *end;
        errno = 0;
        long idx = strtol(want, &end, 10);
        bool is_index = *end == '\0' && errno == 0;
        for (uint32_t i = 0; i < n && chosen < 0; i++) {
            VkPhysicalDeviceProperties p;
            vkGetPhysicalDeviceProperties(all[i], &p);
            if (is_index ? (long)i == idx : contains_nocase(p.deviceName, want)) chosen = i;
        }
        if (chosen < 0) {
            fprintf(stderr, "vkgrad-rawvk: VKG_DEVICE=%s matches none of the %u devices:\n", want, n);
            for (uint32_t i = 0; i < n; i++) {
                VkPhysicalDeviceProperties p;
                vkGetPhysicalDeviceProperties(all[i], &p);
                fprintf(stderr, "  %u: %s (%s)\n", i, p.deviceName, device_type_name(p.deviceType));
            }
            exit(1);
        }
    } else {
        int best = -1;
        for (uint32_t i = 0; i < n; i++) {
            VkPhysicalDeviceProperties p;
            vkGetPhysicalDeviceProperties(all[i], &p);
            if (p.apiVersion >= VK_API_VERSION_1_1 && device_rank(p.deviceType) > best) {
                best = device_rank(p.deviceType);
                chosen = i;
            }
        }
        if (chosen < 0) fail("no Vulkan 1.1 device");
    }
    VkPhysicalDevice phys = all[chosen];
    free(all);
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(phys, &p);
    if (p.apiVersion < VK_API_VERSION_1_1) {
        fprintf(stderr, "vkgrad-rawvk: %s supports only Vulkan 1.0; 1.1 is needed\n", p.deviceName);
        exit(1);
    }
    return phys;
}

static bool has_device_extension(VkPhysicalDevice phys, const char *name) {
    uint32_t n = 0;
    VK_CHECK(vkEnumerateDeviceExtensionProperties(phys, NULL, &n, NULL));
    VkExtensionProperties *ext = malloc((n ? n : 1) * sizeof *ext);
    if (!ext) fail("out of host memory");
    VK_CHECK(vkEnumerateDeviceExtensionProperties(phys, NULL, &n, ext));
    bool found = false;
    for (uint32_t i = 0; i < n; i++) found = found || strcmp(ext[i].extensionName, name) == 0;
    free(ext);
    return found;
}

static void ctx_create(ctx *c) {
    memset(c, 0, sizeof *c);
    VK_CHECK(volkInitialize());
    uint32_t loader = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion) VK_CHECK(vkEnumerateInstanceVersion(&loader));
    if (loader < VK_API_VERSION_1_1) fail("the Vulkan loader is older than 1.1");
    uint32_t api = loader >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : VK_API_VERSION_1_1;
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                              .pApplicationName = "vkgrad-rawvk", .apiVersion = api };
    VK_CHECK(vkCreateInstance(&(VkInstanceCreateInfo){ .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                                       .pApplicationInfo = &app },
                              NULL, &c->instance));
    volkLoadInstanceOnly(c->instance);

    c->phys = pick_device(c->instance);
    vkGetPhysicalDeviceProperties(c->phys, &c->props);
    vkGetPhysicalDeviceMemoryProperties(c->phys, &c->mem);
    uint32_t dev_api = c->props.apiVersion < api ? c->props.apiVersion : api;

    /* Driver name and version string: core in 1.2; a bare version number before that. */
    snprintf(c->driver, sizeof c->driver, "vendor 0x%04x, driver version 0x%08x",
             c->props.vendorID, c->props.driverVersion);
    if (dev_api >= VK_API_VERSION_1_2) {
        VkPhysicalDeviceDriverProperties drv = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES };
        VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv };
        vkGetPhysicalDeviceProperties2(c->phys, &p2);
        snprintf(c->driver, sizeof c->driver, "%s %s", drv.driverName, drv.driverInfo);
    }

    /* shaderFloat16: core in 1.2, else through VK_KHR_shader_float16_int8. */
    const char *extensions[1];
    uint32_t n_ext = 0;
    bool f16_queryable = dev_api >= VK_API_VERSION_1_2;
    if (!f16_queryable && has_device_extension(c->phys, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME)) {
        f16_queryable = true;
        extensions[n_ext++] = VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME;
    }
    VkPhysicalDeviceShaderFloat16Int8Features f16 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES };
    c->fp16_why = "the device has neither Vulkan 1.2 nor VK_KHR_shader_float16_int8";
    if (f16_queryable) {
        VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16 };
        vkGetPhysicalDeviceFeatures2(c->phys, &f2);
        c->fp16 = f16.shaderFloat16;
        c->fp16_why = c->fp16 ? NULL : "the device reports shaderFloat16 = false";
    }
    if (!c->fp16) n_ext = 0;
    VkPhysicalDeviceShaderFloat16Int8Features f16_on = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .shaderFloat16 = VK_TRUE };

    /* A compute queue; one with timestamps if there is one. */
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = malloc((nq ? nq : 1) * sizeof *qf);
    if (!qf) fail("out of host memory");
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, qf);
    int family = -1;
    uint32_t ts_bits = 0;
    for (uint32_t i = 0; i < nq; i++) {
        if (!(qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        if (family < 0 || (ts_bits == 0 && qf[i].timestampValidBits > 0)) {
            family = (int)i;
            ts_bits = qf[i].timestampValidBits;
        }
    }
    free(qf);
    if (family < 0) fail("the device has no compute queue");
    c->family = (uint32_t)family;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                    .queueFamilyIndex = c->family, .queueCount = 1, .pQueuePriorities = &prio };
    VK_CHECK(vkCreateDevice(c->phys, &(VkDeviceCreateInfo){
                                .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                                .pNext = c->fp16 ? &f16_on : NULL,
                                .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                                .enabledExtensionCount = n_ext, .ppEnabledExtensionNames = extensions },
                            NULL, &c->device));
    volkLoadDevice(c->device);
    vkGetDeviceQueue(c->device, c->family, 0, &c->queue);

    VK_CHECK(vkCreateCommandPool(c->device, &(VkCommandPoolCreateInfo){
                                     .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                     .queueFamilyIndex = c->family },
                                 NULL, &c->cmd_pool));
    VK_CHECK(vkAllocateCommandBuffers(c->device, &(VkCommandBufferAllocateInfo){
                                          .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = c->cmd_pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1 },
                                      &c->cmd));
    VK_CHECK(vkCreateFence(c->device, &(VkFenceCreateInfo){ .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO },
                           NULL, &c->fence));
    if (ts_bits > 0 && c->props.limits.timestampPeriod > 0.0f) {
        VK_CHECK(vkCreateQueryPool(c->device, &(VkQueryPoolCreateInfo){
                                       .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                       .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2 },
                                   NULL, &c->queries));
        c->ns_per_tick = c->props.limits.timestampPeriod;
        c->tick_mask = ts_bits >= 64 ? UINT64_MAX : ((uint64_t)1 << ts_bits) - 1;
    }
}

static void ctx_destroy(ctx *c) {
    if (c->queries) vkDestroyQueryPool(c->device, c->queries, NULL);
    vkDestroyFence(c->device, c->fence, NULL);
    vkDestroyCommandPool(c->device, c->cmd_pool, NULL);   /* frees the command buffer too */
    vkDestroyDevice(c->device, NULL);
    vkDestroyInstance(c->instance, NULL);
}

/* ---- buffers -------------------------------------------------------------------------------- */

typedef struct buffer {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map;                         /* NULL unless host-visible memory was asked for */
} buffer;

static buffer buffer_create(ctx *c, VkDeviceSize size, VkBufferUsageFlags usage, VkMemoryPropertyFlags want) {
    buffer b = { .size = size };
    VK_CHECK(vkCreateBuffer(c->device, &(VkBufferCreateInfo){
                                .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = usage,
                                .sharingMode = VK_SHARING_MODE_EXCLUSIVE },
                            NULL, &b.buf));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->device, b.buf, &req);
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < c->mem.memoryTypeCount && type == UINT32_MAX; i++)
        if ((req.memoryTypeBits & (1u << i)) && (c->mem.memoryTypes[i].propertyFlags & want) == want) type = i;
    if (type == UINT32_MAX) fail("no memory type with the properties asked for");
    VK_CHECK(vkAllocateMemory(c->device, &(VkMemoryAllocateInfo){
                                  .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                  .allocationSize = req.size, .memoryTypeIndex = type },
                              NULL, &b.mem));
    VK_CHECK(vkBindBufferMemory(c->device, b.buf, b.mem, 0));
    if (want & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) VK_CHECK(vkMapMemory(c->device, b.mem, 0, VK_WHOLE_SIZE, 0, &b.map));
    return b;
}

static void buffer_destroy(ctx *c, buffer *b) {
    vkDestroyBuffer(c->device, b->buf, NULL);
    vkFreeMemory(c->device, b->mem, NULL);   /* unmaps implicitly */
}

/* ---- compute pipelines: one shader, N storage buffers (binding i = bufs[i]), push constants */

typedef struct pipeline {
    VkShaderModule module;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipe;
    VkDescriptorPool pool;
    VkDescriptorSet set;
    uint32_t push_size;
} pipeline;

#define MAX_BINDINGS 2

static pipeline pipeline_create(ctx *c, const uint32_t *code, size_t code_size, uint32_t wg_size,
                                uint32_t push_size, uint32_t n_bufs, const buffer *bufs) {
    pipeline p = { .push_size = push_size };
    VK_CHECK(vkCreateShaderModule(c->device, &(VkShaderModuleCreateInfo){
                                      .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                      .codeSize = code_size, .pCode = code },
                                  NULL, &p.module));
    VkDescriptorSetLayoutBinding bind[MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bufs; i++)
        bind[i] = (VkDescriptorSetLayoutBinding){ .binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                  .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    VK_CHECK(vkCreateDescriptorSetLayout(c->device, &(VkDescriptorSetLayoutCreateInfo){
                                             .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                             .bindingCount = n_bufs, .pBindings = bind },
                                         NULL, &p.set_layout));
    VkPushConstantRange range = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = push_size };
    VK_CHECK(vkCreatePipelineLayout(c->device, &(VkPipelineLayoutCreateInfo){
                                        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                        .setLayoutCount = 1, .pSetLayouts = &p.set_layout,
                                        .pushConstantRangeCount = 1, .pPushConstantRanges = &range },
                                    NULL, &p.layout));
    VkSpecializationMapEntry entry = { .constantID = 0, .offset = 0, .size = sizeof wg_size };
    VkSpecializationInfo spec = { .mapEntryCount = 1, .pMapEntries = &entry, .dataSize = sizeof wg_size, .pData = &wg_size };
    VK_CHECK(vkCreateComputePipelines(c->device, VK_NULL_HANDLE, 1, &(VkComputePipelineCreateInfo){
                                          .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                                          .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                     .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = p.module,
                                                     .pName = "main", .pSpecializationInfo = &spec },
                                          .layout = p.layout },
                                      NULL, &p.pipe));
    VkDescriptorPoolSize pool_size = { .type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = n_bufs };
    VK_CHECK(vkCreateDescriptorPool(c->device, &(VkDescriptorPoolCreateInfo){
                                        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                        .maxSets = 1, .poolSizeCount = 1, .pPoolSizes = &pool_size },
                                    NULL, &p.pool));
    VK_CHECK(vkAllocateDescriptorSets(c->device, &(VkDescriptorSetAllocateInfo){
                                          .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = p.pool, .descriptorSetCount = 1,
                                          .pSetLayouts = &p.set_layout },
                                      &p.set));
    VkDescriptorBufferInfo info[MAX_BINDINGS];
    VkWriteDescriptorSet write[MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bufs; i++) {
        info[i] = (VkDescriptorBufferInfo){ .buffer = bufs[i].buf, .range = VK_WHOLE_SIZE };
        write[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = p.set,
                                           .dstBinding = i, .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &info[i] };
    }
    vkUpdateDescriptorSets(c->device, n_bufs, write, 0, NULL);
    return p;
}

static void pipeline_destroy(ctx *c, pipeline *p) {
    vkDestroyDescriptorPool(c->device, p->pool, NULL);     /* frees the set too */
    vkDestroyPipeline(c->device, p->pipe, NULL);
    vkDestroyPipelineLayout(c->device, p->layout, NULL);
    vkDestroyDescriptorSetLayout(c->device, p->set_layout, NULL);
    vkDestroyShaderModule(c->device, p->module, NULL);
}

/* ---- one submit: [copy] or [timestamp, dispatch, timestamp], then wait ------------------- */

/* Every shader or transfer write before this point is visible to every later read or write:
 * one global barrier keeps the submits ordered (and the validation layer quiet) at no cost
 * worth measuring, and it sits outside the timed region. */
static void barrier_all(VkCommandBuffer cmd, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = dst_access };
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, dst_stage,
                         0, 1, &mb, 0, NULL, 0, NULL);
}

static void cmd_begin(ctx *c) {
    VK_CHECK(vkResetCommandPool(c->device, c->cmd_pool, 0));
    VK_CHECK(vkBeginCommandBuffer(c->cmd, &(VkCommandBufferBeginInfo){
                                              .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                              .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT }));
    barrier_all(c->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                    VK_ACCESS_TRANSFER_WRITE_BIT);
}

/* Ends, submits, waits; returns the wall-clock seconds of submit + wait. */
static double cmd_submit_wait(ctx *c) {
    barrier_all(c->cmd, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);   /* for read-backs */
    VK_CHECK(vkEndCommandBuffer(c->cmd));
    double t0 = now_s();
    VK_CHECK(vkQueueSubmit(c->queue, 1, &(VkSubmitInfo){ .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                                                        .commandBufferCount = 1, .pCommandBuffers = &c->cmd },
                           c->fence));
    VK_CHECK(vkWaitForFences(c->device, 1, &c->fence, VK_TRUE, UINT64_MAX));
    double t = now_s() - t0;
    VK_CHECK(vkResetFences(c->device, 1, &c->fence));
    return t;
}

static void copy_buffer(ctx *c, const buffer *dst, const buffer *src) {
    cmd_begin(c);
    vkCmdCopyBuffer(c->cmd, src->buf, dst->buf, 1, &(VkBufferCopy){ .size = src->size });
    cmd_submit_wait(c);
}

/* One dispatch in one submit; returns its time in seconds: GPU timestamps where the queue has
 * them, else the wall clock of submit + wait (which includes the submit overhead). */
static double dispatch_timed(ctx *c, const pipeline *p, const void *push, uint32_t groups) {
    cmd_begin(c);
    if (c->queries) vkCmdResetQueryPool(c->cmd, c->queries, 0, 2);
    vkCmdBindPipeline(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(c->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &p->set, 0, NULL);
    vkCmdPushConstants(c->cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->push_size, push);
    if (c->queries) vkCmdWriteTimestamp(c->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, c->queries, 0);
    vkCmdDispatch(c->cmd, groups, 1, 1);
    if (c->queries) vkCmdWriteTimestamp(c->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->queries, 1);
    double wall = cmd_submit_wait(c);
    if (!c->queries) return wall;
    uint64_t ts[2];
    VK_CHECK(vkGetQueryPoolResults(c->device, c->queries, 0, 2, sizeof ts, ts, sizeof ts[0],
                                   VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    return (double)((ts[1] - ts[0]) & c->tick_mask) * c->ns_per_tick * 1e-9;
}

/* ---- the measurements ----------------------------------------------------------------------- */

typedef struct options {
    double target_s;                   /* one submit must last at least this long */
    double cap_s;                      /* ... unless the doubling has spent this long */
    int reps;                          /* then: best of this many */
    uint32_t wg_size;
    uint32_t copy_mib;
    bool verbose;                      /* print every doubling step */
} options;

typedef struct fma_shape {
    const char *name;
    const uint32_t *code;
    size_t size;
    uint32_t vec, nacc;                /* components per accumulator, accumulators */
    bool f16;
} fma_shape;

#define SHAPE(n, v, a, h) { #n, rawvk_spv_##n, sizeof rawvk_spv_##n, v, a, h }
static const fma_shape fma_shapes[] = {
    SHAPE(fma_f32_v4a8, 4, 8, false),  /* the default f32 shape: first on purpose */
    SHAPE(fma_f32_s8, 1, 8, false),
    SHAPE(fma_f32_s16, 1, 16, false),
    SHAPE(fma_f32_v4a4, 4, 4, false),
    SHAPE(fma_f32_v4a16, 4, 16, false),
    SHAPE(fma_f16_v4a8, 4, 8, true),   /* the default f16 shape */
    SHAPE(fma_f16_s16, 1, 16, true),
};
#define N_SHAPES (sizeof fma_shapes / sizeof fma_shapes[0])

struct fma_push {                      /* mirrors the push block in fma.comp */
    uint32_t loops;
    uint32_t n_check;
    float m;
    float a;
};
#define FMA_CHECK 64                   /* invocations whose results are checked */

typedef struct result {
    double value;                      /* GFLOP/s or GB/s */
    double seconds;                    /* best time of one submit */
    uint32_t groups, loops;            /* fma: the size measured */
    double bytes;                      /* copy: the buffer size actually copied */
    bool target_missed;                /* doubling stopped at the cap before the target */
} result;

/* Start value of chain `chain` of invocation `gid`: the same formula as start() in fma.comp. */
static float fma_start(uint32_t gid, uint32_t chains, uint32_t chain) {
    return (float)((gid * chains + chain) & 255u) * (1.0f / 256.0f);
}

static result measure_fma(ctx *c, const fma_shape *s, const options *o) {
    buffer out = buffer_create(c, FMA_CHECK * sizeof(float), VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                               VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    pipeline p = pipeline_create(c, s->code, s->size, o->wg_size, sizeof(struct fma_push), 1, &out);
    struct fma_push push = { .loops = 256, .n_check = FMA_CHECK, .m = -1.0f, .a = 1.0f };
    uint32_t groups = 1, max_groups = c->props.limits.maxComputeWorkGroupCount[0];
    result r = { 0 };

    /* Double the work until one submit lasts target_s: first the groups (up to the device's
     * limit), then the loop count. The early, short runs double as the warm-up. */
    double spent = 0, t;
    for (;;) {
        double t0 = now_s();
        t = dispatch_timed(c, &p, &push, groups);
        if (t >= o->target_s) {               /* confirm, so that one stall cannot stop it */
            double t2 = dispatch_timed(c, &p, &push, groups);
            t = t2 < t ? t2 : t;
        }
        spent += now_s() - t0;
        if (o->verbose)
            printf("  %s: %u groups x %u loops: %.3f ms\n", s->name, groups, push.loops, t * 1e3);
        if (t >= o->target_s) break;
        if (spent >= o->cap_s) { r.target_missed = true; break; }
        if (groups <= max_groups / 2) groups *= 2;
        else if (push.loops <= UINT32_MAX / 2) push.loops *= 2;
        else { r.target_missed = true; break; }
    }
    r.seconds = t;
    for (int i = 0; i < o->reps; i++) {         /* the best of these and the stopping run */
        t = dispatch_timed(c, &p, &push, groups);
        if (t < r.seconds) r.seconds = t;
    }
    r.groups = groups;
    r.loops = push.loops;

    /* Check: m = -1, a = 1 turns every chain into x, 1 - x, x, ... (exact), and 8 * loops
     * steps is even, so each invocation returns the sum of its start values, bit for bit. */
    uint32_t chains = s->vec * s->nacc;
    uint32_t n_check = groups * o->wg_size < FMA_CHECK ? groups * o->wg_size : FMA_CHECK;
    const float *got = out.map;
    for (uint32_t gid = 0; gid < n_check; gid++) {
        float want = 0;
        for (uint32_t chain = 0; chain < chains; chain++) want += fma_start(gid, chains, chain);
        if (got[gid] != want) {
            fprintf(stderr, "vkgrad-rawvk: %s gives %.9g for invocation %u, expected %.9g\n", s->name,
                    (double)got[gid], gid, (double)want);
            exit(1);
        }
    }

    if (r.seconds <= 0) fail("the timer measured no time for the FMA dispatch");
    double flops = (double)groups * o->wg_size * push.loops * 8.0 * chains * 2.0;
    r.value = flops / r.seconds * 1e-9;
    pipeline_destroy(c, &p);
    buffer_destroy(c, &out);
    return r;
}

struct copy_push {                     /* mirrors the push block in copy.comp */
    uint32_t n;
};

static result measure_copy(ctx *c, const options *o) {
    VkDeviceSize size = (VkDeviceSize)o->copy_mib << 20;
    if (size > c->props.limits.maxStorageBufferRange) size = c->props.limits.maxStorageBufferRange & ~(VkDeviceSize)15;
    VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    buffer src = buffer_create(c, size, usage, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    buffer dst = buffer_create(c, size, usage, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    buffer host = buffer_create(c, size, usage, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    uint32_t *words = host.map;
    size_t n_words = size / 4;
    for (size_t i = 0; i < n_words; i++) words[i] = (uint32_t)i * 2654435761u;
    copy_buffer(c, &src, &host);
    buffer bufs[2] = { dst, src };
    pipeline p = pipeline_create(c, rawvk_spv_copy_v4, sizeof rawvk_spv_copy_v4, o->wg_size,
                                 sizeof(struct copy_push), 2, bufs);
    struct copy_push push = { .n = (uint32_t)(size / 16) };
    uint64_t want_groups = (push.n + o->wg_size - 1) / o->wg_size;
    uint32_t groups = want_groups < c->props.limits.maxComputeWorkGroupCount[0]
                          ? (uint32_t)want_groups : c->props.limits.maxComputeWorkGroupCount[0];

    result r = { .seconds = dispatch_timed(c, &p, &push, groups) };   /* warm-up, not kept */
    for (int i = 0; i < o->reps; i++) {
        double t = dispatch_timed(c, &p, &push, groups);
        if (i == 0 || t < r.seconds) r.seconds = t;
    }
    if (r.seconds <= 0) fail("the timer measured no time for the copy dispatch");
    r.groups = groups;
    r.bytes = (double)size;
    r.value = 2.0 * (double)size / r.seconds * 1e-9;   /* bytes read + bytes written */

    memset(words, 0, size);
    copy_buffer(c, &host, &dst);
    for (size_t i = 0; i < n_words; i++)
        if (words[i] != (uint32_t)i * 2654435761u) {
            fprintf(stderr, "vkgrad-rawvk: copy: word %zu is 0x%08x, expected 0x%08x\n", i, words[i],
                    (uint32_t)i * 2654435761u);
            exit(1);
        }
    pipeline_destroy(c, &p);
    buffer_destroy(c, &host);
    buffer_destroy(c, &dst);
    buffer_destroy(c, &src);
    return r;
}

/* ---- report ----------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void print_fma(const char *test, const fma_shape *s, uint32_t wg, const result *r) {
    char shape[64], size[64];
    snprintf(shape, sizeof shape, "%s x%u acc, wg %u", s->vec == 4 ? "vec4" : "scalar", s->nacc, wg);
    snprintf(size, sizeof size, "%u groups x %u loops", r->groups, r->loops);
    printf("%-10s %-24s %-26s %9.2f ms %10.1f GFLOP/s%s\n", test, shape, size, r->seconds * 1e3, r->value,
           r->target_missed ? "  (below the target time: cap reached)" : "");
}

static void print_copy(const options *o, const result *r) {
    char shape[64], size[64];
    snprintf(shape, sizeof shape, "vec4, wg %u", o->wg_size);
    snprintf(size, sizeof size, "%.0f MiB, %u groups", r->bytes / 1048576.0, r->groups);
    printf("%-10s %-24s %-26s %9.2f ms %10.1f GB/s (read + written)\n", "copy", shape, size, r->seconds * 1e3, r->value);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkgrad-rawvk [--json FILE] [--sweep] [--reps N] [--target-ms MS] [--wg N] [--copy-mib N] [--verbose]\n"
            "  f32/f16 FMA peak and copy bandwidth with raw Vulkan (no vkgrad code).\n"
            "  --json FILE    also write the figures as JSON\n"
            "  --sweep        time every FMA shader shape at workgroup sizes 64, 128, 256\n"
            "  --reps N       repetitions kept best-of (default 5 for FMA, 2N for copy)\n"
            "  --target-ms MS one FMA submit must last this long (default 100)\n"
            "  --wg N         workgroup size (default 256)\n"
            "  --copy-mib N   size of the copied buffer (default 64, capped by maxStorageBufferRange)\n"
            "  --verbose      print every doubling step\n"
            "  VKG_DEVICE=index|name-substring picks the device.\n");
}

int main(int argc, char **argv) {
    options o = { .target_s = 0.1, .cap_s = 10.0, .reps = 5, .wg_size = 256, .copy_mib = 64 };
    const char *json = NULL;
    bool sweep = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--json") && has_val) json = argv[++i];
        else if (!strcmp(a, "--sweep")) sweep = true;
        else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) o.verbose = true;
        else if (!strcmp(a, "--reps") && has_val) o.reps = atoi(argv[++i]);
        else if (!strcmp(a, "--target-ms") && has_val) o.target_s = atof(argv[++i]) * 1e-3;
        else if (!strcmp(a, "--wg") && has_val) o.wg_size = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--copy-mib") && has_val) o.copy_mib = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (o.reps < 1 || o.target_s <= 0 || o.wg_size < 1 || o.copy_mib < 1) { usage(stderr); return 2; }

    FILE *f = NULL;                    /* opened first, so that a bad path fails before the runs */
    if (json && sweep) {
        fprintf(stderr, "vkgrad-rawvk: --sweep writes no JSON; run without --sweep for --json\n");
        return 2;
    }
    if (json && !(f = fopen(json, "w"))) {
        fprintf(stderr, "vkgrad-rawvk: %s: cannot open (%s)\n", json, strerror(errno));
        return 1;
    }
    ctx c;
    ctx_create(&c);
    if (o.wg_size > c.props.limits.maxComputeWorkGroupSize[0] || o.wg_size > c.props.limits.maxComputeWorkGroupInvocations)
        fail("--wg is above the device's maxComputeWorkGroupSize");
    printf("device : %s (%s)\n", c.props.deviceName, device_type_name(c.props.deviceType));
    printf("driver : %s\n", c.driver);
    printf("timer  : %s\n\n", c.queries ? "GPU timestamps" : "wall clock (the queue has no timestamps)");

    if (sweep) {
        const uint32_t wgs[] = { 64, 128, 256 };
        printf("%-10s %-24s %-26s %12s %17s\n", "shader", "shape", "size", "best time", "rate");
        for (size_t i = 0; i < N_SHAPES; i++) {
            if (fma_shapes[i].f16 && !c.fp16) continue;
            for (size_t w = 0; w < sizeof wgs / sizeof wgs[0]; w++) {
                options ow = o;
                ow.wg_size = wgs[w];
                if (ow.wg_size > c.props.limits.maxComputeWorkGroupInvocations) continue;
                result r = measure_fma(&c, &fma_shapes[i], &ow);
                print_fma(fma_shapes[i].f16 ? "fp16 fma" : "fp32 fma", &fma_shapes[i], ow.wg_size, &r);
            }
        }
        for (size_t w = 0; w < sizeof wgs / sizeof wgs[0]; w++) {
            options ow = o;
            ow.wg_size = wgs[w];
            ow.reps = 2 * o.reps;
            if (ow.wg_size > c.props.limits.maxComputeWorkGroupInvocations) continue;
            result r = measure_copy(&c, &ow);
            print_copy(&ow, &r);
        }
        ctx_destroy(&c);
        return 0;
    }

    const fma_shape *f32 = &fma_shapes[0], *f16 = NULL;
    for (size_t i = 0; i < N_SHAPES && !f16; i++) if (fma_shapes[i].f16) f16 = &fma_shapes[i];
    printf("%-10s %-24s %-26s %12s %17s\n", "test", "shape", "size", "best time", "rate");
    result r32 = measure_fma(&c, f32, &o);
    print_fma("fp32 fma", f32, o.wg_size, &r32);
    result r16 = { 0 };
    if (c.fp16) {
        r16 = measure_fma(&c, f16, &o);
        print_fma("fp16 fma", f16, o.wg_size, &r16);
    } else {
        printf("%-10s skipped: %s\n", "fp16 fma", c.fp16_why);
    }
    options oc = o;
    oc.reps = 2 * o.reps;
    result rc = measure_copy(&c, &oc);
    print_copy(&oc, &rc);

    char method[512];
    snprintf(method, sizeof method,
             "fma: %s and %s, wg %u, 2 FLOP per scalar fma, groups then loops doubled until one submit "
             "lasts >= %.0f ms, best of %d; copy: %.0f MiB with vec4 loads/stores, bytes read + written, "
             "best of %d; timer: %s",
             f32->name, c.fp16 ? f16->name : "no f16", o.wg_size, o.target_s * 1e3, o.reps, rc.bytes / 1048576.0,
             oc.reps, c.queries ? "GPU timestamps" : "wall clock");
    if (f) {
        fprintf(f, "{\n  \"device\": ");
        json_string(f, c.props.deviceName);
        fprintf(f, ",\n  \"driver\": ");
        json_string(f, c.driver);
        fprintf(f, ",\n  \"fp32_gflops\": %.3f,\n  \"fp16_gflops\": ", r32.value);
        if (c.fp16) fprintf(f, "%.3f", r16.value);
        else fprintf(f, "null");
        fprintf(f, ",\n  \"copy_gbps\": %.3f,\n  \"method\": ", rc.value);
        json_string(f, method);
        fprintf(f, "\n}\n");
        if (fclose(f) != 0) {
            fprintf(stderr, "vkgrad-rawvk: %s: write failed (%s)\n", json, strerror(errno));
            ctx_destroy(&c);
            return 1;
        }
    }
    ctx_destroy(&c);
    return 0;
}
