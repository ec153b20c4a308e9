/* Compute pipelines, made lazily on first use and keyed by (shader, specialization constants,
 * workgroup size), and the on-disk VkPipelineCache: one file per device UUID and driver
 * version under $XDG_CACHE_HOME/vkgrad (else ~/.cache/vkgrad). The file carries our own header
 * and a CRC; a corrupt or foreign file is ignored with a log line, never handed to the driver. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/runtime.h"

typedef struct vkg_pipeline_entry {
    char shader[32];
    const uint32_t *code;        /* a user shader (vkg_custom_dispatch), keyed by its address */
    VkShaderModule own_module;   /* the user shader's module                                  */
    uint32_t spec[VKG_MAX_SPEC];
    int nspec;
    uint32_t local_size;
    vkg_pipeline p;              /* p.lay: the binding counts, part of the key                */
} vkg_pipeline_entry;

/* Mirrored nowhere else: the layout of our cache file's header. */
typedef struct cache_header {
    char magic[8];                /* "VKGPIPE1" */
    uint32_t vendor_id, device_id, driver_version, header_size;
    uint8_t cache_uuid[16];
    uint64_t data_size;
    uint32_t crc;
    uint32_t reserved;
} cache_header;

static const char MAGIC[8] = { 'V', 'K', 'G', 'P', 'I', 'P', 'E', '1' };

/* ---- cache file ----------------------------------------------------------------------------- */
static bool cache_dir(char *out, size_t size) {
    const char *dir = vkg_ctx.desc.cache_dir;
    if (dir && *dir) return snprintf(out, size, "%s", dir) < (int)size;
    const char *xdg = getenv("XDG_CACHE_HOME");
    if (xdg && *xdg) return snprintf(out, size, "%s/vkgrad", xdg) < (int)size;
    const char *home = getenv("HOME");
    if (home && *home) return snprintf(out, size, "%s/.cache/vkgrad", home) < (int)size;
    return false;
}

static bool mkdirs(const char *path) {
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return false;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return false;
            *p = '/';
        }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST;
}

static void cache_path(void) {
    char dir[900];
    vkg_ctx.cache_path[0] = '\0';
    if (vkg_ctx.desc.no_pipeline_cache || getenv("VKG_NO_PIPELINE_CACHE") || !cache_dir(dir, sizeof dir)) return;
    char uuid[33];
    for (int i = 0; i < 16; i++) snprintf(uuid + 2 * i, 3, "%02x", vkg_ctx.info.device_uuid[i]);
    snprintf(vkg_ctx.cache_path, sizeof vkg_ctx.cache_path, "%s/pipelines-%s-%08x.bin", dir, uuid,
             vkg_ctx.info.driver_version);
}

/* Returns the driver's cache bytes if the file is ours, intact, and for this device; else NULL. */
static void *cache_load(size_t *size) {
    *size = 0;
    FILE *f = fopen(vkg_ctx.cache_path, "rb");
    if (!f) return NULL; /* first run: nothing to say */
    const char *why = NULL;
    cache_header h;
    void *data = NULL;
    if (fread(&h, sizeof h, 1, f) != 1) why = "shorter than its header";
    else if (memcmp(h.magic, MAGIC, sizeof MAGIC) != 0 || h.header_size != sizeof h) why = "not a vkgrad pipeline cache";
    else if (h.vendor_id != vkg_ctx.info.vendor_id || h.device_id != vkg_ctx.info.device_id ||
             h.driver_version != vkg_ctx.info.driver_version ||
             memcmp(h.cache_uuid, vkg_ctx.info.pipeline_cache_uuid, 16) != 0)
        why = "made by another device or driver";
    else if (h.data_size < 32 || h.data_size > ((uint64_t)1 << 30)) why = "has an implausible size";
    else if (!(data = malloc(h.data_size))) why = "too large to load";
    else if (fread(data, 1, h.data_size, f) != h.data_size) why = "truncated";
    else if (fgetc(f) != EOF) why = "has bytes past its data";
    else if (crc32(0L, data, (uInt)h.data_size) != h.crc) why = "fails its checksum";
    else {
        /* the driver's own header (VkPipelineCacheHeaderVersionOne) must match as well */
        uint32_t vk[4];
        memcpy(vk, data, sizeof vk);
        if (vk[0] < 32 || vk[1] != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || vk[2] != vkg_ctx.info.vendor_id ||
            vk[3] != vkg_ctx.info.device_id || memcmp((uint8_t *)data + 16, vkg_ctx.info.pipeline_cache_uuid, 16) != 0)
            why = "holds a driver header for another device";
    }
    fclose(f);
    if (why) {
        vkg_log_msg(VKG_LOG_WARN, "pipeline cache %s ignored: %s", vkg_ctx.cache_path, why);
        free(data);
        return NULL;
    }
    *size = h.data_size;
    return data;
}

static void cache_save(void) {
    if (!vkg_ctx.cache_path[0] || !vkg_ctx.cache_dirty || !vkg_ctx.pipeline_cache) return;
    size_t size = 0;
    if (vkGetPipelineCacheData(vkg_ctx.device, vkg_ctx.pipeline_cache, &size, NULL) != VK_SUCCESS || size == 0) return;
    void *data = malloc(size);
    if (!data) return;
    if (vkGetPipelineCacheData(vkg_ctx.device, vkg_ctx.pipeline_cache, &size, data) != VK_SUCCESS) {
        free(data);
        return;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", vkg_ctx.cache_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", vkg_ctx.cache_path);
    int fd = -1;
    FILE *f = NULL;
    cache_header h = { .header_size = sizeof h, .vendor_id = vkg_ctx.info.vendor_id, .device_id = vkg_ctx.info.device_id,
                       .driver_version = vkg_ctx.info.driver_version, .data_size = size,
                       .crc = (uint32_t)crc32(0L, data, (uInt)size) };
    memcpy(h.magic, MAGIC, sizeof MAGIC);
    memcpy(h.cache_uuid, vkg_ctx.info.pipeline_cache_uuid, 16);
    bool ok = mkdirs(dir) && (fd = mkstemp(tmp)) >= 0 && (f = fdopen(fd, "wb")) != NULL;
    if (ok) fd = -1;
    ok = ok && fwrite(&h, sizeof h, 1, f) == 1 && fwrite(data, 1, size, f) == size && fflush(f) == 0 &&
         fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = false;
    if (fd >= 0) close(fd);
    /* a half-written file never replaces a good one: write to a temporary name, then rename */
    if (ok && rename(tmp, vkg_ctx.cache_path) == 0) {
        vkg_log_msg(VKG_LOG_INFO, "pipeline cache saved: %s (%zu bytes)", vkg_ctx.cache_path, size);
    } else {
        vkg_log_msg(VKG_LOG_WARN, "pipeline cache %s not saved: %s", vkg_ctx.cache_path, strerror(errno));
        unlink(tmp);
    }
    free(data);
}

/* ---- layouts and pipelines ------------------------------------------------------------------ */
/* The layout of nbind bindings with count[b] descriptors each, those in the texel mask uniform
 * texel buffers, made on first use. */
static const vkg_layout *layout_for(uint32_t nbind, const uint8_t *count, uint32_t texel) {
    uint8_t c[VKG_MAX_BINDINGS] = { 0 };
    for (uint32_t i = 0; i < nbind; i++) c[i] = count && count[i] ? count[i] : 1;
    for (int i = 0; i < vkg_ctx.nlayouts; i++)
        if (vkg_ctx.layouts[i].nbind == nbind && vkg_ctx.layouts[i].texel == texel &&
            memcmp(vkg_ctx.layouts[i].count, c, sizeof c) == 0)
            return &vkg_ctx.layouts[i];
    if (vkg_ctx.nlayouts == VKG_MAX_LAYOUTS) {
        vkg_fail(VKG_ERR_INVALID, "more than %d descriptor set layouts", VKG_MAX_LAYOUTS);
        return NULL;
    }
    vkg_layout *l = &vkg_ctx.layouts[vkg_ctx.nlayouts];
    *l = (vkg_layout){ .nbind = nbind, .texel = texel };
    memcpy(l->count, c, sizeof c);
    VkDescriptorSetLayoutBinding b[VKG_MAX_BINDINGS];
    for (uint32_t i = 0; i < nbind; i++) {
        VkDescriptorType t = (texel >> i & 1) ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        b[i] = (VkDescriptorSetLayoutBinding){ .binding = i, .descriptorType = t, .descriptorCount = c[i],
                                               .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    }
    VkDescriptorSetLayoutCreateInfo li = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = vkg_ctx.info.push_descriptor ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
        .bindingCount = nbind, .pBindings = b };
    VkResult r = vkCreateDescriptorSetLayout(vkg_ctx.device, &li, NULL, &l->set);
    if (r != VK_SUCCESS) {
        vkg_vk_fail(r, "vkCreateDescriptorSetLayout");
        return NULL;
    }
    VkPushConstantRange pr = { VK_SHADER_STAGE_COMPUTE_BIT, 0, VKG_PUSH_SIZE };
    VkPipelineLayoutCreateInfo pi = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &l->set, .pushConstantRangeCount = 1, .pPushConstantRanges = &pr };
    r = vkCreatePipelineLayout(vkg_ctx.device, &pi, NULL, &l->pipe);
    if (r != VK_SUCCESS) {
        vkDestroyDescriptorSetLayout(vkg_ctx.device, l->set, NULL);
        vkg_vk_fail(r, "vkCreatePipelineLayout");
        return NULL;
    }
    vkg_ctx.nlayouts++;
    return l;
}

static int shader_index(const char *name) {
    for (int i = 0; vkg_shader_table[i].name; i++)
        if (strcmp(vkg_shader_table[i].name, name) == 0) return i;
    return -1;
}

static VkShaderModule module_for(const char *name) {
    int i = shader_index(name);
    if (i < 0) {
        vkg_fail(VKG_ERR_INVALID, "no shader named \"%s\" is built into vkgrad", name);
        return VK_NULL_HANDLE;
    }
    if (!vkg_ctx.modules[i]) {
        VkShaderModuleCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                        .codeSize = vkg_shader_table[i].size, .pCode = vkg_shader_table[i].code };
        VkResult r = vkCreateShaderModule(vkg_ctx.device, &ci, NULL, &vkg_ctx.modules[i]);
        if (r != VK_SUCCESS) {
            vkg_vk_fail(r, "vkCreateShaderModule");
            return VK_NULL_HANDLE;
        }
    }
    return vkg_ctx.modules[i];
}

/* A user's SPIR-V: checked before the driver sees it, since a bad module can crash a driver. */
static VkShaderModule user_module(const char *name, const uint32_t *code, size_t size) {
    if (size < 20 || size % 4 != 0 || code[0] != 0x07230203u) {
        vkg_fail(VKG_ERR_INVALID, "%s: the shader is not SPIR-V (%zu bytes; SPIR-V is a multiple of 4 bytes "
                                  "starting with the magic number 0x07230203)", name, size);
        return VK_NULL_HANDLE;
    }
    VkShaderModuleCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = size, .pCode = code };
    VkShaderModule m = VK_NULL_HANDLE;
    VkResult r = vkCreateShaderModule(vkg_ctx.device, &ci, NULL, &m);
    if (r != VK_SUCCESS) vkg_vk_fail(r, "vkCreateShaderModule");
    return m;
}

vkg_pipeline *vkg_pipeline_get(const char *shader, const uint32_t *code, size_t code_size, const uint32_t *spec,
                               int nspec, uint32_t local_size, uint32_t nbind, const uint8_t *count,
                               uint32_t texel) {
    if (nbind > VKG_MAX_BINDINGS || nspec > VKG_MAX_SPEC || strlen(shader) >= sizeof vkg_ctx.pipes->shader) {
        vkg_fail(VKG_ERR_INVALID, "pipeline %s: too many bindings or constants", shader);
        return NULL;
    }
    const vkg_layout *lay = layout_for(nbind, count, texel);
    if (!lay) return NULL;
    for (int i = 0; i < vkg_ctx.npipes; i++) {
        vkg_pipeline_entry *e = &vkg_ctx.pipes[i];
        if (e->code == code && e->local_size == local_size && e->p.lay == lay && e->nspec == nspec &&
            memcmp(e->spec, spec, (size_t)nspec * sizeof *spec) == 0 && strcmp(e->shader, shader) == 0)
            return &e->p;
    }
    VkShaderModule module = code ? user_module(shader, code, code_size) : module_for(shader);
    if (!module) return NULL;
    if (vkg_ctx.npipes == vkg_ctx.cappipes) {
        int cap = vkg_ctx.cappipes ? 2 * vkg_ctx.cappipes : 32;
        vkg_pipeline_entry *np = realloc(vkg_ctx.pipes, (size_t)cap * sizeof *np);
        if (!np) {
            if (code) vkDestroyShaderModule(vkg_ctx.device, module, NULL);
            vkg_fail(VKG_ERR_OUT_OF_MEMORY, "pipeline %s: out of host memory", shader);
            return NULL;
        }
        vkg_ctx.pipes = np;
        vkg_ctx.cappipes = cap;
    }
    VkSpecializationMapEntry map[VKG_MAX_SPEC + 1];
    uint32_t values[VKG_MAX_SPEC + 1];
    values[0] = local_size;
    map[0] = (VkSpecializationMapEntry){ 0, 0, 4 };
    for (int i = 0; i < nspec; i++) {
        values[i + 1] = spec[i];
        map[i + 1] = (VkSpecializationMapEntry){ (uint32_t)i + 1, (uint32_t)(i + 1) * 4, 4 };
    }
    VkSpecializationInfo si = { (uint32_t)nspec + 1, map, (size_t)(nspec + 1) * 4, values };
    VkPipelineCreationFeedback fb = { 0 };
    VkPipelineCreationFeedbackCreateInfo fci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_CREATION_FEEDBACK_CREATE_INFO,
                                                 .pPipelineCreationFeedback = &fb };
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .pNext = vkg_ctx.has_creation_feedback ? &fci : NULL,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                   .module = module, .pName = "main", .pSpecializationInfo = &si },
        .layout = lay->pipe };
    vkg_pipeline_entry *e = &vkg_ctx.pipes[vkg_ctx.npipes];
    memset(e, 0, sizeof *e);
    VkResult r = vkCreateComputePipelines(vkg_ctx.device, vkg_ctx.pipeline_cache, 1, &ci, NULL, &e->p.pipeline);
    if (r != VK_SUCCESS) {
        if (code) vkDestroyShaderModule(vkg_ctx.device, module, NULL);
        vkg_vk_fail(r, "vkCreateComputePipelines");
        return NULL;
    }
    snprintf(e->shader, sizeof e->shader, "%s", shader);
    e->code = code;
    e->own_module = code ? module : VK_NULL_HANDLE;
    memcpy(e->spec, spec, (size_t)nspec * sizeof *spec);
    e->nspec = nspec;
    e->local_size = local_size;
    e->p.layout = lay->pipe;
    e->p.lay = lay;
    vkg_ctx.npipes++;
    vkg_ctx.stats.pipelines_created++;
    if ((fb.flags & VK_PIPELINE_CREATION_FEEDBACK_VALID_BIT) &&
        (fb.flags & VK_PIPELINE_CREATION_FEEDBACK_APPLICATION_PIPELINE_CACHE_HIT_BIT))
        vkg_ctx.stats.pipelines_from_cache++;
    else
        vkg_ctx.cache_dirty = true;
    return &e->p;
}

vkg_status vkg_pipelines_init(void) {
    int n = 0;
    while (vkg_shader_table[n].name) n++;
    vkg_ctx.modules = calloc((size_t)n + 1, sizeof *vkg_ctx.modules);
    if (!vkg_ctx.modules) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_init: out of host memory");
    cache_path();
    size_t size = 0;
    void *data = vkg_ctx.cache_path[0] ? cache_load(&size) : NULL;
    VkPipelineCacheCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = size,
                                     .pInitialData = data };
    VkResult r = vkCreatePipelineCache(vkg_ctx.device, &ci, NULL, &vkg_ctx.pipeline_cache);
    free(data);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkCreatePipelineCache");
    vkg_ctx.stats.pipeline_cache_loaded = size;
    return VKG_OK;
}

void vkg_pipelines_shutdown(void) {
    if (!vkg_ctx.device) return;
    cache_save();
    for (int i = 0; i < vkg_ctx.npipes; i++) {
        vkDestroyPipeline(vkg_ctx.device, vkg_ctx.pipes[i].p.pipeline, NULL);
        if (vkg_ctx.pipes[i].own_module) vkDestroyShaderModule(vkg_ctx.device, vkg_ctx.pipes[i].own_module, NULL);
    }
    free(vkg_ctx.pipes);
    for (int i = 0; i < vkg_ctx.nlayouts; i++) {
        vkDestroyPipelineLayout(vkg_ctx.device, vkg_ctx.layouts[i].pipe, NULL);
        vkDestroyDescriptorSetLayout(vkg_ctx.device, vkg_ctx.layouts[i].set, NULL);
    }
    if (vkg_ctx.modules)
        for (int i = 0; vkg_shader_table[i].name; i++)
            if (vkg_ctx.modules[i]) vkDestroyShaderModule(vkg_ctx.device, vkg_ctx.modules[i], NULL);
    free(vkg_ctx.modules);
    if (vkg_ctx.pipeline_cache) vkDestroyPipelineCache(vkg_ctx.device, vkg_ctx.pipeline_cache, NULL);
}
