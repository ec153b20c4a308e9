/* Graph capture and replay (vkgrad/graph.h): the dispatches of one fixed-shape step are recorded
 * once into a secondary command buffer that the graph keeps; at the end of the capture, G_PRIMS
 * primary command buffers are recorded around it (a barrier against the work before, the copies
 * of the per-run host values, the step, a barrier against the work after), so a replay records
 * nothing: it submits one of them, with the eager frame's pending commands if there are any, in
 * one vkQueueSubmit. The graph holds a reference on every storage its dispatches use, so the
 * sub-allocator can give none of those ranges to anything else while a replay may still rewrite
 * them; per-run host values come from hooks (the optimizer's) that write them into stages, runs
 * ahead of time, and from the caller for host inputs (vkg_graph_host_input), which are stages
 * too. A replay's own host work is a few cache lines and the submit: what else a run used to do
 * (compute the optimizer's values, stamp the storages it uses with its serial) is done ahead or
 * when someone looks. */
#include <stdlib.h>
#include <string.h>

#include "runtime/graph_internal.h"

typedef struct graph_use {
    vkg_storage *s;
    bool read, write;
    bool first_write;            /* the capture's first access to it wrote it */
} graph_use;

typedef enum graph_state { G_EMPTY = 0, G_CAPTURING, G_READY } graph_state;

/* Hooks' values are written for up to G_AHEAD runs at a time, into the slots of the runs ahead:
 * a slot is rewritten only when its run is done, and a run waits (in the eager frames' fences)
 * only for the batch VKG_FRAMES submits back, so there are G_PRIMS slots, each with the primary
 * that copies it in: the slot of run r + G_AHEAD - 1 last served run r - G_AHEAD - 1. */
#define G_AHEAD 8
#define G_PRIMS (2 * G_AHEAD)
_Static_assert(G_AHEAD >= VKG_FRAMES, "a slot written ahead must be one whose run is done without waiting");
_Static_assert(G_PRIMS <= 32, "graph_stage.fresh holds a bit per slot");

typedef struct graph_stage {
    vkg_storage *dst;
    VkDeviceSize off, bytes;
    int64_t elem;            /* host input: the tensor's offset in elements, its dtype and */
    vkg_dtype dtype;         /* that dtype's size                                          */
    size_t esize;
    VkDeviceSize at;         /* offset in each slot of the stage memory */
    bool input;              /* a host input (vkg_graph_host_input), not a hook's values */
    bool read;               /* host input: the captured step reads it (set when the capture ends),
                                so a write checks this instead of searching the uses */
    int latest;              /* host input: the slot that holds its newest value */
    uint32_t fresh;          /* host input: bit i set: slot i holds the newest value */
} graph_stage;

/* A primary command buffer around the step, and the batch that last ran it. */
typedef struct graph_prim {
    VkCommandBuffer cmd;
    uint64_t serial;
} graph_prim;

struct vkg_graph {
    /* first what a replay and a host-input write read: a run finds them cold in the cache, and
     * every cache line it touches is about a tenth of a microsecond on lavapipe */
    graph_state state;
    int nstages, nhooks;
    int slot;                    /* the slot that hooks write into                         */
    int64_t replays;
    int64_t filled;              /* the hooks' values of runs before this one are written  */
    uint64_t fill_gen;           /* values_gen when they were                              */
    uint64_t last_serial;        /* the frame of the latest run                            */
    uint64_t stamped;            /* the run whose serials the shared storages carry        */
    graph_stage *stages;
    uint8_t *slots;              /* stage_mem's bytes, mapped                              */
    VkDeviceSize slot_bytes;     /* stage bytes per primary                                */
    vkg_graph_hook *hooks;
    graph_prim prim[G_PRIMS];
    vkg_frame frame;             /* cmd: the secondary command buffer; pools: its own sets */
    vkg_storage *stage_mem;      /* G_PRIMS slots, mapped; NULL: stages written in stream order */
    int capstages, caphooks;
    vkg_graph *next;             /* the live list, freed at shutdown                       */
    bool spoiled;                /* a call inside the capture was refused                  */
    graph_use *uses;             /* every storage bound by a captured dispatch             */
    int nuses, capuses;
    int *shared;                 /* the uses some tensor also holds: a run stamps only them */
    int nshared;
    vkg_storage **spare;         /* during the capture: storages whose tensors were freed,
                                    given to the capture's later allocations (stream order) */
    int nspare, capspare;
};

static vkg_graph *live;
static vkg_graph *capturing;
/* Hooks' values written ahead stay valid while the host state they come from is unchanged: it
 * changes when a hook's owner says so (values_gen) and when another graph runs in between
 * (last_ran), which may advance the same optimizer. */
static uint64_t values_gen;
static const vkg_graph *last_ran;
static bool stamps_pending;      /* some graph ran since its storages were last stamped    */
static uint64_t capture_gen;     /* counts captures: vkg_storage.capture_born */
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
        g->uses[i] = (graph_use){ .s = s, .first_write = write };
    }
    if (write) g->uses[i].write = true;
    else g->uses[i].read = true;
    return VKG_OK;
}

bool vkg_graph_holds(const vkg_storage *s) { return capturing && find_use(capturing, s) >= 0; }

uint64_t vkg_graph_capture_gen(void) { return capturing ? capture_gen : 0; }

void vkg_graph_storage_unused(vkg_storage *s) {
    vkg_graph *g = capturing;
    if (!g || s->refs != 1 || s->capture_born != capture_gen) return;
    /* only the graph holds it, and every run makes its contents afresh: it was allocated in this
     * capture, and first written by a dispatch (a host upload or a tensor from before the
     * capture holds values that every run reads, which must stay) */
    int i = find_use(g, s);
    if (i < 0 || !g->uses[i].first_write) return;
    if (g->nspare == g->capspare) {
        int cap = g->capspare ? 2 * g->capspare : 64;
        vkg_storage **ns = realloc(g->spare, (size_t)cap * sizeof *ns);
        if (!ns) return; /* it stays the graph's, unused: only memory */
        g->spare = ns;
        g->capspare = cap;
    }
    g->spare[g->nspare++] = s;
}

vkg_storage *vkg_graph_storage_reuse(VkDeviceSize size) {
    vkg_graph *g = capturing;
    if (!g) return NULL;
    int best = -1;
    for (int i = 0; i < g->nspare; i++)
        if (g->spare[i]->size >= size && g->spare[i]->size <= 2 * size &&
            (best < 0 || g->spare[i]->size < g->spare[best]->size))
            best = i;
    if (best < 0) return NULL;
    vkg_storage *s = g->spare[best];
    g->spare[best] = g->spare[--g->nspare];
    s->refs++;
    s->leaf_grad = false; /* a spare is held by the graph alone: no leaf's gradient any more */
    return s;
}

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

int vkg_graph_stage_add(vkg_graph *g, vkg_storage *dst, VkDeviceSize off, VkDeviceSize bytes) {
    if (g->nstages == g->capstages) {
        int cap = g->capstages ? 2 * g->capstages : 4;
        graph_stage *ns = realloc(g->stages, (size_t)cap * sizeof *ns);
        if (!ns) {
            g->spoiled = true;
            vkg_fail(VKG_ERR_OUT_OF_MEMORY, "graph capture: out of host memory");
            return -1;
        }
        g->stages = ns;
        g->capstages = cap;
    }
    if (vkg_graph_note(dst, true) != VKG_OK) return -1;
    g->stages[g->nstages] = (graph_stage){ .dst = dst, .off = off, .bytes = bytes, .at = g->slot_bytes };
    g->slot_bytes += (bytes + 15) & ~(VkDeviceSize)15;
    return g->nstages++;
}

static uint8_t *stage_slot(const vkg_graph *g, const graph_stage *s, int slot) {
    return g->slots + (VkDeviceSize)slot * g->slot_bytes + s->at;
}

vkg_status vkg_graph_stage_write(vkg_graph *g, int id, const void *src) {
    const graph_stage *s = &g->stages[id];
    if (!g->stage_mem) return vkg_stream_write_nowait(s->dst, s->off, src, s->bytes);
    memcpy(stage_slot(g, s, g->slot), src, s->bytes);
    return VKG_OK;
}

/* The host inputs' first values: what the tensors hold when the capture ends (eager work that
 * wrote them done), into the slot of the capture run. */
static vkg_status stage_inputs_init(vkg_graph *g) {
    bool any = false;
    for (int k = 0; k < g->nstages; k++) any |= g->stages[k].input;
    if (!any) return VKG_OK;
    vkg_status st = vkg_stream_sync_all();
    if (st != VKG_OK) return st;
    int slot = (int)(g->replays % G_PRIMS);
    for (int k = 0; k < g->nstages; k++) {
        graph_stage *s = &g->stages[k];
        if (!s->input) continue;
        memcpy(stage_slot(g, s, slot), s->dst->block->mapped + s->dst->off + s->off, s->bytes);
        s->latest = slot;
        s->fresh = 1u << slot;
    }
    return VKG_OK;
}

/* The primaries around the captured step (after a successful capture). */
static vkg_status record_primaries(vkg_graph *g) {
    /* a storage that no tensor holds any more (the step's temporaries) cannot be read, written
     * or freed by anyone until the graph lets go of it: runs need not stamp it */
    g->shared = malloc((size_t)(g->nuses ? g->nuses : 1) * sizeof *g->shared);
    if (!g->shared) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "graph capture: out of host memory");
    for (int i = 0; i < g->nuses; i++)
        if (g->uses[i].s->refs > 1) g->shared[g->nshared++] = i;
    if (g->nstages && vkg_ctx.map_storage) {
        g->stage_mem = vkg_storage_new(G_PRIMS * g->slot_bytes, true, "graph stages");
        if (!g->stage_mem) return vkg_last_status();
        g->slots = g->stage_mem->block->mapped + g->stage_mem->off;
        vkg_status st = stage_inputs_init(g);
        if (st != VKG_OK) return st;
    }
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = vkg_ctx.cmd_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = G_PRIMS };
    VkCommandBuffer cmds[G_PRIMS];
    VkResult r = vkAllocateCommandBuffers(vkg_ctx.device, &ai, cmds);
    if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkAllocateCommandBuffers (graph)");
    for (int i = 0; i < G_PRIMS; i++) g->prim[i].cmd = cmds[i];
    for (int i = 0; i < G_PRIMS; i++) {
        VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                        .flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT };
        VkCommandBuffer c = g->prim[i].cmd;
        r = vkBeginCommandBuffer(c, &bi);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkBeginCommandBuffer (graph)");
        vkg_stream_full_barrier(c, false); /* after everything submitted before */
        if (g->stage_mem) {
            for (int k = 0; k < g->nstages; k++) {
                const graph_stage *s = &g->stages[k];
                VkBufferCopy bc = { g->stage_mem->off + (VkDeviceSize)i * g->slot_bytes + s->at, s->dst->off + s->off,
                                    s->bytes };
                vkCmdCopyBuffer(c, g->stage_mem->block->buffer, s->dst->block->buffer, 1, &bc);
            }
            vkg_stream_full_barrier(c, false);
        }
        vkCmdExecuteCommands(c, 1, &g->frame.cmd);
        vkg_stream_full_barrier(c, true); /* before everything after, the host's reads included */
        r = vkEndCommandBuffer(c);
        if (r != VK_SUCCESS) return vkg_vk_fail(r, "vkEndCommandBuffer (graph)");
    }
    return VKG_OK;
}

/* The shared storages carry the serial of g's latest run: until someone looks at a storage's
 * serials (a host read or write, a lost-batch check, the graph's end; vkg_graph_stamp), a run
 * leaves them, since stamping a few dozen storages that are cold in the cache was a tenth of a
 * replay's host time. Newer eager work may have stamped them since: the newest serial wins. */
static void bump(uint64_t *mark, uint64_t serial) {
    if (*mark < serial || *mark == VKG_SERIAL_CAPTURE) *mark = serial;
}

static void stamp(vkg_graph *g) {
    uint64_t serial = g->last_serial;
    if (g->stamped == serial) return;
    for (int k = 0; k < g->nshared; k++) {
        const graph_use *u = &g->uses[g->shared[k]];
        bump(&u->s->last_serial, serial);
        if (u->write) bump(&u->s->written_serial, serial);
    }
    if (g->stage_mem) bump(&g->stage_mem->last_serial, serial);
    g->stamped = serial;
}

void vkg_graph_stamp(void) {
    if (!stamps_pending) return;
    for (vkg_graph *g = live; g; g = g->next) stamp(g);
    stamps_pending = false;
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
    if (g->replays) stamp(g);
    for (int i = 0; i < g->nuses; i++) {
        vkg_storage *s = g->uses[i].s;
        /* a capture that never ran overwrote the serials of eager work: assume the latest; the
         * storages only the graph held were not stamped per run */
        uint64_t serial = g->replays ? g->last_serial : vkg_ctx.next_serial;
        if (s->last_serial == VKG_SERIAL_CAPTURE || s->refs == 1) s->last_serial = serial;
        if (s->written_serial == VKG_SERIAL_CAPTURE || (s->refs == 1 && g->uses[i].write)) s->written_serial = serial;
        vkg_storage_release(s);
    }
    free(g->shared);
    g->shared = NULL;
    g->nshared = 0;
    free(g->spare);
    g->spare = NULL;
    g->nspare = g->capspare = 0;
    free(g->uses);
    g->uses = NULL;
    g->nuses = g->capuses = 0;
    if (g->stage_mem) {
        vkg_storage_release(g->stage_mem); /* stamped above */
        g->stage_mem = NULL;
    }
    free(g->stages);
    g->stages = NULL;
    g->nstages = g->capstages = 0;
    g->slot_bytes = 0;
    for (int i = 0; i < G_PRIMS; i++) {
        if (g->prim[i].cmd) vkFreeCommandBuffers(vkg_ctx.device, vkg_ctx.cmd_pool, 1, &g->prim[i].cmd);
        g->prim[i] = (graph_prim){ 0 };
    }
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
    vkg_graph_stamp(); /* a capture marks storages VKG_SERIAL_CAPTURE: no older stamp may land on them */
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
    g->frame.bound = VK_NULL_HANDLE;
    g->frame.serial = VKG_SERIAL_CAPTURE;
    g->state = G_CAPTURING;
    capturing = g;
    capture_gen++;
    vkg_clear_error(); /* a failure of any op inside the capture spoils it (checked at the end) */
    refusal[0] = '\0';
    vkg_stream_capture_set(&g->frame);
    return VKG_OK;
}

void vkg_graph_values_changed(void) { values_gen++; }

/* The host state behind g's values written ahead changed since they were written. */
static bool values_changed_since_fill(const vkg_graph *g) { return g->fill_gen != values_gen || last_ran != g; }

/* The hooks' values of the runs from r on: G_AHEAD runs where the stages are mapped, one where
 * they are written in stream order (a write there is for the next run only), and one after a
 * change of the values (a learning-rate schedule changes them every step: computing runs that
 * never come would cost more than it saves). */

static vkg_status fill(vkg_graph *g, int64_t r) {
    int64_t n = g->stage_mem && !values_changed_since_fill(g) ? G_AHEAD : 1;
    g->filled = r; /* nothing valid if a hook fails */
    for (int64_t run = r; run < r + n; run++) {
        g->slot = (int)(run % G_PRIMS);
        vkg_status st = vkg_stream_wait_serial(g->prim[g->slot].serial); /* done long ago */
        for (int k = 0; st == VKG_OK && k < g->nhooks; k++) st = g->hooks[k].run(g->hooks[k].user, run);
        if (st != VKG_OK) return st;
    }
    g->filled = r + n;
    g->fill_gen = values_gen;
    return VKG_OK;
}

/* One run of the captured step: the hooks' values are in the stages of its primary (written
 * now, or ahead by an earlier run), which is then submitted (with any pending eager work). */
static vkg_status run(vkg_graph *g) {
    int64_t r = g->replays;
    int i = (int)(r % G_PRIMS);
    vkg_status st = vkg_stream_wait_serial(g->prim[i].serial); /* usually done long ago */
    if (st != VKG_OK) return st;
    /* a host input not written for this run gets the newest value it was given */
    for (int k = 0; g->stage_mem && k < g->nstages; k++) {
        graph_stage *s = &g->stages[k];
        if (!s->input || (s->fresh & 1u << i)) continue;
        memcpy(stage_slot(g, s, i), stage_slot(g, s, s->latest), s->bytes);
        s->fresh |= 1u << i;
    }
    if (g->nhooks && (r >= g->filled || values_changed_since_fill(g))) {
        st = fill(g, r);
        if (st != VKG_OK) return st;
    }
    uint64_t serial;
    vkg_explain_why("vkg_graph_replay: one submit per step");
    st = vkg_stream_submit_graph(g->prim[i].cmd, g->frame.dispatches, &serial);
    g->prim[i].serial = serial;
    g->last_serial = serial;
    last_ran = g;
    /* what the step used is in use by this batch, and what it wrote, written by it: stamped now
     * after the capture run (its storages carry VKG_SERIAL_CAPTURE till then) and after a failed
     * submit (which marks those values lost), later otherwise */
    if (r == 0 || st != VKG_OK) stamp(g);
    else stamps_pending = true;
    if (st == VKG_OK) g->replays++;
    return st;
}

vkg_status vkg_graph_capture_end(vkg_graph *g) {
    if (!g) return vkg_fail(VKG_ERR_INVALID, "vkg_graph_capture_end: the graph is NULL");
    if (g != capturing)
        return refuse("vkg_graph_capture_end: %s%s", capturing ? "another graph is being captured"
                                                               : "no capture in progress (vkg_graph_capture_begin)", "");
    vkg_stream_capture_set(NULL);
    capturing = NULL;
    g->frame.recording = false;
    g->nspare = 0; /* the spare storages stay the graph's */
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
    for (int k = 0; k < g->nstages; k++) {
        if (!g->stages[k].input) continue;
        int u = find_use(g, g->stages[k].dst);
        g->stages[k].read = u >= 0 && g->uses[u].read;
    }
    vkg_status st = record_primaries(g);
    if (st != VKG_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", vkg_last_error());
        release(g, false);
        return vkg_fail(st, "vkg_graph_capture_end: %s", msg);
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

/* The host-input stage of input, or NULL. */
static graph_stage *host_input_of(vkg_graph *g, const vkg_tensor *input) {
    for (int k = 0; k < g->nstages; k++) {
        graph_stage *s = &g->stages[k];
        if (s->input && s->dst == input->storage && s->elem == input->offset && s->dtype == input->dtype) return s;
    }
    return NULL;
}

vkg_status vkg_graph_host_input(vkg_graph *g, vkg_tensor *input) {
    const char *op = "vkg_graph_host_input";
    if (!g || !input) return vkg_fail(VKG_ERR_INVALID, "%s: the graph or the input is NULL", op);
    if (g != capturing)
        return refuse("%s: %s", op, "declare a host input during its graph's capture (after vkg_graph_capture_begin)");
    if (!input->storage) return vkg_fail(VKG_ERR_INVALID, "%s: the input tensor was freed", op);
    if (!vkg_is_contiguous(input)) return vkg_fail(VKG_ERR_INVALID, "%s: the input is a non-contiguous view", op);
    if (host_input_of(g, input)) return VKG_OK;
    size_t es = vkg_dtype_size(input->dtype);
    VkDeviceSize off = (VkDeviceSize)input->offset * es, bytes = (VkDeviceSize)vkg_numel(input) * es;
    int id = vkg_graph_stage_add(g, input->storage, off, bytes);
    if (id < 0) return vkg_last_status();
    g->stages[id].input = true;
    g->stages[id].elem = input->offset;
    g->stages[id].dtype = input->dtype;
    g->stages[id].esize = es;
    return VKG_OK;
}

/* Checks a graph input before a write or copy; *stage: its host-input stage, or NULL; *bytes:
 * its size. */
static vkg_status input_check(vkg_graph *g, const vkg_tensor *input, const char *op, graph_stage **stage,
                              size_t *bytes) {
    if (!g || !input) return vkg_fail(VKG_ERR_INVALID, "%s: the graph or the input is NULL", op);
    if (!vkg_ready(op)) return vkg_last_status();
    if (capturing) return refuse("%s: called inside a capture%s", op, "");
    if (g->state != G_READY) return vkg_fail(VKG_ERR_INVALID, "%s: the graph holds no captured step", op);
    if (!input->storage) return vkg_fail(VKG_ERR_INVALID, "%s: the input tensor was freed", op);
    graph_stage *s = *stage = host_input_of(g, input);
    int u = s ? -1 : find_use(g, input->storage);
    bool read = s ? s->read : u >= 0 && g->uses[u].read;
    if (!read)
        return vkg_fail(VKG_ERR_INVALID, "%s: the tensor is not read by the captured step, so writing it changes "
                                         "nothing in a replay", op);
    int64_t n;
    if (!vkg_dense(input, &n)) return vkg_fail(VKG_ERR_INVALID, "%s: the input is a non-contiguous view", op);
    *bytes = (size_t)n * (s ? s->esize : vkg_dtype_size(input->dtype));
    return VKG_OK;
}

vkg_status vkg_graph_input_copy(vkg_graph *g, vkg_tensor *input, vkg_tensor *value) {
    const char *op = "vkg_graph_input_copy";
    graph_stage *stage;
    size_t bytes;
    vkg_status st = input_check(g, input, op, &stage, &bytes);
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
    if (stage)
        return vkg_fail(VKG_ERR_INVALID, "%s: the input is a host input (vkg_graph_host_input): every run copies its "
                                         "host value over it; give it one with vkg_graph_input_write", op);
    size_t es = vkg_dtype_size(input->dtype);
    return vkg_stream_copy(input->storage, (VkDeviceSize)input->offset * es, value->storage,
                           (VkDeviceSize)value->offset * es, bytes);
}

vkg_status vkg_graph_input_write(vkg_graph *g, vkg_tensor *input, const void *src, size_t bytes) {
    const char *op = "vkg_graph_input_write";
    graph_stage *s;
    size_t need;
    vkg_status st = input_check(g, input, op, &s, &need);
    if (st != VKG_OK) return st;
    if (bytes != need || (!src && need)) {
        char a[96];
        return vkg_fail(VKG_ERR_INVALID, "%s: the graph was captured with this input as %s %s (%zu bytes), the source "
                                         "has %zu; a new shape needs a new capture",
                        op, vkg_shape_str(input->shape, a, sizeof a), vkg_dtype_name(input->dtype), need, bytes);
    }
    if (!s || !g->stage_mem)
        return vkg_stream_write_nowait(input->storage, (VkDeviceSize)input->offset * vkg_dtype_size(input->dtype), src,
                                       need);
    /* into the slot of the next run: the run that last used it, G_PRIMS runs back, is done (or
     * waited for) */
    int i = (int)(g->replays % G_PRIMS);
    st = vkg_stream_wait_serial(g->prim[i].serial);
    if (st != VKG_OK) return st;
    memcpy(stage_slot(g, s, i), src, need);
    s->latest = i;
    s->fresh = 1u << i;
    return VKG_OK;
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
