/* IDX reader (the MNIST file format): plain or gzip files through zlib, and a memory parser.
 *
 *   vkg_idx idx;
 *   if (vkg_idx_read("train-images-idx3-ubyte.gz", &idx) != VKG_OK) {
 *       fprintf(stderr, "%s\n", vkg_last_error());
 *       return 1;
 *   }
 *   // idx.dtype_code == VKG_IDX_U8, idx.ndim == 3, idx.dims = {60000, 28, 28}
 *   const uint8_t *pixels = idx.data;          // idx.count items of idx.item_size bytes
 *   vkg_idx_free(&idx);
 *
 * Layout: bytes 0-1 are zero, byte 2 the element type code, byte 3 the number of dimensions
 * (1..8), then one big-endian u32 per dimension, then the elements in row-major order, each
 * big-endian. The reader converts multi-byte elements to host byte order.
 *
 * What is refused (VKG_ERR_FORMAT, with a message naming the file and the problem): a wrong
 * magic, an unknown type code, ndim 0 or > 8, dimensions whose product (or byte size)
 * overflows or passes VKG_IDX_MAX_BYTES, fewer data bytes than the header promises, and ANY
 * byte after the promised data (the trailing-garbage tolerance is zero bytes; for .gz files
 * this counts decompressed bytes — like gzip(1), zlib ignores non-gzip junk after the last
 * compressed member). Truncated or corrupt gzip streams are refused (gzerror after the last
 * read, and the result of gzclose, are both checked).
 *
 * Gzip bombs: no more than the promised size plus one byte is ever inflated, the promised size
 * is capped at VKG_IDX_MAX_BYTES, and the data buffer grows with the bytes actually read, so a
 * short file that promises a lot costs little memory. */
#ifndef VKG_DATASETS_IDX_H
#define VKG_DATASETS_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "vkgrad.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest data area (bytes) an IDX file may promise: 2 GiB. Fashion-MNIST's largest file
 * holds 47,040,000 bytes. */
#define VKG_IDX_MAX_BYTES ((uint64_t)2 << 30)
#define VKG_IDX_MAX_DIMS 8

enum {
    VKG_IDX_U8 = 0x08,
    VKG_IDX_I8 = 0x09,
    VKG_IDX_I16 = 0x0B,
    VKG_IDX_I32 = 0x0C,
    VKG_IDX_F32 = 0x0D,
    VKG_IDX_F64 = 0x0E,
};

typedef struct vkg_idx {
    int dtype_code;                    /* VKG_IDX_U8 ... VKG_IDX_F64                        */
    int ndim;                          /* 1..8                                              */
    uint32_t dims[VKG_IDX_MAX_DIMS];   /* dims[ndim..7] are 0                               */
    size_t count;                      /* product of dims (may be 0)                        */
    size_t item_size;                  /* bytes per element: 1, 2, 4 or 8                    */
    void *data;                        /* count * item_size bytes, host order; never NULL on success */
} vkg_idx;

/* Reads a plain or gzip-compressed IDX file. On failure *out is zeroed and nothing leaks. */
vkg_status vkg_idx_read(const char *path, vkg_idx *out);

/* Parses an IDX image held in memory. If bytes start with the gzip magic (1f 8b) they are
 * inflated with zlib (concatenated members are decoded, junk after the last member ignored,
 * exactly as vkg_idx_read does); otherwise they are read as a plain IDX file. The data is
 * copied: bytes need not outlive *out. */
vkg_status vkg_idx_parse(const void *bytes, size_t n, vkg_idx *out);

/* Frees idx->data and zeroes *idx; safe on a zeroed or already freed struct. */
void vkg_idx_free(vkg_idx *idx);

/* Bytes per element of a type code, or 0 for an unknown code. */
size_t vkg_idx_item_size(int dtype_code);
/* "u8", "i8", "i16", "i32", "f32", "f64", or "unknown". */
const char *vkg_idx_dtype_name(int dtype_code);

#ifdef __cplusplus
}
#endif
#endif
