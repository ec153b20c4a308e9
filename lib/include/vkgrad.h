/* vkgrad — tensors whose ops run as SPIR-V compute shaders through Vulkan.
 *
 *   vkg_init(&(vkg_init_desc){ 0 });                        // best device, or VKG_DEVICE
 *   vkg_scope_begin();
 *   vkg_tensor *x = vkg_from_data(VKG_SHAPE(2, 3), (float[]){ 1, 2, 3, 4, 5, 6 });
 *   vkg_tensor *y = vkg_sum(vkg_relu(vkg_sub_scalar(x, 2.0f)), 1, false);   // (2,)
 *   float out[2];
 *   if (vkg_tensor_read(y, out, sizeof out) != VKG_OK) puts(vkg_last_error());
 *   vkg_scope_end();                                         // frees x, y and the temporaries
 *   vkg_shutdown();
 *
 * Ops return at once: their dispatches are recorded into a command buffer that is submitted
 * when the host needs data (read back), on vkg_sync(), or when a work budget is reached.
 * Misuse never crashes: an op returns NULL and vkg_last_error() says why; an op given a NULL
 * input returns NULL without a new message, so one check at the end of a chain is enough.
 * Threads: the library holds one device context per process; call it from one thread at a time
 * (only vkg_last_error() is kept per thread). */
#ifndef VKGRAD_H
#define VKGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VKG_VERSION_MAJOR 0
#define VKG_VERSION_MINOR 1
#define VKG_VERSION_PATCH 0
#define VKG_VERSION_STRING "0.1.0"

/* ---- status and errors ------------------------------------------------------------------ */
typedef enum vkg_status {
    VKG_OK = 0,
    VKG_ERR_INVALID,          /* misuse: bad shape, axis, dtype, NULL argument            */
    VKG_ERR_NOT_INITIALIZED,  /* vkg_init has not succeeded                                */
    VKG_ERR_NO_DEVICE,        /* no Vulkan loader, no device, or no device matching        */
    VKG_ERR_OUT_OF_MEMORY,    /* host or device memory exhausted                           */
    VKG_ERR_TOO_LARGE,        /* larger than one storage binding can address               */
    VKG_ERR_DEVICE_LOST,      /* the device was lost; shut down and start again            */
    VKG_ERR_VULKAN,           /* any other Vulkan failure                                  */
    VKG_ERR_IO,               /* a file could not be opened, read or written               */
    VKG_ERR_FORMAT,           /* a file's contents are malformed                           */
} vkg_status;

/* The message of the last failure on this thread ("" if none), naming the op and shapes. */
const char *vkg_last_error(void);
vkg_status vkg_last_status(void);
void vkg_clear_error(void);
const char *vkg_status_name(vkg_status st);

/* Called once per new failure. The default prints "vkgrad: <message>" to stderr. */
typedef void (*vkg_error_handler)(vkg_status st, const char *message, void *user);
void vkg_set_error_handler(vkg_error_handler handler, void *user); /* NULL: the default */
void vkg_error_handler_silent(vkg_status st, const char *message, void *user);

/* ---- runtime ------------------------------------------------------------------------------ */
typedef struct vkg_init_desc {
    const char *device;       /* index or name substring; NULL: VKG_DEVICE, else the best   */
    bool validate;            /* Khronos validation layer + messenger (or VKG_VALIDATE=1)    */
    bool validate_sync;       /* + synchronization and GPU-assisted validation (VKG_VALIDATE=full) */
    bool force_staging;       /* use the discrete-GPU staging path even on unified memory    */
    bool no_push_descriptor;  /* use pooled descriptor sets even where push descriptors exist */
    bool no_pipeline_cache;   /* neither load nor save the on-disk pipeline cache           */
    const char *cache_dir;    /* NULL: $XDG_CACHE_HOME/vkgrad, else ~/.cache/vkgrad         */
} vkg_init_desc;

vkg_status vkg_init(const vkg_init_desc *desc);  /* NULL desc: all defaults */
void vkg_shutdown(void);                          /* frees every tensor, saves the caches */
bool vkg_is_initialized(void);
vkg_status vkg_sync(void);                        /* submit what is recorded and wait      */

typedef enum vkg_device_type {
    VKG_DEVICE_OTHER = 0, VKG_DEVICE_INTEGRATED, VKG_DEVICE_DISCRETE, VKG_DEVICE_VIRTUAL, VKG_DEVICE_CPU
} vkg_device_type;

typedef struct vkg_device_info {
    int index;                        /* in vkEnumeratePhysicalDevices order               */
    char name[256];
    char driver_name[256];
    char driver_info[256];
    char vendor[32];                  /* "NVIDIA", "AMD", "Intel", "Mesa/CPU", ...          */
    uint32_t vendor_id, device_id;
    vkg_device_type type;
    uint32_t api_version, driver_version;
    uint8_t device_uuid[16], pipeline_cache_uuid[16];
    uint32_t subgroup_size;
    uint32_t max_shared_memory;        /* bytes per workgroup                               */
    uint32_t max_workgroup_size[3], max_workgroup_invocations;
    uint32_t max_workgroup_count[3];
    uint64_t max_storage_buffer_range; /* bytes one binding can address                     */
    uint64_t max_allocation_size;
    uint32_t max_allocation_count;
    uint32_t max_push_constants;
    bool fp16, int8, fp64, storage16;   /* shaderFloat16, shaderInt8, shaderFloat64, 16-bit storage */
    bool cooperative_matrix;           /* VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix */
    bool push_descriptor;              /* VK_KHR_push_descriptor                            */
    bool unified_memory;               /* a device-local, host-visible, coherent type       */
    float timestamp_period;            /* ns per timestamp tick; 0: no timestamps           */
    uint32_t heap_count;
    uint64_t heap_size[16];
    bool heap_device_local[16];
    bool is_default;                   /* what vkg_init would choose with no option        */
    uint32_t max_loop_iterations;      /* loop iterations one shader invocation may run in all
                                          before the driver ends its loops; 0: no limit known
                                          (lavapipe/llvmpipe: 65535)                         */
    uint64_t max_tensor_bytes;         /* the largest tensor one storage holds: the binding
                                          range and the allocation size, whichever is less,
                                          rounded down to the binding offset alignment       */
    bool texel_buffers;                /* R32G32B32A32_SFLOAT uniform texel buffers: the
                                          register-blocked matmul reads its operands so, and
                                          on CPU devices the memory-bound kernels their inputs
                                          (off under synchronization validation)             */
} vkg_device_info;

/* Every device the loader sees (no vkg_init needed). Returns the count, or -1 with an error. */
int vkg_device_list(vkg_device_info *out, int max);
/* The device in use (after vkg_init). */
const vkg_device_info *vkg_device(void);
/* One line: "llvmpipe (LLVM 15.0.6, 256 bits) | CPU | Mesa/CPU | Vulkan 1.3.230 | ..." */
void vkg_device_line(const vkg_device_info *d, char *buf, size_t size);

typedef struct vkg_memory_stats {
    uint64_t in_use;            /* bytes held by live tensors                               */
    uint64_t cached;            /* bytes allocated from Vulkan but free for reuse           */
    uint64_t peak;              /* highest in_use so far                                    */
    uint64_t device_bytes;      /* bytes allocated from Vulkan                              */
    uint32_t allocations;       /* live VkDeviceMemory objects                              */
} vkg_memory_stats;
vkg_memory_stats vkg_memory_stats_get(void);
void vkg_memory_empty_cache(void);  /* give blocks with no live tensor back to Vulkan */

typedef struct vkg_stream_stats {
    uint64_t submits, dispatches, barriers, waits;
    uint64_t bytes_uploaded, bytes_read_back;
    uint64_t pipelines_created, pipelines_from_cache;  /* from cache: the driver reported a hit */
    uint64_t pipeline_cache_loaded;    /* bytes of driver cache data loaded from disk at init   */
} vkg_stream_stats;
vkg_stream_stats vkg_stream_stats_get(void);
/* The VKG_STATS=1 report, printed at vkg_shutdown when the variable is set. */
void vkg_stats_print(void *file /* FILE* */);

/* Validation messages (warnings or errors) seen since vkg_init, and a hook for each one. */
uint64_t vkg_validation_message_count(void);
typedef void (*vkg_validation_hook)(const char *message, void *user);
void vkg_set_validation_hook(vkg_validation_hook hook, void *user);

/* ---- tensors ------------------------------------------------------------------------------ */
#define VKG_MAX_DIMS 8

/* VKG_F16 is IEEE binary16, 2 bytes an element (host data as uint16_t bits). It is a storage
 * type on every device: shaders read and write it as packed halves in 32-bit words with integer
 * bit conversions (no storageBuffer16BitAccess, no shaderFloat16 needed), and compute in f32.
 * Only vkg_to_dtype (f32 <-> f16), vkg_copy/vkg_contiguous, views, read-back, write,
 * checkpoints and vkg_matmul (an f32 product: on the tensor cores where the device has
 * VK_NV_cooperative_matrix, else widened to f32) take f16 tensors; every other op takes f32 and
 * refuses f16 with a message. */
typedef enum vkg_dtype { VKG_F32 = 0, VKG_I32, VKG_U8, VKG_F16, VKG_DTYPE_COUNT } vkg_dtype;

typedef struct vkg_shape {
    int ndim;
    int64_t d[VKG_MAX_DIMS];
} vkg_shape;

#define VKG_SHAPE_N_(...) ((int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)))
/* VKG_SHAPE(2, 3) is a 2x3 shape; VKG_SCALAR is the 0-d shape of one element. */
#define VKG_SHAPE(...) ((vkg_shape){ .ndim = VKG_SHAPE_N_(__VA_ARGS__), .d = { __VA_ARGS__ } })
#define VKG_SCALAR ((vkg_shape){ .ndim = 0 })

typedef struct vkg_tensor vkg_tensor;

vkg_tensor *vkg_empty(vkg_shape shape);                         /* f32, contents undefined */
vkg_tensor *vkg_empty_dtype(vkg_shape shape, vkg_dtype dtype);
vkg_tensor *vkg_empty_like(const vkg_tensor *t);
vkg_tensor *vkg_zeros(vkg_shape shape);
vkg_tensor *vkg_ones(vkg_shape shape);
vkg_tensor *vkg_full(vkg_shape shape, float value);
vkg_tensor *vkg_arange(float start, float stop, float step);   /* [start, stop) like numpy */
vkg_tensor *vkg_from_data(vkg_shape shape, const float *data);
vkg_tensor *vkg_from_data_dtype(vkg_shape shape, vkg_dtype dtype, const void *data);
vkg_tensor *vkg_scalar(float value);                            /* 0-d */

/* Copies the tensor (any view) to dst in row-major order; dst_bytes must fit it. Waits. */
vkg_status vkg_tensor_read(const vkg_tensor *t, void *dst, size_t dst_bytes);
/* Overwrites a contiguous tensor's contents from host memory (stream-ordered). */
vkg_status vkg_tensor_write(vkg_tensor *t, const void *src, size_t src_bytes);
float vkg_item(const vkg_tensor *t);   /* the single element as float; NAN with an error */

int vkg_ndim(const vkg_tensor *t);
int64_t vkg_dim(const vkg_tensor *t, int axis);    /* negative axes count from the end */
vkg_shape vkg_tensor_shape(const vkg_tensor *t);
int64_t vkg_stride(const vkg_tensor *t, int axis); /* in elements */
int64_t vkg_numel(const vkg_tensor *t);
vkg_dtype vkg_tensor_dtype(const vkg_tensor *t);
bool vkg_is_contiguous(const vkg_tensor *t);
bool vkg_shares_storage(const vkg_tensor *a, const vkg_tensor *b);
/* "(2, 3)" into buf; returns buf. */
const char *vkg_shape_str(vkg_shape s, char *buf, size_t size);
int64_t vkg_shape_numel(vkg_shape s);
const char *vkg_dtype_name(vkg_dtype dt);
size_t vkg_dtype_size(vkg_dtype dt);

/* Ownership: every tensor made between begin and end is freed at end, except those passed to
 * vkg_keep, which move to the enclosing scope (or to no scope: freed by vkg_free/shutdown). */
void vkg_scope_begin(void);
void vkg_scope_end(void);
vkg_tensor *vkg_keep(vkg_tensor *t);
void vkg_free(vkg_tensor *t);
int vkg_scope_depth(void);

/* ---- views (share storage, no copy) -------------------------------------------------------- */
vkg_tensor *vkg_reshape(vkg_tensor *t, vkg_shape shape);   /* -1 infers one dim; copies only if a view is impossible */
vkg_tensor *vkg_view(vkg_tensor *t, vkg_shape shape);      /* like reshape, but refuses to copy */
vkg_tensor *vkg_transpose(vkg_tensor *t, int a, int b);
vkg_tensor *vkg_permute(vkg_tensor *t, const int *perm);   /* perm has ndim entries */
vkg_tensor *vkg_narrow(vkg_tensor *t, int axis, int64_t start, int64_t length);
vkg_tensor *vkg_slice(vkg_tensor *t, int axis, int64_t start, int64_t stop, int64_t step);
vkg_tensor *vkg_expand(vkg_tensor *t, vkg_shape shape);    /* size-1 dims to any size (stride 0) */
vkg_tensor *vkg_squeeze(vkg_tensor *t, int axis);          /* axis must have size 1 */
vkg_tensor *vkg_unsqueeze(vkg_tensor *t, int axis);
vkg_tensor *vkg_flatten(vkg_tensor *t);
vkg_tensor *vkg_contiguous(vkg_tensor *t);                 /* t itself when already contiguous */
vkg_tensor *vkg_copy(vkg_tensor *t);                       /* always a new contiguous tensor */

#include "vkgrad/ops.h"
#include "vkgrad/random.h"
#include "vkgrad/autograd.h"
#include "vkgrad/conv_ops.h"
#include "vkgrad/seq_ops.h"
#include "vkgrad/nn_ops.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"
#include "vkgrad/custom.h"
#include "vkgrad/graph.h"

#ifdef __cplusplus
}
#endif
#endif
