/* vkgrad graphs: capture a fixed-shape step (forward, backward, optimizer step) once and
 * replay it as one submit per step, like CUDA graphs. Host time per replay is a few calls
 * instead of recording every dispatch again.
 *
 *   vkg_graph *g = vkg_graph_new();
 *   vkg_scope_begin();
 *   vkg_tensor *x = vkg_empty(VKG_SHAPE(128, 784)), *y = vkg_empty_dtype(VKG_SHAPE(128), VKG_I32);
 *   vkg_graph_capture_begin(g);                       // ops record into the graph, nothing runs
 *   vkg_optim_zero_grad(opt);
 *   vkg_tensor *loss = vkg_cross_entropy(model_forward(x), y);
 *   vkg_backward(loss);
 *   vkg_optim_step(opt);
 *   vkg_graph_capture_end(g);                         // runs the captured step once: a real step
 *   for (;;) {
 *       vkg_graph_input_copy(g, x, next_x);           // refresh the inputs in place
 *       vkg_graph_input_copy(g, y, next_y);
 *       vkg_graph_replay(g);                          // one submit; optimizer steps advance
 *       float l = vkg_item(loss);                     // outputs: read the captured tensors
 *   }
 *   vkg_scope_end();
 *   vkg_graph_free(g);
 *
 * What a replay repeats: every dispatch recorded between capture_begin and capture_end, on the
 * same device memory, as one submit (with any eager work recorded before it). Every storage
 * those dispatches use stays allocated until vkg_graph_free, even where its tensor is freed, so
 * nothing outside the graph can be placed there; a temporary freed inside the capture serves the
 * capture's later tensors, as freed memory serves an eager step's. Tensors made during the
 * capture keep their handles: keep the ones you read (the loss) alive.
 *
 * What changes per replay: the contents of the tensors the step reads (write them in place with
 * vkg_graph_input_copy / vkg_graph_input_write, or vkg_tensor_write), and the optimizer's
 * per-step values (step counts, bias corrections, the learning rate of vkg_optim_set_lr), which
 * are computed on the host exactly as an eager step computes them, so a replayed run is bitwise
 * equal to the eager run. Where the device's memory is host-visible they are computed for eight
 * replays at a time, and recomputed at the next replay after anything that changes them (an
 * eager optimizer step, vkg_optim_set_lr or vkg_optim_set_step_count, another graph's run); the
 * optimizer's step counts include every replay submitted. Anything else the host computed
 * during the capture is frozen: random ops draw the same numbers on every replay, and host
 * values passed to ops (scalars, shapes) are those of the capture.
 *
 * Inside a capture the host cannot see results: vkg_tensor_read, vkg_item and vkg_sync fail with
 * a clear message (the captured work runs at capture_end), and so does a host write into a
 * tensor the capture already uses; such a failure, or any op's, makes capture_end fail and leave
 * the graph empty. Run one eager step before capturing,
 * so that lazy work that waits for the device (pipeline creation is fine, matmul autotuning is
 * not) is done. VKG_PROFILE does not time the dispatches inside a graph; VKG_SYNC does not wait
 * inside it. A graph is freed by vkg_graph_free or by vkg_shutdown (its handle is then invalid). */
#ifndef VKGRAD_GRAPH_H
#define VKGRAD_GRAPH_H

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkg_graph vkg_graph;

vkg_graph *vkg_graph_new(void);                    /* NULL with an error when not initialized */
/* Starts recording: every op until capture_end goes into the graph. One capture at a time. */
vkg_status vkg_graph_capture_begin(vkg_graph *g);
/* Ends the capture and runs the step once (the capture run is a real step). On a failure inside
 * the capture, the graph is left empty and the error of the first failure is returned. */
vkg_status vkg_graph_capture_end(vkg_graph *g);
/* Runs the captured step again: one submit, no wait. */
vkg_status vkg_graph_replay(vkg_graph *g);
/* Refreshes an input of the captured step in place from another tensor (a device copy, no
 * wait): input must be a tensor the step reads, value of the same shape and dtype (a new
 * shape needs a new capture). */
vkg_status vkg_graph_input_copy(vkg_graph *g, vkg_tensor *input, vkg_tensor *value);
/* The same from host memory (bytes must be the input's size). For a host input (below) this is
 * a copy into the graph's own host-visible memory: no command recorded, no wait but for the run
 * sixteen replays back; otherwise a write in stream order. */
vkg_status vkg_graph_input_write(vkg_graph *g, vkg_tensor *input, const void *src, size_t bytes);
/* During the capture: input (contiguous, read by the step) is given its values from the host
 * before each replay, with vkg_graph_input_write only. Where device memory is host-visible
 * (integrated GPUs, lavapipe) the graph keeps one copy of it per run in flight, and each run's
 * command buffer copies its own into the tensor first, so writing the next run's values
 * neither records a command nor waits for the run in progress: the way to feed small inputs
 * (batch indices into a dataset kept on the device, labels) to a replay loop that does not wait
 * for each step. A run whose input was not written uses the newest value written (at first,
 * what the tensor held when the capture ended). Elsewhere the writes are stream-ordered as for
 * any input. Writing such an input by vkg_graph_input_copy is refused, and vkg_tensor_write
 * would be overwritten by the next run. */
vkg_status vkg_graph_host_input(vkg_graph *g, vkg_tensor *input);
bool vkg_graph_is_capturing(void);                 /* a capture is in progress            */
int64_t vkg_graph_dispatches(const vkg_graph *g);  /* captured dispatches; -1: not captured */
int64_t vkg_graph_replays(const vkg_graph *g);     /* runs so far, the capture run included */
/* Waits for its work, then frees the command buffers and lets go of the memory. NULL: no-op. */
void vkg_graph_free(vkg_graph *g);

#ifdef __cplusplus
}
#endif
#endif
