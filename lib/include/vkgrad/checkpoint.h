/* vkgrad checkpoints: named device tensors and the training position in one safetensors file.
 *
 *   vkg_named_tensor ts[] = { { "fc1.weight", w1 }, { "fc1.bias", b1 }, { "adam.fc1.weight.exp_avg", m1 } };
 *   vkg_checkpoint_save("run/ckpt.safetensors", ts, 3, &(vkg_checkpoint_desc){
 *       .position = { .step = step, .epoch = epoch, .batch = batch, .seed = 42, .rng_offset = off } });
 *   ...
 *   vkg_checkpoint_position pos;
 *   if (vkg_checkpoint_load("run/ckpt.safetensors", ts, 3, NULL, &pos) != VKG_OK) {
 *       fprintf(stderr, "%s\n", vkg_last_error());   // names the file, the tensor and the problem
 *       return 1;
 *   }
 *   // continue from pos.step; vkg_loader_seek(loader, pos.epoch, pos.batch)
 *
 * The API takes a plain list of (name, tensor) pairs, so anything that has tensors can be
 * saved: parameters, optimizer state, running statistics, counters kept as i32 tensors.
 *
 * The file is an ordinary safetensors file (vkgrad/safetensors.h): f32 tensors as F32, i32 as
 * I32, u8 as U8, row-major (views are saved as their values), readable by any implementation.
 * The position goes into "__metadata__" as decimal strings under the keys "vkgrad.step",
 * "vkgrad.epoch", "vkgrad.batch", "vkgrad.seed" and "vkgrad.rng_offset", with "format": "pt"
 * (what Hugging Face's loaders look for) unless the caller gives "format", and the caller's own
 * strings and integers beside them. Writes are atomic: the writer makes "<path>.tmp.XXXXXX" in
 * the same directory, fsyncs it and renames it over path, so a crash or a failure mid-save
 * leaves the previous checkpoint as it was.
 *
 * Loading is strict, like PyTorch's load_state_dict(strict=True): every tensor of the list
 * must be in the file (missing), every tensor of the file must be in the list (unexpected),
 * with the same dtype (no silent conversion) and shape, and every destination must be a
 * contiguous tensor. Everything is checked before anything is written: a refused load leaves
 * every tensor as it was. The message names the file and the tensor(s); the status is
 * VKG_ERR_FORMAT for a file that does not match the list, VKG_ERR_INVALID for a bad list,
 * VKG_ERR_IO for a file that cannot be read. */
#ifndef VKGRAD_CHECKPOINT_H
#define VKGRAD_CHECKPOINT_H

#include "vkgrad.h"
#include "vkgrad/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkg_named_tensor {
    const char *name;         /* unique in the list; not "__metadata__"                       */
    vkg_tensor *tensor;
} vkg_named_tensor;

/* Where training stands; all 0 in a file that has none of the keys. */
typedef struct vkg_checkpoint_position {
    int64_t step;             /* optimizer steps taken                                        */
    int64_t epoch, batch;     /* the loader's next batch (vkg_loader_seek)                    */
    uint64_t seed;            /* the run's random seed                                        */
    uint64_t rng_offset;      /* values of that seed's Philox stream used so far              */
} vkg_checkpoint_position;

/* Zero means default; NULL is all defaults. */
typedef struct vkg_checkpoint_desc {
    vkg_checkpoint_position position;
    const char *const *metadata;   /* extra (key, value) string pairs: metadata[2i], metadata[2i+1] */
    int metadata_count;
    const char *const *int_keys;   /* extra integers, saved as decimal strings                */
    const int64_t *int_values;
    int int_count;
} vkg_checkpoint_desc;

vkg_status vkg_checkpoint_save(const char *path, const vkg_named_tensor *tensors, int count,
                               const vkg_checkpoint_desc *desc);

/* Zero means strict; NULL is strict. */
typedef struct vkg_checkpoint_load_desc {
    bool allow_missing;       /* tensors the file lacks keep their values                       */
    bool allow_unexpected;    /* tensors of the file that are not in the list are ignored        */
} vkg_checkpoint_load_desc;

/* Loads into existing tensors; position may be NULL. */
vkg_status vkg_checkpoint_load(const char *path, const vkg_named_tensor *tensors, int count,
                               const vkg_checkpoint_load_desc *desc, vkg_checkpoint_position *position);

/* An open checkpoint, for a look at its tensors and metadata before (or instead of) loading. */
typedef struct vkg_checkpoint {
    vkg_safetensors file;     /* the tensors, by name (vkg_safetensors_find), and metadata      */
    vkg_checkpoint_position position;
    char path[1024];
} vkg_checkpoint;

vkg_status vkg_checkpoint_open(const char *path, vkg_checkpoint *ck);
vkg_status vkg_checkpoint_restore(const vkg_checkpoint *ck, const vkg_named_tensor *tensors, int count,
                                  const vkg_checkpoint_load_desc *desc);
/* A metadata string, or NULL. */
const char *vkg_checkpoint_get(const vkg_checkpoint *ck, const char *key);
/* A metadata integer: VKG_ERR_FORMAT (with a message) if the key is absent or not an integer. */
vkg_status vkg_checkpoint_get_int(const vkg_checkpoint *ck, const char *key, int64_t *out);
void vkg_checkpoint_close(vkg_checkpoint *ck);   /* safe on a zeroed or closed checkpoint */

/* ---- a module (vkgrad/nn.h) and its optimizer (vkgrad/optim.h) in one call ------------------
 * The module's parameters and buffers under their own names ("fc1.weight", as PyTorch's
 * state_dict), and, when opt is not NULL, each optimizer state tensor as
 * "optim.<param>.<state>" ("optim.fc1.weight.exp_avg") with each parameter's step count as the
 * metadata integer "optim.<param>.step". Loading is as strict as vkg_checkpoint_load (a file
 * with optimizer state loaded with opt NULL has unexpected tensors, unless allowed) and sets
 * the step counts back. desc's own metadata and integers are saved beside them. */
typedef struct vkg_module vkg_module;
typedef struct vkg_optim vkg_optim;
vkg_status vkg_checkpoint_save_module(const char *path, const vkg_module *m, const vkg_optim *opt,
                                      const vkg_checkpoint_desc *desc);
vkg_status vkg_checkpoint_load_module(const char *path, vkg_module *m, vkg_optim *opt,
                                      const vkg_checkpoint_load_desc *desc, vkg_checkpoint_position *position);

#ifdef __cplusplus
}
#endif
#endif
