/* Instance and device: enumeration and the capability probe, device choice (option, VKG_DEVICE,
 * else discrete > integrated > virtual > CPU), the validation messenger, and init/shutdown of
 * every runtime part in order. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

vkg_context vkg_ctx;

void vkg_log_msg(vkg_log_level level, const char *fmt, ...) {
    if (level > vkg_ctx.log) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("vkgrad: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *vkg_vk_result_name(VkResult r) {
    switch (r) {
#define N(x) case x: return #x;
    N(VK_SUCCESS) N(VK_NOT_READY) N(VK_TIMEOUT) N(VK_INCOMPLETE)
    N(VK_ERROR_OUT_OF_HOST_MEMORY) N(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    N(VK_ERROR_INITIALIZATION_FAILED) N(VK_ERROR_DEVICE_LOST) N(VK_ERROR_MEMORY_MAP_FAILED)
    N(VK_ERROR_LAYER_NOT_PRESENT) N(VK_ERROR_EXTENSION_NOT_PRESENT) N(VK_ERROR_FEATURE_NOT_PRESENT)
    N(VK_ERROR_INCOMPATIBLE_DRIVER) N(VK_ERROR_TOO_MANY_OBJECTS) N(VK_ERROR_FORMAT_NOT_SUPPORTED)
    N(VK_ERROR_FRAGMENTED_POOL) N(VK_ERROR_OUT_OF_POOL_MEMORY) N(VK_ERROR_UNKNOWN)
#undef N
    default: return "VkResult(unknown)";
    }
}

vkg_status vkg_vk_fail(VkResult r, const char *what) {
    vkg_status st = VKG_ERR_VULKAN;
    if (r == VK_ERROR_DEVICE_LOST) {
        st = VKG_ERR_DEVICE_LOST;
        vkg_ctx.lost = true;
    } else if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
        st = VKG_ERR_OUT_OF_MEMORY;
    }
    return vkg_fail(st, "%s failed: %s", what, vkg_vk_result_name(r));
}

bool vkg_not_ready(const char *op) {
    if (!vkg_ctx.initialized) vkg_fail(VKG_ERR_NOT_INITIALIZED, "%s: vkg_init has not been called (or failed)", op);
    else if (vkg_ctx.lost) vkg_fail(VKG_ERR_DEVICE_LOST, "%s: the device was lost; call vkg_shutdown and vkg_init again", op);
    return false;
}

bool vkg_is_initialized(void) { return vkg_ctx.initialized; }
const vkg_device_info *vkg_device(void) { return vkg_ctx.initialized ? &vkg_ctx.info : NULL; }

/* ---- device probe ---------------------------------------------------------------------------- */
static const char *vendor_name(uint32_t id, VkPhysicalDeviceType type) {
    switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106B: return "Apple";
    case 0x1010: return "ImgTec";
    case 0x10005: return "Mesa";
    default: return type == VK_PHYSICAL_DEVICE_TYPE_CPU ? "CPU" : "unknown";
    }
}

static bool has_extension(const VkExtensionProperties *ext, uint32_t n, const char *name) {
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(ext[i].extensionName, name) == 0) return true;
    return false;
}

static void probe(VkPhysicalDevice pd, int index, vkg_device_info *d) {
    memset(d, 0, sizeof *d);
    d->index = index;
    VkPhysicalDeviceSubgroupProperties sub = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
    VkPhysicalDeviceDriverProperties drv = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sub };
    VkPhysicalDeviceIDProperties idp = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES, .pNext = &drv };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &idp };
    VkPhysicalDeviceProperties p1;
    vkGetPhysicalDeviceProperties(pd, &p1);
    bool v12 = p1.apiVersion >= VK_API_VERSION_1_2;
    if (!v12) idp.pNext = &sub; /* driver properties are core only from 1.2 */
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;

    snprintf(d->name, sizeof d->name, "%s", p->deviceName);
    if (v12) {
        snprintf(d->driver_name, sizeof d->driver_name, "%s", drv.driverName);
        snprintf(d->driver_info, sizeof d->driver_info, "%s", drv.driverInfo);
        /* gallivm counts every loop back-edge of an invocation against LP_MAX_TGSI_LOOP_ITERATIONS
         * and, past it, leaves all loops without a word: kernels must stay under it. */
        if (drv.driverID == VK_DRIVER_ID_MESA_LLVMPIPE) d->max_loop_iterations = 65535;
    }
    d->vendor_id = p->vendorID;
    d->device_id = p->deviceID;
    snprintf(d->vendor, sizeof d->vendor, "%s", vendor_name(p->vendorID, p->deviceType));
    switch (p->deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: d->type = VKG_DEVICE_DISCRETE; break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: d->type = VKG_DEVICE_INTEGRATED; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: d->type = VKG_DEVICE_VIRTUAL; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: d->type = VKG_DEVICE_CPU; break;
    default: d->type = VKG_DEVICE_OTHER; break;
    }
    d->api_version = p->apiVersion;
    d->driver_version = p->driverVersion;
    memcpy(d->device_uuid, idp.deviceUUID, 16);
    memcpy(d->pipeline_cache_uuid, p->pipelineCacheUUID, 16);
    d->subgroup_size = sub.subgroupSize;
    d->max_shared_memory = p->limits.maxComputeSharedMemorySize;
    for (int i = 0; i < 3; i++) {
        d->max_workgroup_size[i] = p->limits.maxComputeWorkGroupSize[i];
        d->max_workgroup_count[i] = p->limits.maxComputeWorkGroupCount[i];
    }
    d->max_workgroup_invocations = p->limits.maxComputeWorkGroupInvocations;
    d->max_storage_buffer_range = p->limits.maxStorageBufferRange;
    d->max_allocation_count = p->limits.maxMemoryAllocationCount;
    d->max_push_constants = p->limits.maxPushConstantsSize;
    d->timestamp_period = p->limits.timestampComputeAndGraphics ? p->limits.timestampPeriod : 0.0f;

    VkPhysicalDeviceMaintenance3Properties m3 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES };
    VkPhysicalDeviceProperties2 pm = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3 };
    vkGetPhysicalDeviceProperties2(pd, &pm);
    d->max_allocation_size = m3.maxMemoryAllocationSize;
    /* a storage is bound whole, its size rounded up to the offset alignment (allocator.c) */
    uint64_t align = p->limits.minStorageBufferOffsetAlignment < 16 ? 16 : p->limits.minStorageBufferOffsetAlignment;
    uint64_t most = d->max_storage_buffer_range;
    if (d->max_allocation_size && d->max_allocation_size < most) most = d->max_allocation_size;
    d->max_tensor_bytes = most / align * align;

    VkPhysicalDevice16BitStorageFeatures s16 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES };
    VkPhysicalDeviceShaderFloat16Int8Features f16 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .pNext = &s16 };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16 };
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    d->fp16 = f16.shaderFloat16;
    d->int8 = f16.shaderInt8;
    d->fp64 = f2.features.shaderFloat64;
    d->storage16 = s16.storageBuffer16BitAccess;
    /* blocks double as RGBA32F uniform texel buffers where the format allows (the register-blocked
     * matmul reads its operands so: lavapipe fetches texels without its per-lane load loop) */
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_SFLOAT, &fp);
    d->texel_buffers = (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;

    uint32_t next = 0;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &next, NULL);
    VkExtensionProperties *ext = calloc(next ? next : 1, sizeof *ext);
    if (ext) {
        vkEnumerateDeviceExtensionProperties(pd, NULL, &next, ext);
        d->cooperative_matrix = has_extension(ext, next, "VK_KHR_cooperative_matrix") ||
                                has_extension(ext, next, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
        d->push_descriptor = has_extension(ext, next, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
        free(ext);
    }

    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    d->heap_count = mp.memoryHeapCount < 16 ? mp.memoryHeapCount : 16;
    for (uint32_t i = 0; i < d->heap_count; i++) {
        d->heap_size[i] = mp.memoryHeaps[i].size;
        d->heap_device_local[i] = mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
    }
    const VkMemoryPropertyFlags uni = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++)
        if ((mp.memoryTypes[i].propertyFlags & uni) == uni &&
            mp.memoryHeaps[mp.memoryTypes[i].heapIndex].size >= (VkDeviceSize)256 << 20 &&
            (d->type == VKG_DEVICE_INTEGRATED || d->type == VKG_DEVICE_CPU || d->type == VKG_DEVICE_VIRTUAL))
            d->unified_memory = true;
}

static int type_rank(vkg_device_type t) {
    switch (t) {
    case VKG_DEVICE_DISCRETE: return 0;
    case VKG_DEVICE_INTEGRATED: return 1;
    case VKG_DEVICE_VIRTUAL: return 2;
    case VKG_DEVICE_CPU: return 3;
    default: return 4;
    }
}

static bool name_matches(const char *name, const char *want) {
    size_t n = strlen(want);
    for (const char *p = name; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)want[i])) i++;
        if (i == n) return true;
    }
    return n == 0;
}

/* Picks among infos: the request (index or name substring) or the best by type. -1 if none. */
static int choose(const vkg_device_info *infos, int n, const char *want) {
    if (want && *want) {
        char *end;
        long idx = strtol(want, &end, 10);
        if (*end == '\0') return (idx >= 0 && idx < n) ? (int)idx : -1;
        for (int i = 0; i < n; i++)
            if (name_matches(infos[i].name, want)) return i;
        return -1;
    }
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || type_rank(infos[i].type) < type_rank(infos[best].type)) best = i;
    return best;
}

static VkInstance temp_instance(vkg_status *st) {
    VkInstance inst = VK_NULL_HANDLE;
    VkResult r = volkInitialize();
    if (r != VK_SUCCESS) {
        *st = vkg_fail(VKG_ERR_NO_DEVICE, "no Vulkan loader found (install libvulkan1 and a driver, e.g. mesa-vulkan-drivers)");
        return VK_NULL_HANDLE;
    }
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "vkgrad",
                              .pEngineName = "vkgrad", .apiVersion = VK_API_VERSION_1_1 };
    VkInstanceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app };
    r = vkCreateInstance(&ci, NULL, &inst);
    if (r != VK_SUCCESS) {
        *st = vkg_vk_fail(r, "vkCreateInstance");
        return VK_NULL_HANDLE;
    }
    volkLoadInstanceOnly(inst);
    *st = VKG_OK;
    return inst;
}

static int enumerate(VkInstance inst, vkg_device_info *out, int max, VkPhysicalDevice *pds) {
    uint32_t n = 0;
    if (vkEnumeratePhysicalDevices(inst, &n, NULL) != VK_SUCCESS) return -1;
    VkPhysicalDevice *all = calloc(n ? n : 1, sizeof *all);
    vkg_device_info *infos = calloc(n ? n : 1, sizeof *infos);
    if (!all || !infos) {
        free(all);
        free(infos);
        return -1;
    }
    vkEnumeratePhysicalDevices(inst, &n, all);
    for (uint32_t i = 0; i < n; i++) probe(all[i], (int)i, &infos[i]);
    int def = choose(infos, (int)n, NULL);
    if (def >= 0) infos[def].is_default = true;
    int count = (int)n < max ? (int)n : max;
    for (int i = 0; i < count; i++) {
        out[i] = infos[i];
        if (pds) pds[i] = all[i];
    }
    free(all);
    free(infos);
    return (int)n;
}

int vkg_device_list(vkg_device_info *out, int max) {
    if (vkg_ctx.initialized) return enumerate(vkg_ctx.instance, out, max, NULL);
    vkg_status st;
    VkInstance inst = temp_instance(&st);
    if (!inst) return -1;
    int n = enumerate(inst, out, max, NULL);
    vkDestroyInstance(inst, NULL);
    return n;
}

static const char *type_name(vkg_device_type t) {
    switch (t) {
    case VKG_DEVICE_DISCRETE: return "discrete GPU";
    case VKG_DEVICE_INTEGRATED: return "integrated GPU";
    case VKG_DEVICE_VIRTUAL: return "virtual GPU";
    case VKG_DEVICE_CPU: return "CPU";
    default: return "other";
    }
}

void vkg_device_line(const vkg_device_info *d, char *buf, size_t size) {
    uint64_t heap = 0;
    for (uint32_t i = 0; i < d->heap_count; i++)
        if (d->heap_device_local[i] && d->heap_size[i] > heap) heap = d->heap_size[i];
    snprintf(buf, size,
             "%s | %s | %s %s | Vulkan %u.%u.%u | subgroup %u | shared %u KiB | heap %.1f GiB | "
             "binding %llu MiB | fp16 %s | int8 %s | coopmat %s | %s memory",
             d->name, type_name(d->type), d->vendor, d->driver_name[0] ? d->driver_name : "?",
             VK_API_VERSION_MAJOR(d->api_version), VK_API_VERSION_MINOR(d->api_version),
             VK_API_VERSION_PATCH(d->api_version), d->subgroup_size, d->max_shared_memory / 1024,
             (double)heap / (1u << 30), (unsigned long long)(d->max_storage_buffer_range >> 20),
             d->fp16 ? "yes" : "no", d->int8 ? "yes" : "no", d->cooperative_matrix ? "yes" : "no",
             d->unified_memory ? "unified" : "discrete");
}

/* ---- validation messenger ------------------------------------------------------------------ */
static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)user;
    /* The loader's GENERAL notices are not findings; validation and performance warnings are. */
    if (severity < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) return VK_FALSE;
    if (!(type & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT)))
        return VK_FALSE;
    vkg_ctx.validation_messages++;
    const char *msg = data && data->pMessage ? data->pMessage : "(no message)";
    fprintf(stderr, "vkgrad: validation: %s\n", msg);
    if (vkg_ctx.validation_hook) vkg_ctx.validation_hook(msg, vkg_ctx.validation_user);
    return VK_FALSE;
}

uint64_t vkg_validation_message_count(void) { return vkg_ctx.validation_messages; }

void vkg_set_validation_hook(vkg_validation_hook hook, void *user) {
    vkg_ctx.validation_hook = hook;
    vkg_ctx.validation_user = user;
}

static bool env_true(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "off") != 0;
}

static bool layer_present(const char *name) {
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *l = calloc(n ? n : 1, sizeof *l);
    bool found = false;
    if (l) {
        vkEnumerateInstanceLayerProperties(&n, l);
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(l[i].layerName, name) == 0) found = true;
        free(l);
    }
    return found;
}

static vkg_status create_instance(void) {
    VkResult r = volkInitialize();
    if (r != VK_SUCCESS)
        return vkg_fail(VKG_ERR_NO_DEVICE, "no Vulkan loader found (install libvulkan1 and a driver, e.g. mesa-vulkan-drivers)");
    uint32_t iv = VK_API_VERSION_1_1;
    if (vkEnumerateInstanceVersion) vkEnumerateInstanceVersion(&iv);
    if (iv < VK_API_VERSION_1_1)
        return vkg_fail(VKG_ERR_NO_DEVICE, "the Vulkan loader offers version %u.%u; vkgrad needs 1.1",
                        VK_API_VERSION_MAJOR(iv), VK_API_VERSION_MINOR(iv));

    bool validate = vkg_ctx.desc.validate || vkg_ctx.desc.validate_sync;
    const char *layers[1];
    const char *exts[2];
    uint32_t nlayers = 0, nexts = 0;
    if (validate) {
        if (!layer_present("VK_LAYER_KHRONOS_validation"))
            return vkg_fail(VKG_ERR_NO_DEVICE, "validation asked for, but VK_LAYER_KHRONOS_validation is not installed "
                                               "(apt-get install vulkan-validationlayers)");
        layers[nlayers++] = "VK_LAYER_KHRONOS_validation";
        exts[nexts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "vkgrad",
                              .applicationVersion = VK_MAKE_API_VERSION(0, VKG_VERSION_MAJOR, VKG_VERSION_MINOR, VKG_VERSION_PATCH),
                              .pEngineName = "vkgrad", .apiVersion = iv >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : iv };
    VkValidationFeatureEnableEXT extra[] = { VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT,
                                             VK_VALIDATION_FEATURE_ENABLE_GPU_ASSISTED_EXT };
    VkValidationFeaturesEXT vf = { .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                   .enabledValidationFeatureCount = 2, .pEnabledValidationFeatures = extra };
    VkInstanceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                                .enabledLayerCount = nlayers, .ppEnabledLayerNames = layers,
                                .enabledExtensionCount = nexts, .ppEnabledExtensionNames = exts,
                                .pNext = vkg_ctx.desc.validate_sync ? &vf : NULL };
    r = vkCreateInstance(&ci, NULL, &vkg_ctx.instance);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreateInstance");
    volkLoadInstanceOnly(vkg_ctx.instance);

    if (validate) {
        VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = on_message };
        r = vkCreateDebugUtilsMessengerEXT(vkg_ctx.instance, &mi, NULL, &vkg_ctx.messenger);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreateDebugUtilsMessengerEXT");
    }
    return VKG_OK;
}

static vkg_status create_device(void) {
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(vkg_ctx.instance, &n, NULL);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkEnumeratePhysicalDevices");
    if (n == 0)
        return vkg_fail(VKG_ERR_NO_DEVICE, "no Vulkan device found (install mesa-vulkan-drivers for lavapipe, "
                                           "which runs Vulkan on the CPU)");
    vkg_device_info *infos = calloc(n, sizeof *infos);
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    if (!infos || !pds) {
        free(infos);
        free(pds);
        return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_init: out of host memory");
    }
    enumerate(vkg_ctx.instance, infos, (int)n, pds);
    const char *want = vkg_ctx.desc.device ? vkg_ctx.desc.device : getenv("VKG_DEVICE");
    int pick = choose(infos, (int)n, want);
    vkg_status st = VKG_OK;
    if (pick < 0) {
        char names[1024] = "";
        for (uint32_t i = 0; i < n; i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%u: %s", i ? ", " : "", i, infos[i].name);
        }
        st = vkg_fail(VKG_ERR_NO_DEVICE, "no Vulkan device matches \"%s\" (devices: %s)", want, names);
        goto done;
    }
    vkg_ctx.physical = pds[pick];
    vkg_ctx.info = infos[pick];
    vkg_ctx.info.is_default = infos[pick].is_default;
    if (vkg_ctx.info.api_version < VK_API_VERSION_1_1) {
        st = vkg_fail(VKG_ERR_NO_DEVICE, "%s supports Vulkan %u.%u; vkgrad needs 1.1", vkg_ctx.info.name,
                      VK_API_VERSION_MAJOR(vkg_ctx.info.api_version), VK_API_VERSION_MINOR(vkg_ctx.info.api_version));
        goto done;
    }
    vkGetPhysicalDeviceMemoryProperties(vkg_ctx.physical, &vkg_ctx.memprops);

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vkg_ctx.physical, &nq, NULL);
    VkQueueFamilyProperties qf[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(vkg_ctx.physical, &nq, qf);
    int family = -1;
    for (uint32_t i = 0; i < nq; i++) /* prefer a compute queue without graphics: less contention */
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && (family < 0 || !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)))
            if (family < 0 || (qf[family].queueFlags & VK_QUEUE_GRAPHICS_BIT)) family = (int)i;
    if (family < 0) {
        st = vkg_fail(VKG_ERR_NO_DEVICE, "%s has no compute queue", vkg_ctx.info.name);
        goto done;
    }
    vkg_ctx.queue_family = (uint32_t)family;
    if (!qf[family].timestampValidBits) vkg_ctx.info.timestamp_period = 0.0f;

    const char *exts[4];
    uint32_t nexts = 0;
    /* GPU-assisted validation in layers of this era does not track push descriptors and reports
     * every binding as uninitialized (Vulkan-ValidationLayers issue 5321): use pooled sets then. */
    bool push = vkg_ctx.info.push_descriptor && !vkg_ctx.desc.no_push_descriptor && !vkg_ctx.desc.validate_sync;
    vkg_ctx.info.push_descriptor = push;
    if (push) exts[nexts++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    /* A texel view spans its whole block (vkg_dispatch_desc.texel), and synchronization validation
     * counts a dispatch as reading all of it, so every write elsewhere in the block, which the
     * stream rightly orders by byte range, was reported as a hazard: storage buffers then. */
    if (vkg_ctx.desc.validate_sync) vkg_ctx.info.texel_buffers = false;
    /* Memory-bound kernels read through texel views where that is the faster path. On lavapipe it
     * is: llvmpipe (Mesa 22.3) loads a storage buffer one lane at a time, in a loop with a bounds
     * branch per element, while a texel fetch is one gather; bench/'s "peak/copy 64MiB texel
     * read" measures it (3.1-3.2x the storage copy on an AMD EPYC, see bench/README.md). GPUs
     * load storage buffers at full width and keep them. VKG_TEXEL_READS=0 or 1 overrides. */
    const char *tr = getenv("VKG_TEXEL_READS");
    vkg_ctx.texel_reads = vkg_ctx.info.texel_buffers &&
                          (tr && *tr ? strcmp(tr, "0") != 0 : vkg_ctx.info.type == VKG_DEVICE_CPU);
    vkg_ctx.has_creation_feedback = vkg_ctx.info.api_version >= VK_API_VERSION_1_3;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                    .queueFamilyIndex = vkg_ctx.queue_family, .queueCount = 1, .pQueuePriorities = &prio };
    /* shaderFloat16 is enabled where the device has it (core since 1.2), so f16 shaders can run */
    if (vkg_ctx.info.api_version < VK_API_VERSION_1_2) vkg_ctx.info.fp16 = false;
    VkPhysicalDeviceShaderFloat16Int8Features f16_on = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .shaderFloat16 = VK_TRUE };
    /* The tensor-core matmul (shaders/matmul_coopmat.comp, f16 x f16 -> f32): Debian's glslang
     * has GL_NV_cooperative_matrix (not yet the KHR form), so the kernel runs where the device
     * offers VK_NV_cooperative_matrix with a 16x16x16 subgroup shape of those types, subgroups
     * of 32 and the features its SPIR-V declares: 16-bit storage, float16 arithmetic and the
     * Vulkan memory model, with device scope (with the model on, every other shader's
     * device-scope atomics need it: the H100's validation layer said so). VKG_NO_COOPMAT=1
     * leaves it off (comparisons). */
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cm_have = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV };
    VkPhysicalDeviceVulkanMemoryModelFeatures vmm_have = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES,
                                                           .pNext = &cm_have };
    VkPhysicalDeviceFeatures2 f2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &vmm_have };
    const char *no_cm = getenv("VKG_NO_COOPMAT");
    vkg_ctx.coopmat_nv = false;
    if (vkg_ctx.info.cooperative_matrix && vkGetPhysicalDeviceCooperativeMatrixPropertiesNV && vkg_ctx.info.fp16 &&
        vkg_ctx.info.storage16 && vkg_ctx.info.subgroup_size == 32 && !(no_cm && *no_cm && strcmp(no_cm, "0") != 0)) {
        vkGetPhysicalDeviceFeatures2(vkg_ctx.physical, &f2);
        uint32_t ncm = 0;
        vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(vkg_ctx.physical, &ncm, NULL);
        VkCooperativeMatrixPropertiesNV *cmp = calloc(ncm ? ncm : 1, sizeof *cmp);
        for (uint32_t i = 0; cmp && i < ncm; i++) cmp[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
        if (cmp) vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(vkg_ctx.physical, &ncm, cmp);
        for (uint32_t i = 0; cmp && i < ncm; i++)
            if (cmp[i].MSize == 16 && cmp[i].NSize == 16 && cmp[i].KSize == 16 && cmp[i].scope == VK_SCOPE_SUBGROUP_NV &&
                cmp[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV && cmp[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                cmp[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV && cmp[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV)
                vkg_ctx.coopmat_nv = cm_have.cooperativeMatrix && vmm_have.vulkanMemoryModel &&
                                     vmm_have.vulkanMemoryModelDeviceScope;
        free(cmp);
    }
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cm_on = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                          .cooperativeMatrix = VK_TRUE };
    VkPhysicalDeviceVulkanMemoryModelFeatures vmm_on = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES,
                                                         .pNext = &cm_on, .vulkanMemoryModel = VK_TRUE,
                                                         .vulkanMemoryModelDeviceScope = VK_TRUE };
    VkPhysicalDevice16BitStorageFeatures s16_on = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
                                                    .pNext = &vmm_on, .storageBuffer16BitAccess = VK_TRUE };
    if (vkg_ctx.coopmat_nv) {
        f16_on.pNext = &s16_on;
        exts[nexts++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    }
    /* arrays of storage buffers indexed by a workgroup-uniform value: the optimizer's
     * multi-tensor step (lib/optim/optim.c); without the feature it steps one tensor a dispatch */
    VkPhysicalDeviceFeatures have, on = { 0 };
    vkGetPhysicalDeviceFeatures(vkg_ctx.physical, &have);
    on.shaderStorageBufferArrayDynamicIndexing = have.shaderStorageBufferArrayDynamicIndexing;
    VkDeviceCreateInfo dci = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                               .pQueueCreateInfos = &qci, .enabledExtensionCount = nexts, .ppEnabledExtensionNames = exts,
                               .pNext = vkg_ctx.info.fp16 ? &f16_on : NULL, .pEnabledFeatures = &on };
    r = vkCreateDevice(vkg_ctx.physical, &dci, NULL, &vkg_ctx.device);
    if (r != VK_SUCCESS) {
        st = vkg_vk_fail(r, "vkCreateDevice");
        goto done;
    }
    volkLoadDevice(vkg_ctx.device);
    vkGetDeviceQueue(vkg_ctx.device, vkg_ctx.queue_family, 0, &vkg_ctx.queue);

    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(vkg_ctx.physical, &p);
    vkg_ctx.storage_align = p.limits.minStorageBufferOffsetAlignment;
    if (vkg_ctx.storage_align < 16) vkg_ctx.storage_align = 16;
    /* every descriptor of a dispatch is pushed (or in one set): the stage and set limits bound
     * the total, and VK_KHR_push_descriptor guarantees 32 */
    uint32_t most = p.limits.maxPerStageDescriptorStorageBuffers;
    if (p.limits.maxDescriptorSetStorageBuffers < most) most = p.limits.maxDescriptorSetStorageBuffers;
    if (most > VKG_MAX_DESCRIPTORS) most = VKG_MAX_DESCRIPTORS;
    vkg_ctx.max_descriptors = on.shaderStorageBufferArrayDynamicIndexing ? most : 0;
    vkg_ctx.max_texels = p.limits.maxTexelBufferElements;
done:
    free(infos);
    free(pds);
    return st;
}

static vkg_log_level parse_log(void) {
    const char *v = getenv("VKG_LOG");
    if (!v) return VKG_LOG_WARN;
    if (strcmp(v, "error") == 0) return VKG_LOG_ERROR;
    if (strcmp(v, "info") == 0) return VKG_LOG_INFO;
    if (strcmp(v, "debug") == 0) return VKG_LOG_DEBUG;
    return VKG_LOG_WARN;
}

static uint64_t context_serial;
uint64_t vkg_context_serial(void) { return context_serial; }

vkg_status vkg_init(const vkg_init_desc *desc) {
    if (vkg_ctx.initialized) return vkg_fail(VKG_ERR_INVALID, "vkg_init: already initialized (call vkg_shutdown first)");
    vkg_validation_hook hook = vkg_ctx.validation_hook;
    void *hook_user = vkg_ctx.validation_user;
    memset(&vkg_ctx, 0, sizeof vkg_ctx);
    vkg_ctx.validation_hook = hook;
    vkg_ctx.validation_user = hook_user;
    if (desc) vkg_ctx.desc = *desc;
    vkg_ctx.log = parse_log();
    const char *val = getenv("VKG_VALIDATE");
    if (val && strcmp(val, "full") == 0) vkg_ctx.desc.validate_sync = true;
    else if (env_true("VKG_VALIDATE")) vkg_ctx.desc.validate = true;
    if (env_true("VKG_FORCE_STAGING")) vkg_ctx.desc.force_staging = true;
    if (env_true("VKG_NO_PUSH_DESCRIPTOR")) vkg_ctx.desc.no_push_descriptor = true;
    vkg_ctx.sync_mode = env_true("VKG_SYNC");
    vkg_ctx.stats_mode = env_true("VKG_STATS");
    const char *batch = getenv("VKG_BATCH");
    vkg_ctx.batch_limit = batch ? (uint32_t)strtoul(batch, NULL, 10) : 0;
    if (vkg_ctx.batch_limit == 0) vkg_ctx.batch_limit = 1024;

    vkg_status st = create_instance();
    if (st == VKG_OK) st = create_device();
    vkg_ctx.initialized = (st == VKG_OK); /* the parts below need the device; shutdown undoes any */
    vkg_grid_reset();
    if (st == VKG_OK) st = vkg_stream_init();
    if (st == VKG_OK) st = vkg_pipelines_init();
    if (st == VKG_OK) st = vkg_profile_init();
    if (st != VKG_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vkg_last_error());
        vkg_ctx.initialized = true;
        vkg_shutdown();
        vkg_clear_error();
        return vkg_fail(st, "%s", msg);
    }
    context_serial++;
    char line[768];
    vkg_device_line(&vkg_ctx.info, line, sizeof line);
    vkg_log_msg(VKG_LOG_INFO, "device %d: %s", vkg_ctx.info.index, line);
    return VKG_OK;
}

void vkg_shutdown(void) {
    if (!vkg_ctx.initialized) return;
    if (vkg_ctx.device) {
        vkg_explain_why("vkg_shutdown");
        vkg_stream_flush();
        vkDeviceWaitIdle(vkg_ctx.device);
    }
    if (vkg_ctx.stats_mode) vkg_stats_print(stderr);
    vkg_profile_shutdown();
    vkg_tensors_free_all();
    vkg_pipelines_shutdown();
    vkg_stream_shutdown();
    vkg_allocator_shutdown();
    vkg_recyclers_drain();
    if (vkg_ctx.device) vkDestroyDevice(vkg_ctx.device, NULL);
    if (vkg_ctx.messenger) vkDestroyDebugUtilsMessengerEXT(vkg_ctx.instance, vkg_ctx.messenger, NULL);
    if (vkg_ctx.instance) vkDestroyInstance(vkg_ctx.instance, NULL);
    vkg_validation_hook hook = vkg_ctx.validation_hook;
    void *user = vkg_ctx.validation_user;
    uint64_t messages = vkg_ctx.validation_messages;
    memset(&vkg_ctx, 0, sizeof vkg_ctx);
    /* Messages at vkDestroyDevice (leaked objects) must still reach the test that asks. */
    vkg_ctx.validation_hook = hook;
    vkg_ctx.validation_user = user;
    vkg_ctx.validation_messages = messages;
}
