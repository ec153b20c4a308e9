/* The runtime's side of graph capture and replay (vkgrad/graph.h): the hooks between the
 * command stream (stream.c), the graph (graph.c) and the layers that compute per-step values on
 * the host (the optimizer). Only the library includes this. */
#ifndef VKG_GRAPH_INTERNAL_H
#define VKG_GRAPH_INTERNAL_H

#include "runtime/runtime.h"
#include "vkgrad/graph.h"

/* Serial that storages used by a capture carry until the capture first runs. */
#define VKG_SERIAL_CAPTURE (UINT64_MAX - 1)

/* ---- stream.c -------------------------------------------------------------------------------- */
/* Starts (f: the graph's frame, recording into its secondary command buffer) or ends (NULL) a
 * capture: dispatches go to f, with their own hazard list; transfers stay eager. */
void vkg_stream_capture_set(vkg_frame *f);
bool vkg_stream_capturing(void);
/* Submits the current eager frame's commands, if any, and then a graph's primary command buffer,
 * in one vkQueueSubmit with that frame's fence; *serial is the batch's. The primary ends with a
 * full barrier, so the hazard list starts empty after it. */
vkg_status vkg_stream_submit_graph(VkCommandBuffer primary, uint32_t dispatches, uint64_t *serial);
/* Waits until the batch `serial` has completed (submitting it first if it is still recording):
 * inline when it has (the usual case, on a replay's path), vkg_stream_wait_pending otherwise. */
vkg_status vkg_stream_wait_pending(uint64_t serial);
static inline vkg_status vkg_stream_wait_serial(uint64_t serial) {
    return serial <= vkg_ctx.completed_serial ? VKG_OK : vkg_stream_wait_pending(serial);
}
/* A barrier from compute and transfer writes to compute and transfer reads and writes. */
void vkg_stream_full_barrier(VkCommandBuffer cmd, bool host);
/* Copies bytes between storages in stream order (vkCmdCopyBuffer, hazard-tracked). */
vkg_status vkg_stream_copy(vkg_storage *dst, VkDeviceSize dst_off, vkg_storage *src, VkDeviceSize src_off,
                           VkDeviceSize bytes);
/* Writes host bytes into a storage in stream order without waiting for the device: straight
 * through the mapping when no unfinished work uses the storage, else through a fresh storage
 * and a device copy. */
vkg_status vkg_stream_write_nowait(vkg_storage *s, VkDeviceSize off, const void *src, size_t bytes);
/* Submits what is recorded and waits for everything (callable during a capture). */
vkg_status vkg_stream_sync_all(void);
/* Seconds spent in vkWaitForFences since vkg_init (host time that is the device's). */
double vkg_stream_wait_seconds(void);

/* ---- graph.c --------------------------------------------------------------------------------- */
/* During a capture: the graph keeps s (a reference) and notes whether the step writes it. */
vkg_status vkg_graph_note(vkg_storage *s, bool write);
bool vkg_graph_holds(const vkg_storage *s);   /* s is used by the capture in progress        */
/* The allocator, during a capture: s lost a reference (a tensor freed); if only the graph holds
 * it now, the capture's later allocations may take it, as eager ones take freed ranges. */
void vkg_graph_storage_unused(vkg_storage *s);
/* The capture in progress, for vkg_storage.capture_born (0: none). */
uint64_t vkg_graph_capture_gen(void);
/* A storage of at least size bytes that only the graph holds, with a new reference; or NULL. */
vkg_storage *vkg_graph_storage_reuse(VkDeviceSize size);
void vkg_graph_capture_failed(void);         /* a refused call inside the capture spoils it */
void vkg_graphs_shutdown(void);              /* frees every live graph; device idle         */
/* The graph being captured, or NULL. */
vkg_graph *vkg_graph_capturing(void);
/* A host computation of the per-run values of a captured step (the optimizer's): run(user, r)
 * computes those of run r (0: the capture run) and writes them into its stages
 * (vkg_graph_stage_write). The graph calls it ahead, for up to 8 runs at once, so the values of
 * run r must follow from r and the host state at the call; whoever changes that state calls
 * vkg_graph_values_changed, and the graphs compute their next runs' values again. Runs of
 * another graph in between count as a change. release frees user; at_shutdown: the device and
 * the tensors are already gone, free host memory only. */
typedef struct vkg_graph_hook {
    vkg_status (*run)(void *user, int64_t run);
    void (*release)(void *user, bool at_shutdown);
    void *user;
} vkg_graph_hook;
vkg_status vkg_graph_hook_add(vkg_graph *g, vkg_graph_hook hook);
/* During a capture: dst[off, off + bytes) is rewritten from host memory before every run. Where
 * storage is mapped, the graph keeps one host-visible copy per command buffer in flight and its
 * own command buffer copies it in (no recording per run); elsewhere it is a stream-ordered
 * write. Returns the stage's id (>= 0), or -1 with an error. */
int vkg_graph_stage_add(vkg_graph *g, vkg_storage *dst, VkDeviceSize off, VkDeviceSize bytes);
/* From a hook: the bytes of stage `id` for the run it was called for. */
vkg_status vkg_graph_stage_write(vkg_graph *g, int id, const void *src);
/* The host state behind some hook's values changed (a learning rate, a step count): every
 * graph computes its values again from its next run. */
void vkg_graph_values_changed(void);
/* Graph runs leave the serials of the storages they use until this is called: before anything
 * reads a storage's last_serial or written_serial (a host read or write, a lost-batch check). */
void vkg_graph_stamp(void);

#endif
