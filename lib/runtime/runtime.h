/* The runtime's internal state: one Vulkan device per process (DESIGN.md), its memory
 * sub-allocator, the batched command stream with hazard tracking, and the pipeline cache.
 * Only the library includes this; the public API is vkgrad.h. */
#ifndef VKG_RUNTIME_H
#define VKG_RUNTIME_H

#include <stdio.h>
#include <volk.h>

#include "runtime/error.h"
#include "vkgrad.h"

#define VKG_FRAMES 3             /* command buffers in flight                                  */
#define VKG_MAX_BINDINGS 16
#define VKG_MAX_DESCRIPTORS 32   /* storage buffers one dispatch binds: the push-descriptor minimum */
#define VKG_MAX_LAYOUTS 64       /* distinct descriptor set layouts (binding counts, arrays, texel views) */
#define VKG_PUSH_SIZE 128        /* every pipeline layout has one 128-byte push-constant range */
#define VKG_MAX_SPEC 8           /* specialization constants 1..8 (0 is the workgroup size)    */

/* ---- recycled host structs (recycle.c) ------------------------------------------------------ */
/* A free list of structs of one size (size >= sizeof(void *)); single-threaded like the rest.
 * One per kind: vkg_spare_tensors, vkg_spare_storage, vkg_spare_nodes (declared below the types). */
typedef struct vkg_recycler {
    void *head;
    int count;
    size_t size;
} vkg_recycler;
void *vkg_recycled_calloc(vkg_recycler *r); /* zeroed, like calloc(1, r->size); NULL when out of memory */
void vkg_recycle(vkg_recycler *r, void *p); /* p from vkg_recycled_calloc(r), or NULL; freed after vkg_shutdown */
void vkg_recyclers_drain(void);             /* frees what every list keeps (vkg_shutdown) */

/* ---- the command pool's host allocator (cmdmem.c) -------------------------------------------- */
/* Size-class free lists for the driver's per-command host memory; one per command pool, used
 * on one thread. vkg_cmdmem_callbacks(NULL) is NULL: the driver's own allocator. */
typedef struct vkg_cmdmem vkg_cmdmem;
vkg_cmdmem *vkg_cmdmem_new(void); /* NULL when out of memory */
const VkAllocationCallbacks *vkg_cmdmem_callbacks(const vkg_cmdmem *m);
size_t vkg_cmdmem_held(const vkg_cmdmem *m); /* bytes it holds for the driver */
bool vkg_cmdmem_ready(vkg_cmdmem *m);         /* false: out of host memory, record nothing */
void vkg_cmdmem_fail_slabs(vkg_cmdmem *m, int n); /* tests: the next n slabs fail as if out of memory */
void vkg_cmdmem_free(vkg_cmdmem *m);         /* after the pool that used it is destroyed */

/* ---- memory ------------------------------------------------------------------------------- */
typedef struct vkg_range {
    VkDeviceSize off, size;
    uint64_t serial;             /* the batch that last used these bytes (0: never)            */
} vkg_range;

typedef struct vkg_block {
    VkDeviceMemory memory;
    VkBuffer buffer;             /* one buffer over the whole block; tensors bind ranges of it */
    VkDeviceSize size, used;
    uint8_t *mapped;             /* unified memory only                                        */
    vkg_range *free;             /* sorted by offset, coalesced                                */
    int nfree, capfree;
    uint32_t live;               /* live sub-allocations                                       */
    VkBufferView texel_view;     /* RGBA32F view of the whole block, made on first use (stream.c) */
    VkBufferView texel_view_r32; /* R32F view of the same, made on first use (dispatch texel_r32)   */
} vkg_block;

/* Device bytes behind one or more tensors (views share it). */
typedef struct vkg_storage {
    vkg_block *block;
    VkDeviceSize off, size;
    int refs;
    uint64_t last_serial;        /* batch that last bound it                                   */
    uint64_t written_serial;     /* batch that last wrote it (0: written by the host)          */
    uint64_t capture_born;       /* the graph capture that made it and no host wrote (graph.c) */
    bool leaf_grad;              /* a leaf's gradient holds it: no other leaf may (autograd.c)  */
} vkg_storage;

vkg_storage *vkg_storage_new(VkDeviceSize bytes, bool host_write, const char *what);
/* The same for a tensor: messages name "op: tensor (shape) dtype", formatted only on failure. */
vkg_storage *vkg_storage_new_tensor(VkDeviceSize bytes, bool host_write, const char *op, vkg_shape shape,
                                    vkg_dtype dtype);
void vkg_storage_release(vkg_storage *s);
vkg_status vkg_allocator_init(void);
void vkg_allocator_shutdown(void);

/* ---- tensors (internal view) ---------------------------------------------------------------- */
/* Whether two shapes are the same (ndim and every dim). */
static inline bool vkg_shape_eq(const vkg_shape *a, const vkg_shape *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

/* Graph nodes are data, like ggml's: an op records what it did (op, inputs, parameters) on its
 * output; the autograd layer (lib/autograd) interprets them. Ops never include autograd. */
enum {                               /* node ops that are views, beyond the op table's codes */
    VKG_NODE_RESHAPE = 1000,         /* reshape, view, flatten, squeeze, unsqueeze        */
    VKG_NODE_PERMUTE,                /* permute, transpose                                */
    VKG_NODE_EXPAND,
    VKG_NODE_SLICE,                  /* slice, narrow                                     */
    VKG_NODE_DETACHED,               /* never recorded: a marker for messages             */
};

#define VKG_NODE_MAX_IN 8   /* concat chains past it; attention and the LSTM cell keep saved tensors here */
#define VKG_AXIS_ALL (-1000)

typedef struct vkg_node {
    int op;                          /* a vkg_op, or a VKG_NODE_* view                    */
    int nin;
    struct vkg_tensor *in[VKG_NODE_MAX_IN]; /* referenced (refs held) until released      */
    float s;                         /* scalar parameter (pow exponent, scalar operand)   */
    bool scalar_form;                /* binary op with a scalar second operand           */
    int axis;                        /* reduction or slice axis, or VKG_AXIS_ALL          */
    bool keepdim;
    int64_t ip[VKG_MAX_DIMS];        /* permutation, or slice start/step                 */
    bool released;                   /* its inputs were let go by a backward              */
    int mark;                        /* traversal state during backward                   */
} vkg_node;

struct vkg_tensor {
    vkg_shape shape;
    int64_t strides[VKG_MAX_DIMS];   /* in elements                                           */
    int64_t offset;                  /* in elements, from the storage's start                  */
    vkg_dtype dtype;
    vkg_storage *storage;
    /* scope membership: a doubly linked list per scope level */
    struct vkg_tensor *prev, *next;
    int scope;
    /* lifetime: one reference for its owner (scope or user), one per graph node that uses it;
     * when the owner frees it, it is dead: its storage is released, the struct lingers until
     * no node refers to it, and a backward that needs it is refused */
    int refs;
    bool dead;
    /* autograd */
    bool requires_grad;
    struct vkg_tensor *grad;         /* accumulated gradient of a leaf (owned by this tensor) */
    vkg_node *node;                  /* what made it, when it requires grad                  */
    struct vkg_tensor *gacc;         /* gradient being accumulated during one backward       */
    bool gacc_private;               /* gacc was made by the engine for this tensor alone (no
                                        other tensor's gradient is it): a rule may add into it */
    bool gacc_preact;                /* gacc is already the gradient of the GELU's input z of the
                                        matmul_bias_act that made this tensor (its one consumer
                                        applied gelu'(z) in its product: lib/autograd/backward.c) */
};

extern vkg_recycler vkg_spare_tensors, vkg_spare_storage, vkg_spare_nodes;

/* Records the node of an op's output when grad mode is on and an input requires grad. in may
 * hold NULLs past nin. Returns the node (to fill parameters) or NULL when nothing is recorded. */
vkg_node *vkg_node_record(vkg_tensor *out, int op, vkg_tensor *const *in, int nin);
void vkg_node_release(vkg_node *n);   /* lets go of the inputs */
void vkg_tensor_unref(vkg_tensor *t);
/* Moves t into owner's scope level, so it lives as long as owner (gradients of leaves). */
void vkg_tensor_adopt(const vkg_tensor *owner, vkg_tensor *t);
/* Frees a tensor whoever owns it (an adopted gradient included); NULL and dead are ignored. */
void vkg_tensor_drop(vkg_tensor *t);
/* Whether t is contiguous (vkg_is_contiguous), and its element count, in one look at its shape. */
bool vkg_dense(const vkg_tensor *t, int64_t *numel);
/* Writes src into the (possibly strided) view dst of the same shape: copy.comp. */
vkg_status vkg_copy_into(vkg_tensor *dst, vkg_tensor *src);

vkg_tensor *vkg_tensor_alloc(vkg_shape shape, vkg_dtype dtype, bool host_write, const char *op);
vkg_tensor *vkg_tensor_view_of(vkg_tensor *base, vkg_shape shape, const int64_t *strides, int64_t offset);
void vkg_tensors_free_all(void);
/* Checks shape validity (ndim, non-negative dims); message names op. */
bool vkg_shape_check(vkg_shape s, const char *op);

/* ---- pipelines ---------------------------------------------------------------------------- */
/* A descriptor set layout and its pipeline layout: nbind bindings of storage buffers, binding b
 * an array of count[b] (1 for a plain binding), or a uniform texel buffer where bit b of texel
 * is set (vkg_dispatch_desc.texel). */
typedef struct vkg_layout {
    uint32_t nbind, texel;
    uint8_t count[VKG_MAX_BINDINGS];
    VkDescriptorSetLayout set;
    VkPipelineLayout pipe;
} vkg_layout;

typedef struct vkg_pipeline {
    VkPipeline pipeline;
    VkPipelineLayout layout;
    const vkg_layout *lay;
} vkg_pipeline;

/* count: nbind descriptor counts (NULL: one each); texel: the uniform texel buffer bindings */
vkg_pipeline *vkg_pipeline_get(const char *shader, const uint32_t *code, size_t code_size, const uint32_t *spec,
                               int nspec, uint32_t local_size, uint32_t nbind, const uint8_t *count,
                               uint32_t texel);
vkg_status vkg_pipelines_init(void);
void vkg_pipelines_shutdown(void);

/* ---- command stream ------------------------------------------------------------------------- */
typedef struct vkg_dispatch_desc {
    const char *shader;          /* "unary" -> shaders/unary.comp                               */
    vkg_op op;                   /* for stats and the debug mode                               */
    const char *name;            /* op name used in messages                                   */
    uint32_t spec[VKG_MAX_SPEC]; /* constant_id 1.. */
    int nspec;
    uint32_t local_size;         /* constant_id 0; 0 = 128                                     */
    uint32_t groups[3];          /* 0 in y/z = 1                                               */
    const vkg_tensor *bind[VKG_MAX_DESCRIPTORS]; /* the descriptors in binding order; ends at the
                                    first NULL. Binding i is bind[i] unless array is set        */
    uint8_t array[VKG_MAX_BINDINGS]; /* array[b] > 0: binding b is an array of that many storage
                                    buffers, the next array[b] of bind[] (a multi-tensor kernel) */
    int nout;                    /* the first nout descriptors are written, the rest only read  */
    const void *push;
    uint32_t push_size;
    uint32_t texel;              /* bit b: binding b (an input, no array) is bound as a uniform
                                    texel buffer, an RGBA32F view of its storage's whole block,
                                    which the shader indexes in texels from the block's start
                                    (vkg_texel_base); only where vkg_texel_ok says so         */
    uint32_t texel_r32;          /* bit b (also set in texel): that view is R32F instead, one
                                    texel a float, for gathers of single floats; only where
                                    vkg_texel_r32_ok says so                                   */
    double flops, bytes;         /* work done, for VKG_PROFILE; 0: estimated from the op       */
    const uint32_t *code;        /* a user shader's SPIR-V (vkg_custom_dispatch); NULL: the built-in
                                    shaders/<shader>.comp                                     */
    size_t code_size;            /* bytes                                                      */
} vkg_dispatch_desc;

/* Whether s can be bound as a uniform texel buffer (vkg_dispatch_desc.texel): the device reads
 * R32G32B32A32_SFLOAT texel buffers and s's block is within maxTexelBufferElements texels. */
bool vkg_texel_ok(const vkg_storage *s);
/* The same for an R32F view (vkg_dispatch_desc.texel_r32): the block within maxTexelBufferElements floats. */
bool vkg_texel_r32_ok(const vkg_storage *s);
/* The element index of s's first float counted from its block's start (texel bindings index
 * the whole block). */
static inline int64_t vkg_texel_base(const vkg_storage *s) { return (int64_t)(s->off / 4); }
vkg_status vkg_dispatch(const vkg_dispatch_desc *d);
/* Submit what is recorded (no wait). */
vkg_status vkg_stream_flush(void);
/* The command buffer being recorded (begun if none is), for commands outside vkg_dispatch. */
vkg_status vkg_stream_cmd(VkCommandBuffer *cmd);
/* Uploads bytes into storage at byte offset (stream-ordered: staging copy, or a direct write when
 * the bytes are not in use by unfinished work). */
vkg_status vkg_stream_upload(vkg_storage *s, VkDeviceSize off, const void *src, size_t bytes);
/* Waits for every dispatch that wrote s, then copies out. */
vkg_status vkg_stream_download(vkg_storage *s, VkDeviceSize off, void *dst, size_t bytes);
vkg_status vkg_stream_init(void);
void vkg_stream_shutdown(void);
/* Dispatch grids (runtime/grid.c). Kernels loop over their items with a grid stride; cost is an
 * upper bound on the loop iterations one item takes (1 for a plain elementwise body). The group
 * count keeps every invocation's loop iterations within vkg_loop_budget(). */
uint32_t vkg_groups_for(uint64_t n, uint32_t local_size);   /* cost VKG_COST_SMALL */
uint32_t vkg_groups_for_cost(uint64_t n, uint32_t local_size, uint64_t cost);
/* The most workgroups a grid dimension of device_limit gets (VKG_MAX_GROUPS lowers it: tests). */
uint32_t vkg_groups_cap(uint32_t device_limit);
#define VKG_COST_SMALL 16  /* a body with only a few short loops (strided index math, ndim <= 8) */
/* Loop iterations one invocation may run (UINT64_MAX: no limit). VKG_LOOP_BUDGET=N lowers it on
 * any device, so that tests reach the split paths at small sizes. */
uint64_t vkg_loop_budget(void);
/* VKG_OK when one item's loops (cost iterations) fit the budget, else a clear error naming the
 * op and what is too large. */
vkg_status vkg_loop_check(uint64_t cost, const char *op, const char *what);
void vkg_grid_reset(void);  /* vkg_init: read the device and the variables again */
/* A sum over rows terms (row_cost loop iterations each) for each of outputs outputs, split into
 * chunks whose partial sums a second pass adds in order: enough chunks that one fits the loop
 * budget and that outputs x chunks invocations fill the device. Returns the chunk count; *per
 * gets the rows of each chunk (the last may have fewer). */
uint64_t vkg_split_rows(uint64_t rows, uint64_t row_cost, uint64_t outputs, uint64_t *per);
/* Whether rows reductions (rows of R elements, r_stride apart along the row) should run a
 * workgroup per row rather than an invocation per row. */
bool vkg_rows_by_workgroup(uint64_t rows, uint64_t R, int64_t r_stride);

/* ---- the context ---------------------------------------------------------------------------- */
typedef enum vkg_log_level { VKG_LOG_ERROR = 0, VKG_LOG_WARN, VKG_LOG_INFO, VKG_LOG_DEBUG } vkg_log_level;

typedef struct vkg_frame {
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorPool *pools;     /* pooled descriptor path: one or more pools per frame        */
    int npools, cappools, pool_in_use;
    uint64_t serial;
    bool recording, in_flight;
    uint32_t dispatches;
    VkPipeline bound;            /* the pipeline last bound in cmd since it began: a dispatch with
                                    the same one binds nothing (on lavapipe every command recorded
                                    is an allocation, and freed when the buffer begins again)  */
} vkg_frame;

typedef struct vkg_access {
    const vkg_block *block;
    VkDeviceSize off, size;
    bool write;
} vkg_access;

typedef struct vkg_context {
    bool initialized, lost;
    vkg_init_desc desc;
    vkg_log_level log;
    bool sync_mode, stats_mode;
    uint32_t batch_limit;        /* dispatches per submit                                      */

    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    vkg_device_info info;
    VkPhysicalDeviceMemoryProperties memprops;
    VkDeviceSize storage_align;
    uint32_t max_descriptors;    /* storage buffers a dispatch may bind with arrays indexed per
                                    workgroup (0: no shaderStorageBufferArrayDynamicIndexing)  */
    bool has_creation_feedback;

    /* memory */
    uint32_t device_type_index, staging_type_index;
    bool map_storage;            /* storage is mapped (unified memory and no forced staging)   */
    uint64_t max_texels;         /* maxTexelBufferElements                                      */
    bool coopmat_nv;             /* the f16 tensor-core matmul runs here (context.c)             */
    bool texel_reads;            /* memory-bound kernels read through texel views (context.c)    */
    vkg_block **blocks;
    int nblocks, capblocks;
    VkDeviceSize block_size, heap_budget;
    vkg_memory_stats mem;

    /* staging ring (discrete GPUs, or forced) */
    VkDeviceMemory ring_memory;
    VkBuffer ring_buffer;
    uint8_t *ring_mapped;
    VkDeviceSize ring_size, ring_head;

    /* stream */
    VkCommandPool cmd_pool;
    vkg_cmdmem *cmd_mem;         /* the pool's host allocator                                  */
    vkg_frame frames[VKG_FRAMES];
    int cur;                     /* frame being recorded                                       */
    uint64_t next_serial, completed_serial;
    vkg_access *acc;             /* accesses since the last barrier                            */
    struct vkg_failed_batch { uint64_t serial; vkg_status why; } *failed; /* submits that failed:
                                    what those batches wrote is lost                           */
    int nfailed, capfailed;
    int nacc, capacc;
    vkg_stream_stats stats;

    /* pipelines */
    VkPipelineCache pipeline_cache;
    char cache_path[1024];
    bool cache_dirty;
    vkg_layout layouts[VKG_MAX_LAYOUTS];
    int nlayouts;
    struct vkg_pipeline_entry *pipes;
    int npipes, cappipes;
    VkShaderModule *modules;     /* per vkg_shader_table entry, made lazily                    */

    /* validation */
    uint64_t validation_messages;
    vkg_validation_hook validation_hook;
    void *validation_user;

    /* tensors: scope stacks */
    vkg_tensor **scope_heads;    /* head of the list at each level; level 0 = no scope       */
    int scope_depth, capscopes;
} vkg_context;

extern vkg_context vkg_ctx;

/* Whether a memory-bound kernel with a texel-read form (optim_step_tex, binary_vec4_tex, ...)
 * should read t through a view of its block, RGBA32F or (r32) R32F: the device's choice
 * (vkg_ctx.texel_reads) and the block within the view's limits. Its storage-buffer form runs
 * otherwise. */
static inline bool vkg_texel_read(const vkg_tensor *t, bool r32) {
    return vkg_ctx.texel_reads && t && (r32 ? vkg_texel_r32_ok(t->storage) : vkg_texel_ok(t->storage));
}
/* Binds the bindings of d in mask (inputs, one tensor each, no arrays) as texel views, R32F
 * for those also in r32 and RGBA32F for the others, if vkg_texel_read allows every one of them.
 * Returns whether it did: the caller then runs the kernel's texel-read module, those inputs'
 * offsets counted from their blocks' starts (vkg_texel_base). */
static inline bool vkg_texel_bind(vkg_dispatch_desc *d, uint32_t mask, uint32_t r32) {
    for (uint32_t b = 0; b < VKG_MAX_BINDINGS; b++)
        if ((mask >> b & 1) && !vkg_texel_read(d->bind[b], r32 >> b & 1)) return false;
    d->texel = mask;
    d->texel_r32 = r32 & mask;
    return true;
}
/* For a texel-read module: adds to *off[i] the texel base of binding first + i (its view counts
 * from the block's start); NULL entries are skipped. */
static inline void vkg_texel_rebase(const vkg_dispatch_desc *d, uint32_t first, uint32_t *const *off, int n) {
    for (int i = 0; i < n; i++)
        if (off[i]) *off[i] += (uint32_t)vkg_texel_base(d->bind[first + (uint32_t)i]->storage);
}
/* Counts successful vkg_init calls: state kept per context outside vkg_ctx (the matmul tuning
 * table) sees a new context, even one on the same device. */
uint64_t vkg_context_serial(void);

void vkg_log_msg(vkg_log_level level, const char *fmt, ...) VKG_PRINTF(2, 3);
/* Maps a failed VkResult to a status and message ("vkQueueSubmit failed: VK_ERROR_DEVICE_LOST"). */
vkg_status vkg_vk_fail(VkResult r, const char *what);
const char *vkg_vk_result_name(VkResult r);
/* The NOT_INITIALIZED / DEVICE_LOST check every entry point makes: inline, since a call into
 * another file is a cold instruction-cache line on a path that waits on nothing else (a graph
 * replay's host input writes); vkg_not_ready sets the error. */
bool vkg_not_ready(const char *op);
static inline bool vkg_ready(const char *op) { return (vkg_ctx.initialized && !vkg_ctx.lost) || vkg_not_ready(op); }

/* Shader lookup in the generated table. */
typedef struct vkg_shader_code {
    const char *name;
    const uint32_t *code;
    size_t size;
} vkg_shader_code;
extern const vkg_shader_code vkg_shader_table[];

/* ---- profiling and explain mode (profile.c) ------------------------------------------------ *
 * VKG_PROFILE=1|file.json times every dispatch with timestamp queries and reports per op at
 * shutdown; VKG_EXPLAIN=1|file prints every dispatch, barrier and submit as it is recorded.
 * The stream calls these hooks at fixed points; each costs a branch when the modes are off. */
vkg_status vkg_profile_init(void);                 /* reads the variables; after vkg_stream_init */
void vkg_profile_shutdown(void);                   /* prints/writes the report; device idle      */
void vkg_profile_frame_begin(const vkg_frame *f);  /* after vkBeginCommandBuffer                 */
void vkg_profile_frame_done(const vkg_frame *f);   /* after the frame's fence signalled          */
void vkg_profile_dispatch_begin(const vkg_frame *f, const vkg_dispatch_desc *d);
void vkg_profile_dispatch_end(const vkg_frame *f);
void vkg_explain_dispatch(const vkg_dispatch_desc *d, uint32_t local_size, uint32_t ndesc);
/* A barrier is recorded because binding k conflicts with an access since the last barrier. */
void vkg_explain_barrier(int k, bool earlier_write, bool write);
/* A copy by the queue (upload or read-back through the staging ring, device to device): its
 * barrier lines follow it, not the dispatch before. */
void vkg_explain_copy(const char *what, uint64_t bytes);
void vkg_explain_why(const char *why);             /* the trigger of the next submit           */
void vkg_explain_submit(const vkg_frame *f);       /* before vkQueueSubmit                     */
/* Which kernels (shader, constants, workgroup size) were dispatched since the last call: the
 * variant a benchmark reports. Distinct entries joined by "; " into buf. */
void vkg_trace_variants(char *buf, size_t size);
/* A region timer around any span of the stream (vkgrad-bench): timestamps written into the
 * command stream at begin and end; after the work completed (vkg_sync), the GPU nanoseconds
 * between them, or a negative value when the device has no timestamps. */
vkg_status vkg_timer_begin(void);
vkg_status vkg_timer_end(void);
double vkg_timer_elapsed_ns(void);
bool vkg_profile_active(void);                     /* VKG_PROFILE is on and timestamps work     */
bool vkg_profile_reporting(void);                  /* VKG_PROFILE or VKG_EXPLAIN is on          */
bool vkg_timer_open(void);                         /* a region timer is begun and not ended     */
/* While held, dispatches stay out of the variant trace, the per-op profile and the explain
 * lines (a benchmark's variant names the kernel it measured, and a profile the op's kernel,
 * not the candidates an autotuner timed); explain still shows their submits, and the profile's
 * GPU time of the run includes them. */
void vkg_trace_hold(bool on);

#endif
