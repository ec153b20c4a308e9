/* Graph capture and replay (vkgrad/graph.h): the dispatches of one fixed-shape step are recorded
 * once into a secondary command buffer that the graph keeps, and each replay executes it from the
 * current eager frame between two barriers, in one submit. The graph holds a reference on every
 * storage its dispatches use, so the sub-allocator can give none of those ranges to anything else
 * while a replay may still rewrite them; per-step host values come from hooks (the optimizer's)
 * that write small device buffers before every run. */
#include <stdlib.h>
#include <string.h>

#include "runtime/graph_internal.h"

typedef struct graph_use {
    vkg_storage *s;
    bool read, write;
} graph_use;

typedef enum graph_state { G_EMPTY = 0, G_CAPTURING, G_READY } graph_state;

struct vkg_graph {
    vkg_graph *next;             /* the live list, freed at shutdown                       */
    graph_state state;
    bool spoiled;                /* a call inside the capture was refused                  */
    vkg_frame frame;             /* cmd: the secondary command buffer; pools: its own sets */
    graph_use *uses;             /* every storage bound by a captured dispatch             */
    int nuses, capuses;
    vkg_graph_hook *hooks;
    int nhooks, caphooks;
    int64_t replays;
    uint64_t last_serial;        /* the frame of the latest run                            */
};

static vkg_graph *live;
static vkg_graph *capturing;
/* The last refusal of a graph call during a capture: it does not spoil the capture, while any
 * other failure there (an op's) does. */
static char refusal[256];

static vkg_status refuse(const char *fmt, const char *a, const char *b) {
    vkg_status st = vkg_fail(VKG_ERR_INVALID, fmt, a, b);
    if (capturing) snprintf(refusal, sizeof refusal, "%s", vkg_last_error());
    return st;
}

vkg_graph *vkg_graph_capturing(void) { return capturing; }
bool vkg_graph_is_capturing(void) { return capturing != NULL; }
void vkg_graph_capture_failed(void) {
    if (capturing) capturing->spoiled = true;
}

/* Index of s among the uses (linear: a step binds a few hundred storages, once at capture). */
static int find_use(const vkg_graph *g, const vkg_storage *s) {
    for (int i = g->nuses - 1; i >= 0; i--)
        if (g->uses[i].s == s) return i;
    return -1;
}

vkg_status vkg_graph_note(vkg_storage *s, bool write) {
    vkg_graph *g = capturing;
    if (!g) return VKG_OK;
    int i = find_use(g, s);
    if (i < 0) {
        if (g->nuses == g->capuses) {
            int cap = g->capuses ? 2 * g->capuses : 64;
            graph_use *nu = realloc(g->uses, (size_t)cap * sizeof *nu);
            if (!nu) {
                g->spoiled = true;
                return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "graph capture: out of host memory");
            }
            g->uses = nu;
            g->capuses = cap;
        }
        s->refs++; /* kept until vkg_graph_free: replays rewrite these bytes */
        i = g->nuses++;
        g->uses[i] = (graph_use){ .s = s };
    }
    if (write) g->uses[i].write = true;
    else g->uses[i].read = true;
    return VKG_OK;
}

bool vkg_graph_holds(const vkg_storage *s) { return capturing && find_use(capturing, s) >= 0; }

vkg_status vkg_graph_hook_add(vkg_graph *g, vkg_graph_hook hook) {
    if (g->nhooks == g->caphooks) {
        int cap = g->caphooks ? 2 * g->caphooks : 4;
        vkg_graph_hook *nh = realloc(g->hooks, (size_t)cap * sizeof *nh);
        if (!nh) {
            g->spoiled = true;
            return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "graph capture: out of host memory");
        }
        g->hooks = nh;
        g->caphooks = cap;
    }
    g->hooks[g->nhooks++] = hook;
    return VKG_OK;
}

/* Back to G_EMPTY: hooks released, storages let go (stamped with the latest run, so the
 * allocator reuses them in stream order), command buffer and descriptor pools destroyed. The
 * caller has made sure that no run is pending. */
static void release(vkg_graph *g, bool at_shutdown) {
    for (int i = 0; i < g->nhooks; i++)
        if (g->hooks[i].release) g->hooks[i].release(g->hooks[i].user, at_shutdown);
    free(g->hooks);
    g->hooks = NULL;
    g->nhooks = g->caphooks = 0;
    for (int i = 0; i < g->nuses; i++) {
        vkg_storage *s = g->uses[i].s;
        /* a capture that never ran overwrote the serials of eager work: assume the latest */
        uint64_t serial = g->replays ? g->last_serial : vkg_ctx.next_serial;
        if (s->last_serial == VKG_SERIAL_CAPTURE) s->last_serial = serial;
        if (s->written_serial == VKG_SERIAL_CAPTURE) s->written_serial = serial;
        vkg_storage_release(s);
    }
    free(g->uses);
    g->uses = NULL;
    g->nuses = g->capuses = 0;
    vkg_frame *f = &g->frame;
    if (f->cmd) vkFreeCommandBuffers(vkg_ctx.device, vkg_ctx.cmd_pool, 1, &f->cmd);
    for (int k = 0; k < f->npools; k++) vkDestroyDescriptorPool(vkg_ctx.device, f->pools[k], NULL);
    free(f->pools);
    memset(f, 0, sizeof *f);
    g->state = G_EMPTY;
    g->spoiled = false;
}

vkg_graph *vkg_graph_new(void) {
    if (!vkg_ready("vkg_graph_new")) return NULL;
    vkg_graph *g = calloc(1, sizeof *g);
    if (!g) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "vkg_graph_new: out of host memory");
    g->next = live;
    live = g;
    return g;
}

vkg_status vkg_graph_capture_begin(vkg_graph *g) {
    if (!g) return vkg_fail(VKG_ERR_INVALID, "vkg_graph_capture_begin: the graph is NULL");
    if (!vkg_ready("vkg_graph_capture_begin")) return vkg_last_status();
    if (capturing)
        return refuse("vkg_graph_capture_begin: %s is being captured; end that capture first (vkg_graph_capture_end)%s",
                      capturing == g ? "this graph" : "another graph", "");
    if (g->state != G_EMPTY)
        return vkg_fail(VKG_ERR_INVALID, "vkg_graph_capture_begin: the graph already holds a captured step; free it "
                                         "and make a new graph to capture another");
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = vkg_ctx.cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_SECONDARY,
                                       .commandBufferCount = 1 };
    VkResult r = vkAllocateCommandBuffers(vkg_ctx.device, &ai, &g->frame.cmd);
    if (r != VK_SUCCESS) {
        g->frame.cmd = VK_NULL_HANDLE;
        return vkg_vk_fail(r, "vkAllocateCommandBuffers (graph)");
    }
    VkCommandBufferInheritanceInfo inh = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_INHERITANCE_INFO };
    /* kept and submitted again (no ONE_TIME_SUBMIT); a replay may be queued while the previous
     * one is still pending in another frame */
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT, .pInheritanceInfo = &inh };
    r = vkBeginCommandBuffer(g->frame.cmd, &bi);
    if (r != VK_SUCCESS) {
        release(g, false);
        return vkg_vk_fail(r, "vkBeginCommandBuffer (graph)");
    }
    g->frame.recording = true;
    g->frame.serial = VKG_SERIAL_CAPTURE;
    g->state = G_CAPTURING;
    capturing = g;
    vkg_clear_error(); /* a failure of any op inside the capture spoils it (checked at the end) */
    refusal[0] = '\0';
    vkg_stream_capture_set(&g->frame);
    return VKG_OK;
}

/* One run of the captured step: the hooks write this run's host values, then the secondary
 * command buffer is recorded into the eager frame and submitted with it. */
static vkg_status run(vkg_graph *g) {
    for (int i = 0; i < g->nhooks; i++) {
        vkg_status st = g->hooks[i].run(g->hooks[i].user);
        if (st != VKG_OK) return st;
    }
    uint64_t serial;
    vkg_status st = vkg_stream_execute(g->frame.cmd, g->frame.dispatches, &serial);
    if (st != VKG_OK) return st;
    /* what the step used is in use by this frame; what it wrote, written by it (a failed submit
     * then marks those values lost) */
    for (int i = 0; i < g->nuses; i++) {
        g->uses[i].s->last_serial = serial;
        if (g->uses[i].write) g->uses[i].s->written_serial = serial;
    }
    g->last_serial = serial;
    g->replays++;
    vkg_explain_why("vkg_graph_replay: one submit per step");
    return vkg_stream_flush();
}

vkg_status vkg_graph_capture_end(vkg_graph *g) {
    if (!g) return vkg_fail(VKG_ERR_INVALID, "vkg_graph_capture_end: the graph is NULL");
    if (g != capturing)
        return refuse("vkg_graph_capture_end: %s%s", capturing ? "another graph is being captured"
                                                               : "no capture in progress (vkg_graph_capture_begin)", "");
    vkg_stream_capture_set(NULL);
    capturing = NULL;
    g->frame.recording = false;
    VkResult r = vkEndCommandBuffer(g->frame.cmd);
    vkg_status failed = vkg_last_status();
    if (failed != VKG_OK && refusal[0] && strcmp(vkg_last_error(), refusal) == 0) failed = VKG_OK;
    if (r != VK_SUCCESS || g->spoiled || failed != VKG_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", failed != VKG_OK ? vkg_last_error() : vkg_vk_result_name(r));
        release(g, false);
        return vkg_fail(failed != VKG_OK ? failed : VKG_ERR_VULKAN,
                        "vkg_graph_capture_end: the capture failed, the graph is left empty: %s", msg);
    }
    g->state = G_READY;
    return run(g);
}

vkg_status vkg_graph_replay(vkg_graph *g) {
    if (!g) return vkg_fail(VKG_ERR_INVALID, "vkg_graph_replay: the graph is NULL");
    if (!vkg_ready("vkg_graph_replay")) return vkg_last_status();
    if (capturing) return refuse("vkg_graph_replay: called inside a capture (graphs do not nest)%s%s", "", "");
    if (g->state != G_READY)
        return vkg_fail(VKG_ERR_INVALID, "vkg_graph_replay: the graph holds no captured step "
                                         "(vkg_graph_capture_begin/end, and a capture that succeeded)");
    return run(g);
}

static vkg_status input_check(vkg_graph *g, const vkg_tensor *input, const char *op) {
    if (!g || !input) return vkg_fail(VKG_ERR_INVALID, "%s: the graph or the input is NULL", op);
    if (!vkg_ready(op)) return vkg_last_status();
    if (capturing) return refuse("%s: called inside a capture%s", op, "");
    if (g->state != G_READY) return vkg_fail(VKG_ERR_INVALID, "%s: the graph holds no captured step", op);
    if (!input->storage) return vkg_fail(VKG_ERR_INVALID, "%s: the input tensor was freed", op);
    int i = find_use(g, input->storage);
    if (i < 0 || !g->uses[i].read)
        return vkg_fail(VKG_ERR_INVALID, "%s: the tensor is not read by the captured step, so writing it changes "
                                         "nothing in a replay", op);
    if (!vkg_is_contiguous(input)) return vkg_fail(VKG_ERR_INVALID, "%s: the input is a non-contiguous view", op);
    return VKG_OK;
}

vkg_status vkg_graph_input_copy(vkg_graph *g, vkg_tensor *input, vkg_tensor *value) {
    const char *op = "vkg_graph_input_copy";
    vkg_status st = input_check(g, input, op);
    if (st != VKG_OK) return st;
    if (!value) return vkg_last_status() != VKG_OK ? vkg_last_status() : vkg_fail(VKG_ERR_INVALID, "%s: the value is NULL", op);
    if (!value->storage) return vkg_fail(VKG_ERR_INVALID, "%s: the value tensor was freed", op);
    bool same = input->dtype == value->dtype && input->shape.ndim == value->shape.ndim;
    for (int d = 0; same && d < input->shape.ndim; d++) same = input->shape.d[d] == value->shape.d[d];
    if (!same) {
        char a[96], b[96];
        return vkg_fail(VKG_ERR_INVALID, "%s: the graph was captured with this input as %s %s, the new value is %s %s; "
                                         "a new shape needs a new capture",
                        op, vkg_shape_str(input->shape, a, sizeof a), vkg_dtype_name(input->dtype),
                        vkg_shape_str(value->shape, b, sizeof b), vkg_dtype_name(value->dtype));
    }
    if (!vkg_is_contiguous(value))
        return vkg_fail(VKG_ERR_INVALID, "%s: the value is a non-contiguous view (vkg_contiguous first)", op);
    size_t es = vkg_dtype_size(input->dtype);
    return vkg_stream_copy(input->storage, (VkDeviceSize)input->offset * es, value->storage,
                           (VkDeviceSize)value->offset * es, (VkDeviceSize)vkg_numel(input) * es);
}

vkg_status vkg_graph_input_write(vkg_graph *g, vkg_tensor *input, const void *src, size_t bytes) {
    const char *op = "vkg_graph_input_write";
    vkg_status st = input_check(g, input, op);
    if (st != VKG_OK) return st;
    size_t es = vkg_dtype_size(input->dtype), need = (size_t)vkg_numel(input) * es;
    char a[96];
    if (bytes != need || (!src && need))
        return vkg_fail(VKG_ERR_INVALID, "%s: the graph was captured with this input as %s %s (%zu bytes), the source "
                                         "has %zu; a new shape needs a new capture",
                        op, vkg_shape_str(input->shape, a, sizeof a), vkg_dtype_name(input->dtype), need, bytes);
    return vkg_stream_write_nowait(input->storage, (VkDeviceSize)input->offset * es, src, need);
}

int64_t vkg_graph_dispatches(const vkg_graph *g) { return g && g->state == G_READY ? (int64_t)g->frame.dispatches : -1; }
int64_t vkg_graph_replays(const vkg_graph *g) { return g ? g->replays : 0; }

static void unlink_graph(vkg_graph *g) {
    for (vkg_graph **p = &live; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            return;
        }
}

void vkg_graph_free(vkg_graph *g) {
    if (!g) return;
    if (g == capturing) {
        vkg_stream_capture_set(NULL);
        capturing = NULL;
        vkEndCommandBuffer(g->frame.cmd);
    }
    /* a run may be pending: its command buffer and memory must outlive it */
    if (g->replays && g->last_serial > vkg_ctx.completed_serial) vkg_stream_sync_all();
    release(g, false);
    unlink_graph(g);
    free(g);
}

void vkg_graphs_shutdown(void) {
    while (live) {
        vkg_graph *g = live;
        live = g->next;
        release(g, true); /* one still recording is freed as it is (its pipelines are gone) */
        free(g);
    }
    capturing = NULL;
}
