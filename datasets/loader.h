/* Loader: feeds a dataset to the device in shuffled batches, gathered on the device.
 *
 *   vkg_mnist m;                                       // datasets/fashion_mnist.h
 *   vkg_mnist_load(NULL, &m);
 *   vkg_loader *ld = vkg_loader_create(&(vkg_loader_desc){
 *       .images = m.train.images, .images_dtype = VKG_U8, .item_shape = VKG_SHAPE(28, 28),
 *       .labels = m.train.labels, .labels_dtype = VKG_U8, .count = m.train.count,
 *       .batch_size = 128, .seed = 42 });
 *   if (!ld) { fprintf(stderr, "%s\n", vkg_last_error()); return 1; }
 *   // on the device (47 MB of bytes): m may be freed now, unless vkg_loader_on_device(ld) is false
 *   for (int epoch = 0; epoch < 10; epoch++) {
 *       vkg_batch b;
 *       for (;;) {
 *           vkg_scope_begin();                         // one step: the batch's tensors go at its end
 *           bool more = vkg_loader_next(ld, &b);       // b.x (128, 28, 28) f32 in [0, 1], b.y (128,) i32
 *           if (more) { ... forward, backward, step ... }
 *           vkg_scope_end();
 *           if (!more) break;
 *       }
 *       if (b.status != VKG_OK) { fprintf(stderr, "%s\n", vkg_last_error()); return 1; }
 *   }
 *   vkg_loader_free(ld);                               // before vkg_shutdown
 *
 * Two paths, same batches bit for bit:
 * - On the device (the dataset fits the byte budget and one storage binding): the images are
 *   uploaded once, as they are (u8 stays u8: Fashion-MNIST's training set is 47,040,000 bytes,
 *   where f32 would be 188 MB, past lavapipe's 128 MiB per binding), the labels once as i32.
 *   Each epoch uploads its order (count i32, 240 KB for 60,000 items); each batch is one
 *   dispatch of shaders/loader_gather.comp ("loader_gather" in VKG_PROFILE) that reads the
 *   batch's rows through that order and writes x and y. No per-batch host copy of any data.
 * - Streaming (it does not fit, or .stream): each batch's rows are gathered on the host from
 *   desc.images (which must then stay valid while the loader is used) and uploaded, u8 as
 *   bytes, then converted by the same kernel; labels are uploaded as i32.
 *
 * u8 images are converted through a 256-entry table computed on the host: value(b) = b / 255
 * (the correctly rounded f32 quotient), then, with .normalize, (value - mean) / std in f32.
 * So the device gives exactly the bits the C expression `((float)b / 255.0f - mean) / std`
 * gives on the host, on every device (no reliance on the shader's division precision). The
 * kernel reads the bytes as a uint[] buffer and extracts each with a shift and a mask, so it
 * needs no 8-bit storage feature (storageBuffer8BitAccess). f32 images are gathered as they
 * are (normalise them before, once).
 *
 * Order: with shuffling (the default), epoch e visits the items in the order
 * vkg_permutation(order, count, seed + e) (vkgrad/random.h); with .no_shuffle, 0 .. count-1.
 * Batch i of an epoch holds order[i * batch_size ...]; the last batch is smaller unless
 * .drop_last, which skips it. The loader counts epochs and batches; vkg_loader_seek moves to
 * any (epoch, batch), so a resumed run (vkgrad/checkpoint.h) continues with the same batches. */
#ifndef VKG_DATASETS_LOADER_H
#define VKG_DATASETS_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zero means default. */
typedef struct vkg_loader_desc {
    const void *images;        /* count * numel(item_shape) elements of images_dtype, row-major */
    vkg_dtype images_dtype;    /* VKG_U8 (converted to f32) or VKG_F32                       */
    vkg_shape item_shape;      /* one item, e.g. (28, 28) or (3, 32, 32); x is (B, item...)   */
    const void *labels;        /* count elements of labels_dtype, or NULL (then y is NULL)    */
    vkg_dtype labels_dtype;    /* VKG_U8 or VKG_I32; y is i32 either way                     */
    int64_t count;             /* items                                                       */
    int64_t batch_size;        /* 0: 64                                                       */
    bool drop_last;            /* skip the last, smaller batch of an epoch                    */
    bool no_shuffle;           /* visit items in order                                        */
    uint64_t seed;             /* epoch e is shuffled with seed + e                           */
    bool normalize;            /* u8 only: (x/255 - mean) / std                               */
    float mean, std;           /* with normalize; std 0: 1                                    */
    uint64_t device_budget;    /* bytes the resident dataset may take; 0: half the largest
                                  device-local heap. Past it (or past one storage binding),
                                  the loader streams.                                         */
    bool stream;               /* stream from the host even when the dataset would fit        */
} vkg_loader_desc;

typedef struct vkg_loader vkg_loader;

typedef struct vkg_batch {
    vkg_tensor *x;             /* (size, item...) f32, in the scope current at vkg_loader_next  */
    vkg_tensor *y;             /* (size,) i32, or NULL without labels                          */
    int64_t size;              /* rows: batch_size, or fewer for an epoch's last batch          */
    int64_t epoch, index;      /* this batch is number `index` of epoch `epoch`                 */
    vkg_status status;         /* VKG_OK, or why vkg_loader_next returned false                 */
} vkg_batch;

typedef struct vkg_loader_info {
    int64_t count, batch_size, batches_per_epoch;
    int64_t epoch, batch;      /* position: the next batch vkg_loader_next returns             */
    int64_t batches_served;    /* since create                                                 */
    bool on_device;            /* false: streaming                                             */
    uint64_t device_bytes;     /* bytes the loader keeps on the device between batches (dataset,
                                  labels, the epoch's order, the conversion table), the
                                  allocator's rounding included                              */
    uint64_t bytes_uploaded;   /* host-to-device bytes since create (dataset, orders, batches) */
} vkg_loader_info;

/* NULL with vkg_last_error() on a bad description, or when the upload fails. Its tensors live
 * outside every scope (like parameters) until vkg_loader_free. */
vkg_loader *vkg_loader_create(const vkg_loader_desc *desc);
/* Frees the loader's device tensors; call it before vkg_shutdown. NULL is ignored. */
void vkg_loader_free(vkg_loader *l);

/* The next batch of the current epoch: true and *b filled, or false at the end of the epoch
 * (b->status VKG_OK; the loader has moved to the next epoch, batch 0) or on a failure
 * (b->status and vkg_last_error() say why; the position does not move). */
bool vkg_loader_next(vkg_loader *l, vkg_batch *b);

/* Moves to batch `batch` (0 .. batches_per_epoch) of epoch `epoch` (>= 0). */
vkg_status vkg_loader_seek(vkg_loader *l, int64_t epoch, int64_t batch);

vkg_loader_info vkg_loader_info_get(const vkg_loader *l);
bool vkg_loader_on_device(const vkg_loader *l);

/* The order of epoch `epoch` (count indices), as the loader uses it. Host only. */
vkg_status vkg_loader_order(const vkg_loader *l, int64_t epoch, int64_t *out);

#ifdef __cplusplus
}
#endif
#endif
