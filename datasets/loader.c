/* The loader (loader.h): a dataset kept on the device (u8 as bytes) and batches gathered there
 * by shaders/loader_gather.comp through the epoch's order, or streamed from the host when it
 * does not fit. Both paths end in the same kernel and the same conversion table, so their
 * batches are equal bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "runtime/runtime.h"
#include "vkgrad/random.h"

/* Mirrors the Push block of shaders/loader_gather.comp: change both. */
typedef struct vkg_loader_push {
    uint32_t rows, size, first, flags;
    uint32_t table_tex;   /* loader_gather_tex: the table's first float in its texel view */
} vkg_loader_push;

enum { GATHER_IN_ORDER = 1, GATHER_LABELS = 2 };
enum { MODE_U8 = 0, MODE_WORDS = 1 };
#define LOCAL 128
#define DEFAULT_BATCH 64

struct vkg_loader {
    vkg_loader_desc d;
    int64_t size;                /* elements per item                                   */
    int64_t per_epoch;           /* batches                                             */
    int64_t epoch, batch, served;
    bool on_device;
    uint64_t uploaded;
    /* device-resident (outside every scope) */
    vkg_tensor *data;            /* (count * size,) u8 or f32; NULL when streaming       */
    vkg_tensor *labels;          /* (count,) i32; NULL when streaming or no labels      */
    vkg_tensor *order;           /* (count,) i32, the order of order_epoch              */
    vkg_tensor *table;           /* (256,) f32 conversion table; also the placeholder for
                                    read bindings a dispatch does not use                */
    vkg_tensor *no_labels;       /* (1,) i32, written by nobody: y's binding without labels */
    int64_t order_epoch;         /* -1: none yet                                         */
    /* host */
    int64_t *host_order;         /* streaming: the order of order_epoch                  */
    void *host_rows;             /* streaming: one batch of items                        */
    int32_t *host_labels;        /* streaming: one batch of labels                       */
};

static const char *const WHO = "vkg_loader_create";

/* Moves t out of every scope: the loader owns it until vkg_loader_free. */
static vkg_tensor *persist(vkg_tensor *t) {
    while (t && t->scope > 0) vkg_keep(t);
    return t;
}

static uint64_t default_budget(void) {
    const vkg_device_info *di = vkg_device();
    uint64_t best = 0;
    for (uint32_t i = 0; i < di->heap_count && i < 16; i++)
        if (di->heap_device_local[i] && di->heap_size[i] > best) best = di->heap_size[i];
    return best / 2;
}

/* Bytes the allocator takes for a storage of `bytes` (see vkg_storage_new). */
static uint64_t rounded(uint64_t bytes) {
    uint64_t a = vkg_ctx.storage_align ? vkg_ctx.storage_align : 1;
    if (bytes < 16) bytes = 16;
    return (bytes + a - 1) / a * a;
}

static vkg_status check_desc(const vkg_loader_desc *d, int64_t *size) {
    char b[160];
    if (d->images_dtype != VKG_U8 && d->images_dtype != VKG_F32)
        return vkg_fail(VKG_ERR_INVALID, "%s: images are %s; the loader takes u8 or f32", WHO,
                        vkg_dtype_name(d->images_dtype));
    if (d->labels && d->labels_dtype != VKG_U8 && d->labels_dtype != VKG_I32)
        return vkg_fail(VKG_ERR_INVALID, "%s: labels are %s; the loader takes u8 or i32", WHO,
                        vkg_dtype_name(d->labels_dtype));
    if (d->item_shape.ndim < 0 || d->item_shape.ndim > VKG_MAX_DIMS - 1)
        return vkg_fail(VKG_ERR_INVALID, "%s: an item has %d dims; 0 to %d (x adds the batch dim)", WHO,
                        d->item_shape.ndim, VKG_MAX_DIMS - 1);
    if (!vkg_shape_check(d->item_shape, WHO)) return vkg_last_status();
    *size = vkg_shape_numel(d->item_shape);
    if (*size == 0)
        return vkg_fail(VKG_ERR_INVALID, "%s: item shape %s has no elements", WHO,
                        vkg_shape_str(d->item_shape, b, sizeof b));
    if (d->count < 0) return vkg_fail(VKG_ERR_INVALID, "%s: count %lld is negative", WHO, (long long)d->count);
    if (d->count > 0 && !d->images) return vkg_fail(VKG_ERR_INVALID, "%s: images is NULL", WHO);
    if (d->batch_size < 0)
        return vkg_fail(VKG_ERR_INVALID, "%s: batch size %lld is negative", WHO, (long long)d->batch_size);
    if (d->normalize && (!isfinite(d->mean) || !isfinite(d->std) || d->std < 0))
        return vkg_fail(VKG_ERR_INVALID, "%s: mean %g and std %g do not normalise (std must be > 0)", WHO, d->mean,
                        d->std);
    /* indices in the kernel are u32: bytes of the dataset and elements of a batch */
    int64_t batch = d->batch_size ? d->batch_size : DEFAULT_BATCH;
    if (d->count > (int64_t)(UINT32_MAX / 4) / *size || batch > (int64_t)(UINT32_MAX / 4) / *size)
        return vkg_fail(VKG_ERR_TOO_LARGE, "%s: %lld items (batches of %lld) of %s are too many for 32-bit indices",
                        WHO, (long long)d->count, (long long)batch, vkg_shape_str(d->item_shape, b, sizeof b));
    return VKG_OK;
}

vkg_loader *vkg_loader_create(const vkg_loader_desc *desc) {
    if (!desc) return vkg_fail_null(VKG_ERR_INVALID, "%s: desc is NULL", WHO);
    if (!vkg_ready(WHO)) return NULL;
    int64_t size = 0;
    if (check_desc(desc, &size) != VKG_OK) return NULL;
    vkg_loader *l = calloc(1, sizeof *l);
    if (!l) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", WHO);
    l->d = *desc;
    if (!l->d.batch_size) l->d.batch_size = DEFAULT_BATCH;
    if (l->d.normalize && l->d.std == 0.0f) l->d.std = 1.0f;
    l->size = size;
    l->order_epoch = -1;
    int64_t n = l->d.count, bs = l->d.batch_size;
    l->per_epoch = l->d.drop_last ? n / bs : (n + bs - 1) / bs;

    size_t es = vkg_dtype_size(l->d.images_dtype);
    uint64_t data_bytes = (uint64_t)n * (uint64_t)size * es, index_bytes = (uint64_t)n * 4;
    uint64_t range = vkg_device()->max_storage_buffer_range;
    uint64_t need = rounded(data_bytes) + (l->d.labels ? rounded(index_bytes) : 0) + rounded(index_bytes) +
                    rounded(256 * 4) + rounded(4);
    uint64_t budget = l->d.device_budget ? l->d.device_budget : default_budget();
    l->on_device = !l->d.stream && rounded(data_bytes) <= range && rounded(index_bytes) <= range && need <= budget;
    char b[160];
    if (rounded((uint64_t)bs * (uint64_t)size * 4) > range) {
        vkg_fail(VKG_ERR_TOO_LARGE, "%s: a batch of %lld items of %s as f32 is more than one storage binding can address",
                 WHO, (long long)bs, vkg_shape_str(l->d.item_shape, b, sizeof b));
        goto fail;
    }

    /* the conversion table: exact x / 255, then the optional normalisation, in f32 */
    float table[256];
    for (int i = 0; i < 256; i++) {
        float v = (float)i / 255.0f;
        table[i] = l->d.normalize ? (v - l->d.mean) / l->d.std : v;
    }
    l->table = persist(vkg_from_data(VKG_SHAPE(256), table));
    l->no_labels = persist(vkg_from_data_dtype(VKG_SHAPE(1), VKG_I32, (int32_t[]){ 0 }));
    if (!l->table || !l->no_labels) goto fail;
    l->uploaded += 256 * 4 + 4;

    if (l->on_device) {
        l->data = persist(vkg_from_data_dtype(VKG_SHAPE(n * size), l->d.images_dtype, l->d.images));
        if (!l->data) goto fail;
        l->uploaded += data_bytes;
        if (l->d.labels) {
            int32_t *lab = malloc((size_t)(n ? n : 1) * sizeof *lab);
            if (!lab) {
                vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory for %lld labels", WHO, (long long)n);
                goto fail;
            }
            for (int64_t i = 0; i < n; i++)
                lab[i] = l->d.labels_dtype == VKG_U8 ? ((const uint8_t *)l->d.labels)[i] : ((const int32_t *)l->d.labels)[i];
            l->labels = persist(vkg_from_data_dtype(VKG_SHAPE(n), VKG_I32, lab));
            free(lab);
            if (!l->labels) goto fail;
            l->uploaded += index_bytes;
        }
        l->d.images = NULL;   /* not needed again: the caller may free them */
        l->d.labels = NULL;
    } else {
        l->host_order = malloc((size_t)(n ? n : 1) * sizeof *l->host_order);
        l->host_rows = malloc((size_t)bs * (size_t)size * es);
        l->host_labels = malloc((size_t)bs * sizeof *l->host_labels);
        if (!l->host_order || !l->host_rows || !l->host_labels) {
            vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory for the streaming buffers", WHO);
            goto fail;
        }
    }
    return l;
fail:
    vkg_loader_free(l);
    return NULL;
}

void vkg_loader_free(vkg_loader *l) {
    if (!l) return;
    vkg_free(l->data);
    vkg_free(l->labels);
    vkg_free(l->order);
    vkg_free(l->table);
    vkg_free(l->no_labels);
    free(l->host_order);
    free(l->host_rows);
    free(l->host_labels);
    free(l);
}

vkg_status vkg_loader_order(const vkg_loader *l, int64_t epoch, int64_t *out) {
    if (!l || (!out && l->d.count > 0)) return vkg_fail(VKG_ERR_INVALID, "vkg_loader_order: NULL loader or out");
    if (epoch < 0) return vkg_fail(VKG_ERR_INVALID, "vkg_loader_order: epoch %lld is negative", (long long)epoch);
    if (l->d.no_shuffle)
        for (int64_t i = 0; i < l->d.count; i++) out[i] = i;
    else
        vkg_permutation(out, l->d.count, l->d.seed + (uint64_t)epoch);
    return VKG_OK;
}

/* Makes the current epoch's order available: on the host (streaming) or uploaded as i32. */
static vkg_status ensure_order(vkg_loader *l) {
    if (l->order_epoch == l->epoch) return VKG_OK;
    int64_t n = l->d.count;
    if (!l->on_device) {
        vkg_loader_order(l, l->epoch, l->host_order);
        l->order_epoch = l->epoch;
        return VKG_OK;
    }
    int64_t *o = malloc((size_t)(n ? n : 1) * sizeof *o);
    uint32_t *o32 = malloc((size_t)(n ? n : 1) * sizeof *o32);
    vkg_status st = VKG_OK;
    if (!o || !o32) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "vkg_loader_next: out of host memory for an order of %lld", (long long)n);
        goto done;
    }
    vkg_loader_order(l, l->epoch, o);
    for (int64_t i = 0; i < n; i++) o32[i] = (uint32_t)o[i];
    /* a new tensor each epoch: the old one may still be read by batches in flight */
    vkg_tensor *t = persist(vkg_from_data_dtype(VKG_SHAPE(n), VKG_I32, o32));
    if (!t) {
        st = vkg_last_status();
        goto done;
    }
    vkg_free(l->order);
    l->order = t;
    l->order_epoch = l->epoch;
    l->uploaded += (uint64_t)n * 4;
done:
    free(o);
    free(o32);
    return st;
}

static vkg_status gather(vkg_loader *l, vkg_tensor *x, vkg_tensor *y, const vkg_tensor *data, uint32_t rows,
                         uint32_t first, uint32_t flags) {
    vkg_loader_push pc = { rows, (uint32_t)l->size, first, flags, (uint32_t)l->table->offset };
    uint64_t n = (uint64_t)rows * (uint64_t)l->size;
    const vkg_tensor *ph = l->table; /* placeholder for read bindings not used */
    bool words = l->d.images_dtype != VKG_U8, pixels4 = !words && l->size % 4 == 0;
    vkg_dispatch_desc d = {
        .shader = "loader_gather", .op = VKG_OP_COUNT, .name = "loader_gather",
        .spec = { words ? MODE_WORDS : MODE_U8, pixels4 }, .nspec = 2, .local_size = LOCAL,
        .groups = { vkg_groups_for(pixels4 ? n / 4 : n, LOCAL) },
        .bind = { x, y ? y : l->no_labels, data, (flags & GATHER_LABELS) && l->labels ? l->labels : ph,
                  (flags & GATHER_IN_ORDER) ? ph : l->order, l->table },
        .nout = 2, .push = &pc, .push_size = sizeof pc,
        .bytes = (double)n * (words ? 8.0 : 5.0) + (double)rows * (y ? 12.0 : 4.0) };
    /* the byte table through an R32F texel view where the device reads those faster: four
     * table reads a word, against one of the data */
    if (vkg_texel_bind(&d, 0x20u, 0x20u)) {
        d.shader = "loader_gather_tex";
        vkg_texel_rebase(&d, 5, (uint32_t *[]){ &pc.table_tex }, 1);
    }
    return vkg_dispatch(&d);
}

/* Streaming: gathers the batch's rows and labels on the host, uploads them, converts u8 on
 * the device with the same kernel. */
static vkg_status stream_batch(vkg_loader *l, vkg_tensor *x, vkg_tensor **y, int64_t first, int64_t rows) {
    size_t es = vkg_dtype_size(l->d.images_dtype), row_bytes = (size_t)l->size * es;
    const uint8_t *src = l->d.images;
    uint8_t *dst = l->host_rows;
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * row_bytes, src + (size_t)l->host_order[first + r] * row_bytes, row_bytes);
    vkg_status st;
    if (l->d.images_dtype == VKG_U8) {
        vkg_tensor *up = vkg_from_data_dtype(VKG_SHAPE(rows * l->size), VKG_U8, dst);
        if (!up) return vkg_last_status();
        st = gather(l, x, NULL, up, (uint32_t)rows, 0, GATHER_IN_ORDER);
        vkg_free(up); /* released in stream order: the dispatch still reads it */
    } else {
        st = vkg_tensor_write(x, dst, (size_t)rows * row_bytes);
    }
    if (st != VKG_OK) return st;
    l->uploaded += (uint64_t)rows * row_bytes;
    if (l->d.labels) {
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = l->host_order[first + r];
            l->host_labels[r] =
                l->d.labels_dtype == VKG_U8 ? ((const uint8_t *)l->d.labels)[i] : ((const int32_t *)l->d.labels)[i];
        }
        *y = vkg_from_data_dtype(VKG_SHAPE(rows), VKG_I32, l->host_labels);
        if (!*y) return vkg_last_status();
        l->uploaded += (uint64_t)rows * 4;
    }
    return VKG_OK;
}

bool vkg_loader_next(vkg_loader *l, vkg_batch *b) {
    vkg_batch none = { .status = VKG_OK };
    if (!b) {
        vkg_fail(VKG_ERR_INVALID, "vkg_loader_next: batch is NULL");
        return false;
    }
    *b = none;
    if (!l) {
        b->status = vkg_fail(VKG_ERR_INVALID, "vkg_loader_next: loader is NULL");
        return false;
    }
    b->epoch = l->epoch;
    b->index = l->batch;
    if (l->batch >= l->per_epoch) { /* the epoch is over: the next call starts the next one */
        l->epoch++;
        l->batch = 0;
        return false;
    }
    vkg_status st = ensure_order(l);
    if (st != VKG_OK) {
        b->status = st;
        return false;
    }
    int64_t first = l->batch * l->d.batch_size;
    int64_t rows = l->d.count - first < l->d.batch_size ? l->d.count - first : l->d.batch_size;
    vkg_shape xs = { .ndim = l->d.item_shape.ndim + 1 };
    xs.d[0] = rows;
    for (int i = 0; i < l->d.item_shape.ndim; i++) xs.d[i + 1] = l->d.item_shape.d[i];
    vkg_tensor *x = vkg_tensor_alloc(xs, VKG_F32, !l->on_device && l->d.images_dtype == VKG_F32, "vkg_loader_next");
    vkg_tensor *y = NULL;
    if (!x) {
        b->status = vkg_last_status();
        return false;
    }
    if (l->on_device) {
        if (l->labels) {
            y = vkg_tensor_alloc(VKG_SHAPE(rows), VKG_I32, false, "vkg_loader_next");
            if (!y) {
                st = vkg_last_status();
                goto fail;
            }
        }
        st = gather(l, x, y, l->data, (uint32_t)rows, (uint32_t)first, y ? GATHER_LABELS : 0);
    } else {
        st = stream_batch(l, x, &y, first, rows);
    }
    if (st != VKG_OK) goto fail;
    *b = (vkg_batch){ .x = x, .y = y, .size = rows, .epoch = l->epoch, .index = l->batch, .status = VKG_OK };
    l->batch++;
    l->served++;
    return true;
fail:
    vkg_free(x);
    vkg_free(y);
    b->status = st;
    return false;
}

vkg_status vkg_loader_seek(vkg_loader *l, int64_t epoch, int64_t batch) {
    if (!l) return vkg_fail(VKG_ERR_INVALID, "vkg_loader_seek: loader is NULL");
    if (epoch < 0 || batch < 0 || batch > l->per_epoch)
        return vkg_fail(VKG_ERR_INVALID, "vkg_loader_seek: epoch %lld, batch %lld: an epoch has batches 0 .. %lld",
                        (long long)epoch, (long long)batch, (long long)l->per_epoch);
    l->epoch = epoch;
    l->batch = batch;
    return VKG_OK;
}

static uint64_t storage_bytes(const vkg_tensor *t) { return t && t->storage ? (uint64_t)t->storage->size : 0; }

vkg_loader_info vkg_loader_info_get(const vkg_loader *l) {
    if (!l) return (vkg_loader_info){ 0 };
    return (vkg_loader_info){
        .count = l->d.count, .batch_size = l->d.batch_size, .batches_per_epoch = l->per_epoch,
        .epoch = l->epoch, .batch = l->batch, .batches_served = l->served, .on_device = l->on_device,
        .device_bytes = storage_bytes(l->data) + storage_bytes(l->labels) + storage_bytes(l->order) +
                        storage_bytes(l->table) + storage_bytes(l->no_labels),
        .bytes_uploaded = l->uploaded,
    };
}

bool vkg_loader_on_device(const vkg_loader *l) { return l && l->on_device; }
