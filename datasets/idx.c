/* IDX reader: one decoder over a small byte-source abstraction, so that files (through zlib's
 * gz* API, which also reads plain files) and memory images (plain, or gzip through inflate)
 * pass the same checks. See idx.h for what is refused and why. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "idx.h"
#include "runtime/error.h"

/* First allocation for the data area; it doubles as bytes arrive, up to what is promised. */
#define IDX_FIRST_CHUNK ((size_t)1 << 20)

typedef enum src_kind { SRC_GZFILE, SRC_MEM, SRC_INFLATE } src_kind;

typedef struct src {
    src_kind kind;
    const char *name;          /* for messages: the path, or "IDX memory image" */
    gzFile gz;                 /* SRC_GZFILE */
    const uint8_t *mem;        /* SRC_MEM, SRC_INFLATE */
    size_t mem_n, mem_pos;
    z_stream zs;               /* SRC_INFLATE */
    bool zs_ready, zs_done;
} src;

size_t vkg_idx_item_size(int dtype_code) {
    switch (dtype_code) {
    case VKG_IDX_U8: case VKG_IDX_I8: return 1;
    case VKG_IDX_I16: return 2;
    case VKG_IDX_I32: case VKG_IDX_F32: return 4;
    case VKG_IDX_F64: return 8;
    }
    return 0;
}

const char *vkg_idx_dtype_name(int dtype_code) {
    switch (dtype_code) {
    case VKG_IDX_U8: return "u8";
    case VKG_IDX_I8: return "i8";
    case VKG_IDX_I16: return "i16";
    case VKG_IDX_I32: return "i32";
    case VKG_IDX_F32: return "f32";
    case VKG_IDX_F64: return "f64";
    }
    return "unknown";
}

void vkg_idx_free(vkg_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* gzerror's message starts with the path; the caller's message already names it. */
static const char *gz_message(src *s, int *err) {
    const char *msg = gzerror(s->gz, err);
    size_t n = strlen(s->name);
    if (msg && strncmp(msg, s->name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
    return msg ? msg : "unknown zlib error";
}

/* Reads up to n bytes; *got < n only at a clean end of input. A damaged stream is an error. */
static vkg_status gz_src_read(src *s, uint8_t *buf, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > (size_t)1 << 30) want = (size_t)1 << 30;
        errno = 0;
        int r = gzread(s->gz, buf + *got, (unsigned)want);
        if (r < 0) {
            int err = 0;
            const char *msg = gz_message(s, &err);
            if (err == Z_ERRNO)
                return vkg_fail(VKG_ERR_IO, "%s: cannot read (%s)", s->name, strerror(errno));
            return vkg_fail(VKG_ERR_FORMAT, "%s: corrupt gzip data (%s)", s->name, msg);
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    if (*got < n) {
        /* zlib returns a short count with no error for a truncated stream: only gzerror says. */
        int err = Z_OK;
        const char *msg = gz_message(s, &err);
        if (err == Z_ERRNO)
            return vkg_fail(VKG_ERR_IO, "%s: cannot read (%s)", s->name, strerror(errno));
        if (err != Z_OK)
            return vkg_fail(VKG_ERR_FORMAT, "%s: truncated or corrupt gzip data (%s)", s->name, msg);
    }
    return VKG_OK;
}

/* Mirrors gzread: members back to back are all decoded; non-gzip bytes after a member end
 * the input silently. */
static vkg_status inflate_src_read(src *s, uint8_t *buf, size_t n, size_t *got) {
    *got = 0;
    while (*got < n && !s->zs_done) {
        if (s->zs.avail_in == 0 && s->mem_pos < s->mem_n) {
            size_t chunk = s->mem_n - s->mem_pos;
            if (chunk > (size_t)1 << 30) chunk = (size_t)1 << 30;
            s->zs.next_in = (Bytef *)(uintptr_t)(s->mem + s->mem_pos);
            s->zs.avail_in = (uInt)chunk;
            s->mem_pos += chunk;
        }
        size_t want = n - *got;
        if (want > (size_t)1 << 30) want = (size_t)1 << 30;
        s->zs.next_out = buf + *got;
        s->zs.avail_out = (uInt)want;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        *got += want - s->zs.avail_out;
        if (r == Z_STREAM_END) {
            size_t left = s->zs.avail_in + (s->mem_n - s->mem_pos);
            const uint8_t *next = s->zs.next_in;
            /* Another member follows only if its magic does (gz_look does the same). */
            bool more = false;
            if (left >= 2) {
                uint8_t b0 = s->zs.avail_in >= 1 ? next[0] : s->mem[s->mem_pos];
                uint8_t b1 = s->zs.avail_in >= 2 ? next[1]
                           : s->zs.avail_in == 1 ? s->mem[s->mem_pos] : s->mem[s->mem_pos + 1];
                more = b0 == 0x1f && b1 == 0x8b;
            }
            if (!more) {
                s->zs_done = true;
                break;
            }
            if (inflateReset(&s->zs) != Z_OK)
                return vkg_fail(VKG_ERR_FORMAT, "%s: cannot restart inflate", s->name);
            continue;
        }
        if (r == Z_OK) continue;
        if (r == Z_BUF_ERROR) {
            if (s->zs.avail_in == 0 && s->mem_pos < s->mem_n) continue;  /* refill */
            return vkg_fail(VKG_ERR_FORMAT, "%s: truncated gzip data (unexpected end of input)",
                            s->name);
        }
        if (r == Z_MEM_ERROR)
            return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: inflate is out of memory", s->name);
        return vkg_fail(VKG_ERR_FORMAT, "%s: corrupt gzip data (%s)", s->name,
                        s->zs.msg ? s->zs.msg : "inflate failed");
    }
    return VKG_OK;
}

static vkg_status src_read(src *s, void *buf, size_t n, size_t *got) {
    switch (s->kind) {
    case SRC_GZFILE: return gz_src_read(s, buf, n, got);
    case SRC_INFLATE: return inflate_src_read(s, buf, n, got);
    case SRC_MEM: break;
    }
    size_t left = s->mem_n - s->mem_pos;
    *got = n < left ? n : left;
    if (*got) memcpy(buf, s->mem + s->mem_pos, *got);
    s->mem_pos += *got;
    return VKG_OK;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void swap_to_host(uint8_t *p, size_t count, size_t item) {
    if (item == 1 || !host_is_little_endian()) return;
    for (size_t i = 0; i < count; i++, p += item)
        for (size_t a = 0, b = item - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* The format itself: header, size checks, data (grown as it arrives), no trailing bytes. */
static vkg_status idx_decode(src *s, vkg_idx *out) {
    vkg_status st = VKG_OK;
    uint8_t *data = NULL;
    uint8_t head[4 + 4 * VKG_IDX_MAX_DIMS];
    size_t got = 0;

    if ((st = src_read(s, head, 4, &got)) != VKG_OK) goto done;
    if (got < 4) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: only %zu bytes, shorter than the 4-byte IDX magic",
                      s->name, got);
        goto done;
    }
    if (head[0] != 0 || head[1] != 0) {
        st = vkg_fail(VKG_ERR_FORMAT,
                      "%s: bad IDX magic %02x %02x %02x %02x: the first two bytes must be zero",
                      s->name, head[0], head[1], head[2], head[3]);
        goto done;
    }
    int code = head[2], ndim = head[3];
    size_t item = vkg_idx_item_size(code);
    if (item == 0) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: bad IDX magic: unknown element type code 0x%02x "
                      "(expected 08, 09, 0B, 0C, 0D or 0E)", s->name, code);
        goto done;
    }
    if (ndim < 1 || ndim > VKG_IDX_MAX_DIMS) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: bad IDX magic: %d dimensions (1 to %d allowed)",
                      s->name, ndim, VKG_IDX_MAX_DIMS);
        goto done;
    }
    if ((st = src_read(s, head + 4, 4 * (size_t)ndim, &got)) != VKG_OK) goto done;
    if (got < 4 * (size_t)ndim) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: header ends after %zu of the %d dimension sizes",
                      s->name, got / 4, ndim);
        goto done;
    }
    uint32_t dims[VKG_IDX_MAX_DIMS] = { 0 };
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *d = head + 4 + 4 * i;
        dims[i] = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
        if (dims[i] == 0) empty = true;
    }
    uint64_t count = empty ? 0 : 1;
    for (int i = 0; i < ndim && !empty; i++) {
        if (count > UINT64_MAX / dims[i]) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: the product of the %d dimensions overflows "
                          "(dimension %d is %u)", s->name, ndim, i, dims[i]);
            goto done;
        }
        count *= dims[i];
    }
    if (count > VKG_IDX_MAX_BYTES / item) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: header promises %llu elements of %zu bytes, more than "
                      "the %llu-byte limit", s->name, (unsigned long long)count, item,
                      (unsigned long long)VKG_IDX_MAX_BYTES);
        goto done;
    }
    size_t bytes = (size_t)(count * item);

    /* Grow with the data actually present, so a short file promising 2 GiB costs little. */
    size_t cap = bytes < IDX_FIRST_CHUNK ? bytes : IDX_FIRST_CHUNK;
    data = malloc(cap ? cap : 1);
    if (!data) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", s->name, cap);
        goto done;
    }
    size_t have = 0;
    while (have < bytes) {
        if (have == cap) {
            size_t ncap = cap > bytes / 2 ? bytes : cap * 2;
            uint8_t *n = realloc(data, ncap);
            if (!n) {
                st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", s->name, ncap);
                goto done;
            }
            data = n;
            cap = ncap;
        }
        if ((st = src_read(s, data + have, cap - have, &got)) != VKG_OK) goto done;
        have += got;
        if (got == 0 || have < cap) break;  /* end of input */
    }
    if (have < bytes) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: header promises %zu bytes of data but the file holds %zu",
                      s->name, bytes, have);
        goto done;
    }
    uint8_t probe;
    if ((st = src_read(s, &probe, 1, &got)) != VKG_OK) goto done;
    if (got) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: trailing bytes after the %zu bytes of data the header "
                      "promises (trailing garbage is not allowed)", s->name, bytes);
        goto done;
    }
    swap_to_host(data, (size_t)count, item);
    out->dtype_code = code;
    out->ndim = ndim;
    memcpy(out->dims, dims, sizeof dims);
    out->count = (size_t)count;
    out->item_size = item;
    out->data = data;
    data = NULL;
done:
    free(data);
    return st;
}

vkg_status vkg_idx_read(const char *path, vkg_idx *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_idx_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return vkg_fail(VKG_ERR_INVALID, "vkg_idx_read: path is NULL");
    vkg_status st = VKG_OK;
    src s = { .kind = SRC_GZFILE, .name = path };
    errno = 0;
    s.gz = gzopen(path, "rb");
    if (!s.gz)
        return vkg_fail(VKG_ERR_IO, "%s: cannot open (%s)", path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(s.gz, 1 << 17);
    st = idx_decode(&s, out);
    int rc = gzclose(s.gz);  /* a missing CRC trailer or truncated member shows only here */
    if (st == VKG_OK && rc != Z_OK) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: truncated or corrupt gzip data (gzclose: %s)", path,
                      rc == Z_BUF_ERROR ? "unexpected end of file" : zError(rc));
        vkg_idx_free(out);
    }
    return st;
}

vkg_status vkg_idx_parse(const void *bytes, size_t n, vkg_idx *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_idx_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!bytes && n) return vkg_fail(VKG_ERR_INVALID, "vkg_idx_parse: bytes is NULL");
    vkg_status st = VKG_OK;
    const uint8_t *b = bytes;
    src s = { .kind = SRC_MEM, .name = "IDX memory image", .mem = b, .mem_n = n };
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
        s.kind = SRC_INFLATE;
        if (inflateInit2(&s.zs, 16 + MAX_WBITS) != Z_OK)
            return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: inflateInit2 failed", s.name);
        s.zs_ready = true;
    }
    st = idx_decode(&s, out);
    if (s.zs_ready) inflateEnd(&s.zs);
    return st;
}
