/* safetensors: read and write the Hugging Face tensor file format on the host.
 *
 *   float w[6] = { 1, 2, 3, 4, 5, 6 };
 *   vkg_st_tensor t = { .name = "fc1.weight", .dtype = VKG_ST_F32, .ndim = 2,
 *                       .shape = { 2, 3 }, .data = w, .nbytes = sizeof w };
 *   const char *meta[] = { "format", "pt" };               // key, value pairs
 *   if (vkg_safetensors_write("model.safetensors", &t, 1, meta, 1) != VKG_OK) ...
 *
 *   vkg_safetensors st;
 *   if (vkg_safetensors_read("model.safetensors", &st) != VKG_OK) {
 *       fprintf(stderr, "%s\n", vkg_last_error());   // names the file, tensor and problem
 *       return 1;
 *   }
 *   const vkg_st_tensor *fc1 = vkg_safetensors_find(&st, "fc1.weight");
 *   vkg_safetensors_free(&st);
 *
 * File layout: u64 little-endian header length N; N bytes of UTF-8 JSON
 * {"name":{"dtype":"F32","shape":[2,3],"data_offsets":[begin,end]},...,
 *  "__metadata__":{"key":"value"}}; then the data area, offsets relative to its start.
 *
 * Reader: refuses (VKG_ERR_FORMAT, message naming the file and tensor) a file shorter than 8
 * bytes, a header length past the end of the file or above VKG_ST_MAX_HEADER, a header that is
 * not valid UTF-8 JSON (NUL bytes included) or not an object, metadata that is not an object of
 * strings, an entry that is not an object, an unknown dtype (named in the message), a shape that
 * is not a list of at most 8 non-negative integers, data_offsets that are not [begin, end]
 * non-negative integers, end < begin, offsets outside the data area, overlaps or gaps (sorted by
 * begin, the tensors must tile the data area exactly, as the format requires), a byte size
 * other than numel * dtype size, and duplicate names. Integers are JSON numbers with no
 * fraction, at most 2^53. The order of entries in the header does not matter (a JSON object has
 * none); the reader keeps the tensors sorted by name.
 *
 * Writer: tensors are laid out in the order the reference implementation uses: by dtype size,
 * largest first, then by name (byte order), so every tensor's offset is a multiple of its
 * element size; the data follow each other with no gaps. "__metadata__" comes first when there
 * is metadata. The JSON is compact (cJSON, no spaces), padded with spaces to a multiple of 8.
 * The file is written to "<path>.tmp.XXXXXX" in the same directory, flushed, fsync'd and
 * renamed over path; on any failure the temporary file is removed and an existing file at path
 * is left as it was. A new file gets mode 0644; an existing file's mode is kept. */
#ifndef VKGRAD_SAFETENSORS_H
#define VKGRAD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest header accepted: 100,000,000 bytes, the reference implementation's limit. */
#define VKG_ST_MAX_HEADER ((uint64_t)100000000)
#define VKG_ST_MAX_DIMS 8

typedef enum vkg_st_dtype {
    VKG_ST_F32 = 0, VKG_ST_F16, VKG_ST_BF16, VKG_ST_I32, VKG_ST_I64, VKG_ST_U8, VKG_ST_DTYPE_COUNT
} vkg_st_dtype;

typedef struct vkg_st_tensor {
    const char *name;
    vkg_st_dtype dtype;
    int ndim;                          /* 0..8; 0 is a scalar of one element               */
    int64_t shape[VKG_ST_MAX_DIMS];
    const void *data;                  /* little-endian elements, row-major                 */
    size_t nbytes;                     /* numel * vkg_st_dtype_size(dtype)                  */
} vkg_st_tensor;

typedef struct vkg_safetensors {
    int count;
    vkg_st_tensor *tensors;            /* sorted by name                                    */
    int metadata_count;
    const char **metadata_keys;        /* in header order                                   */
    const char **metadata_values;
    const void *data;                  /* the data area                                     */
    size_t data_size;
    void *internal_;                   /* owned storage; do not touch                       */
} vkg_safetensors;

/* Reads a whole file. Each tensor's data points into storage owned by *out, and the data area
 * starts 16-byte aligned, so with the writer's order every tensor is aligned for its dtype. */
vkg_status vkg_safetensors_read(const char *path, vkg_safetensors *out);

/* Parses a file image held in memory. Tensor data point INTO bytes (no copy), so bytes must
 * outlive *out; names and metadata are owned by *out. */
vkg_status vkg_safetensors_parse(const void *bytes, size_t n, vkg_safetensors *out);

/* The tensor with this name, or NULL (binary search). */
const vkg_st_tensor *vkg_safetensors_find(const vkg_safetensors *st, const char *name);
/* The metadata value for key, or NULL. */
const char *vkg_safetensors_metadata(const vkg_safetensors *st, const char *key);

/* Frees everything *st owns and zeroes it; safe on a zeroed or already freed struct. */
void vkg_safetensors_free(vkg_safetensors *st);

/* Writes count tensors and metadata_count (key, value) string pairs, given as
 * metadata_kv[2*i], metadata_kv[2*i+1]. Names must be unique, non-empty and not
 * "__metadata__"; metadata keys must be unique. */
vkg_status vkg_safetensors_write(const char *path, const vkg_st_tensor *tensors, int count,
                                 const char *const *metadata_kv, int metadata_count);

/* "F32", "F16", "BF16", "I32", "I64", "U8"; NULL for an invalid value. */
const char *vkg_st_dtype_name(vkg_st_dtype dtype);
/* Bytes per element, 0 for an invalid value. */
size_t vkg_st_dtype_size(vkg_st_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif
