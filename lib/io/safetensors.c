/* safetensors on the host: a reader that trusts no size or offset until it has checked it, and
 * a writer that replaces a file atomically (temporary file, fsync, rename). The JSON header
 * goes through cJSON; the format and the rules are in vkgrad/safetensors.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runtime/error.h"
#include "vkgrad/safetensors.h"

/* Largest integer a JSON number (a double in cJSON) carries exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0

typedef struct st_store {
    cJSON *root;          /* names and metadata strings point into it */
    void *data_buf;       /* the data area, when read from a file     */
} st_store;

static const char *const dtype_names[VKG_ST_DTYPE_COUNT] = { "F32", "F16", "BF16", "I32", "I64", "U8" };
static const size_t dtype_sizes[VKG_ST_DTYPE_COUNT] = { 4, 2, 2, 4, 8, 1 };

const char *vkg_st_dtype_name(vkg_st_dtype dtype) {
    return (unsigned)dtype < VKG_ST_DTYPE_COUNT ? dtype_names[dtype] : NULL;
}

size_t vkg_st_dtype_size(vkg_st_dtype dtype) {
    return (unsigned)dtype < VKG_ST_DTYPE_COUNT ? dtype_sizes[dtype] : 0;
}

void vkg_safetensors_free(vkg_safetensors *st) {
    if (!st) return;
    st_store *store = st->internal_;
    if (store) {
        cJSON_Delete(store->root);
        free(store->data_buf);
        free(store);
    }
    free(st->tensors);
    free(st->metadata_keys);
    free(st->metadata_values);
    memset(st, 0, sizeof *st);
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF) and no NUL byte. Returns
 * the offset of the first bad byte, or n when all is well. */
static size_t utf8_bad_offset(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) return i;
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

static bool json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= ST_MAX_JSON_INT)) return false;  /* also refuses NaN */
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return false;                      /* a fraction */
    *v = u;
    return true;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const vkg_st_tensor *)a)->name, ((const vkg_st_tensor *)b)->name);
}

typedef struct span { uint64_t begin, end; const char *name; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* One tensor entry: dtype, shape, data_offsets, and that its size matches. */
static vkg_status parse_entry(const char *file, const cJSON *e, size_t data_len, vkg_st_tensor *t,
                              span *sp) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", file, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd))
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': dtype is missing or not a string", file, name);
    int dt = -1;
    for (int i = 0; i < VKG_ST_DTYPE_COUNT; i++)
        if (strcmp(jd->valuestring, dtype_names[i]) == 0) dt = i;
    if (dt < 0)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': unsupported dtype \"%s\" "
                        "(supported: F32, F16, BF16, I32, I64, U8)", file, name, jd->valuestring);
    if (!cJSON_IsArray(js))
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': shape is missing or not a list", file, name);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > VKG_ST_MAX_DIMS)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions (at most %d)",
                        file, name, ndim, VKG_ST_MAX_DIMS);
    uint64_t numel = 1;
    bool empty = false;
    uint64_t dims[VKG_ST_MAX_DIMS] = { 0 };
    int k = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        if (!json_uint(d, &dims[k]))
            return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative "
                            "integer", file, name, k);
        if (dims[k] == 0) empty = true;
    }
    for (k = 0; k < ndim && !empty; k++) {
        if (numel > UINT64_MAX / dims[k])
            return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': the shape's element count overflows",
                            file, name);
        numel *= dims[k];
    }
    if (empty) numel = 0;
    uint64_t size = dtype_sizes[dt];
    if (numel > UINT64_MAX / size)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': the shape's byte size overflows", file, name);
    uint64_t nbytes = numel * size;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets is missing or not a "
                        "[begin, end] pair", file, name);
    uint64_t begin, end;
    if (!json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end))
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative "
                        "integers", file, name);
    if (end < begin)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets end %" PRIu64 " < begin %"
                        PRIu64, file, name, end, begin);
    if (end > data_len)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                        "] lie outside the data area of %zu bytes", file, name, begin, end, data_len);
    if (end - begin != nbytes)
        return vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets span %" PRIu64 " bytes but "
                        "the shape and dtype %s need %" PRIu64, file, name, end - begin,
                        dtype_names[dt], nbytes);
    t->name = name;
    t->dtype = (vkg_st_dtype)dt;
    t->ndim = ndim;
    for (k = 0; k < ndim; k++) t->shape[k] = (int64_t)dims[k];
    t->nbytes = (size_t)nbytes;
    *sp = (span){ begin, end, name };
    return VKG_OK;
}

/* The header (hdr, hlen) and the data area (data, dlen) are separate so that the file reader
 * can keep the data in an aligned buffer of its own. */
static vkg_status parse_parts(const char *file, const uint8_t *hdr, size_t hlen,
                              const uint8_t *data, size_t dlen, vkg_safetensors *out,
                              st_store *store) {
    vkg_status st = VKG_OK;
    char *text = NULL;
    span *spans = NULL;

    size_t bad = utf8_bad_offset(hdr, hlen);
    if (bad < hlen) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: header is not valid UTF-8 text (byte %zu of %zu is 0x%02x)",
                      file, bad, hlen, hdr[bad]);
        goto done;
    }
    text = malloc(hlen + 1);
    if (!text) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for the header", file, hlen + 1);
        goto done;
    }
    memcpy(text, hdr, hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    store->root = cJSON_ParseWithLengthOpts(text, hlen + 1, &end, 1);
    if (!store->root) {
        size_t at = end && end >= text && end <= text + hlen ? (size_t)(end - text) : 0;
        st = vkg_fail(VKG_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of %zu)",
                      file, at, hlen);
        goto done;
    }
    if (!cJSON_IsObject(store->root)) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: header is not a JSON object", file);
        goto done;
    }
    int n = 0, nmeta = 0;
    const cJSON *meta = NULL;
    for (const cJSON *e = store->root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") != 0) {
            n++;
            continue;
        }
        if (meta) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: duplicate \"__metadata__\" entry", file);
            goto done;
        }
        meta = e;
        if (!cJSON_IsObject(meta)) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", file);
            goto done;
        }
        for (const cJSON *m = meta->child; m; m = m->next, nmeta++)
            if (!cJSON_IsString(m)) {
                st = vkg_fail(VKG_ERR_FORMAT, "%s: metadata '%s' is not a string (metadata maps "
                              "strings to strings)", file, m->string);
                goto done;
            }
    }
    out->tensors = calloc(n ? (size_t)n : 1, sizeof *out->tensors);
    spans = calloc(n ? (size_t)n : 1, sizeof *spans);
    out->metadata_keys = calloc(nmeta ? (size_t)nmeta : 1, sizeof *out->metadata_keys);
    out->metadata_values = calloc(nmeta ? (size_t)nmeta : 1, sizeof *out->metadata_values);
    if (!out->tensors || !spans || !out->metadata_keys || !out->metadata_values) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate the index of %d tensors", file, n);
        goto done;
    }
    int i = 0;
    for (const cJSON *e = store->root->child; e; e = e->next) {
        if (e == meta) continue;
        if ((st = parse_entry(file, e, dlen, &out->tensors[i], &spans[i])) != VKG_OK) goto done;
        out->tensors[i].data = data + spans[i].begin;
        i++;
    }
    if (meta) {
        i = 0;
        for (const cJSON *m = meta->child; m; m = m->next, i++) {
            out->metadata_keys[i] = m->string;
            out->metadata_values[i] = m->valuestring;
        }
    }
    /* cJSON keeps duplicate keys; JSON readers disagree on which one wins, so refuse them. */
    qsort(out->tensors, (size_t)n, sizeof *out->tensors, cmp_tensor_name);
    for (i = 1; i < n; i++)
        if (strcmp(out->tensors[i - 1].name, out->tensors[i].name) == 0) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: duplicate tensor name '%s'", file, out->tensors[i].name);
            goto done;
        }
    for (i = 0; i < nmeta; i++)
        for (int j = i + 1; j < nmeta; j++)
            if (strcmp(out->metadata_keys[i], out->metadata_keys[j]) == 0) {
                st = vkg_fail(VKG_ERR_FORMAT, "%s: duplicate metadata key '%s'", file,
                              out->metadata_keys[i]);
                goto done;
            }
    /* The tensors, in offset order, must tile the data area: no overlap, no hole. */
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (i = 0; i < n; i++) {
        if (spans[i].begin < pos) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                          "] overlap the tensor '%s' before it (which ends at %" PRIu64 ")", file,
                          spans[i].name, spans[i].begin, spans[i].end, spans[i - 1].name, pos);
            goto done;
        }
        if (spans[i].begin > pos) {
            st = vkg_fail(VKG_ERR_FORMAT, "%s: tensor '%s': data_offsets begin at %" PRIu64
                          " leaving a gap of unindexed bytes [%" PRIu64 ", %" PRIu64 ")", file,
                          spans[i].name, spans[i].begin, pos, spans[i].begin);
            goto done;
        }
        pos = spans[i].end;
    }
    if (pos != dlen) {
        st = vkg_fail(VKG_ERR_FORMAT, "%s: the data area holds %zu bytes but the tensors index "
                      "only %" PRIu64 " (a gap of unindexed bytes at the end)", file, dlen, pos);
        goto done;
    }
    out->count = n;
    out->metadata_count = nmeta;
    out->data = data;
    out->data_size = dlen;
done:
    free(text);
    free(spans);
    return st;
}

static uint64_t le64(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static vkg_status begin_out(vkg_safetensors *out, st_store **store) {
    *store = calloc(1, sizeof **store);
    if (!*store) return vkg_fail(VKG_ERR_OUT_OF_MEMORY, "safetensors: cannot allocate");
    out->internal_ = *store;
    return VKG_OK;
}

/* The 8-byte header length of a file (or memory image) of `size` bytes, checked before it is
 * trusted: the file holds it, it is below the limit, and the header it promises fits. */
static vkg_status check_header_length(const char *file, uint64_t size, uint64_t hlen) {
    if (size < 8)
        return vkg_fail(VKG_ERR_FORMAT, "%s: only %" PRIu64 " bytes, shorter than the 8-byte header length", file,
                        size);
    if (hlen > VKG_ST_MAX_HEADER)
        return vkg_fail(VKG_ERR_FORMAT, "%s: header length %" PRIu64 " is absurdly large (limit %" PRIu64 ")", file,
                        hlen, VKG_ST_MAX_HEADER);
    if (hlen > size - 8)
        return vkg_fail(VKG_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the data (%" PRIu64
                        " bytes after the length)", file, hlen, size - 8);
    return VKG_OK;
}

vkg_status vkg_safetensors_parse(const void *bytes, size_t n, vkg_safetensors *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_safetensors_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!bytes && n) return vkg_fail(VKG_ERR_INVALID, "vkg_safetensors_parse: bytes is NULL");
    const char *file = "safetensors memory image";
    const uint8_t *b = bytes;
    vkg_status st = VKG_OK;
    st_store *store = NULL;
    uint64_t hlen = n >= 8 ? le64(b) : 0;
    if ((st = check_header_length(file, n, hlen)) != VKG_OK) goto done;
    if ((st = begin_out(out, &store)) != VKG_OK) goto done;
    st = parse_parts(file, b + 8, (size_t)hlen, b + 8 + hlen, n - 8 - (size_t)hlen, out, store);
done:
    if (st != VKG_OK) vkg_safetensors_free(out);
    return st;
}

vkg_status vkg_safetensors_read(const char *path, vkg_safetensors *out) {
    if (!out) return vkg_fail(VKG_ERR_INVALID, "vkg_safetensors_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return vkg_fail(VKG_ERR_INVALID, "vkg_safetensors_read: path is NULL");
    vkg_status st = VKG_OK;
    st_store *store = NULL;
    uint8_t *hdr = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return vkg_fail(VKG_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot stat (%s)", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = vkg_fail(VKG_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    uint8_t lenb[8];
    if (size >= 8 && fread(lenb, 1, 8, f) != 8) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot read the header length", path);
        goto done;
    }
    uint64_t hlen = size >= 8 ? le64(lenb) : 0;
    if ((st = check_header_length(path, size, hlen)) != VKG_OK) goto done;
    uint64_t dlen = size - 8 - hlen;
    if (dlen > SIZE_MAX - 1) {
        st = vkg_fail(VKG_ERR_TOO_LARGE, "%s: data area of %" PRIu64 " bytes", path, dlen);
        goto done;
    }
    if ((st = begin_out(out, &store)) != VKG_OK) goto done;
    hdr = malloc(hlen ? (size_t)hlen : 1);
    store->data_buf = malloc(dlen ? (size_t)dlen : 1);   /* malloc: aligned for max_align_t */
    if (!hdr || !store->data_buf) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate %" PRIu64 " bytes", path, size);
        goto done;
    }
    if (fread(hdr, 1, (size_t)hlen, f) != hlen || fread(store->data_buf, 1, (size_t)dlen, f) != dlen) {
        st = vkg_fail(VKG_ERR_IO, "%s: short read (%s)", path,
                      ferror(f) ? strerror(errno) : "the file shrank while being read");
        goto done;
    }
    st = parse_parts(path, hdr, (size_t)hlen, store->data_buf, (size_t)dlen, out, store);
done:
    free(hdr);
    fclose(f);
    if (st != VKG_OK) vkg_safetensors_free(out);
    return st;
}

const vkg_st_tensor *vkg_safetensors_find(const vkg_safetensors *st, const char *name) {
    if (!st || !name || !st->tensors) return NULL;
    vkg_st_tensor key = { .name = name };
    return bsearch(&key, st->tensors, (size_t)st->count, sizeof key, cmp_tensor_name);
}

const char *vkg_safetensors_metadata(const vkg_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->metadata_count; i++)
        if (strcmp(st->metadata_keys[i], key) == 0) return st->metadata_values[i];
    return NULL;
}

/* ---- writer ------------------------------------------------------------------------------ */

static int cmp_write_order(const void *a, const void *b) {
    const vkg_st_tensor *x = *(const vkg_st_tensor *const *)a, *y = *(const vkg_st_tensor *const *)b;
    size_t sx = dtype_sizes[x->dtype], sy = dtype_sizes[y->dtype];
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp((*(const vkg_st_tensor *const *)a)->name, (*(const vkg_st_tensor *const *)b)->name);
}

static bool valid_text(const char *s) {
    size_t n = strlen(s);
    return utf8_bad_offset((const uint8_t *)s, n) == n;
}

static cJSON *json_int(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_CreateRaw(buf);  /* exact, where a double would print 1e+15 */
}

static vkg_status check_write_args(const char *path, const vkg_st_tensor *tensors, int count,
                                   const char *const *kv, int nmeta) {
    if (!path) return vkg_fail(VKG_ERR_INVALID, "vkg_safetensors_write: path is NULL");
    if (count < 0 || (count > 0 && !tensors))
        return vkg_fail(VKG_ERR_INVALID, "%s: bad tensor list (count %d)", path, count);
    if (nmeta < 0 || (nmeta > 0 && !kv))
        return vkg_fail(VKG_ERR_INVALID, "%s: bad metadata list (count %d)", path, nmeta);
    for (int i = 0; i < count; i++) {
        const vkg_st_tensor *t = &tensors[i];
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0 || !valid_text(t->name))
            return vkg_fail(VKG_ERR_INVALID, "%s: tensor %d: the name must be non-empty UTF-8 text "
                            "other than \"__metadata__\"", path, i);
        if ((unsigned)t->dtype >= VKG_ST_DTYPE_COUNT)
            return vkg_fail(VKG_ERR_INVALID, "%s: tensor '%s': invalid dtype %d", path, t->name,
                            (int)t->dtype);
        if (t->ndim < 0 || t->ndim > VKG_ST_MAX_DIMS)
            return vkg_fail(VKG_ERR_INVALID, "%s: tensor '%s': %d dimensions (0 to %d allowed)",
                            path, t->name, t->ndim, VKG_ST_MAX_DIMS);
        uint64_t numel = 1;
        bool empty = false;
        for (int k = 0; k < t->ndim; k++) {
            if (t->shape[k] < 0 || (double)t->shape[k] > ST_MAX_JSON_INT)
                return vkg_fail(VKG_ERR_INVALID, "%s: tensor '%s': shape[%d] is %" PRId64, path,
                                t->name, k, t->shape[k]);
            if (t->shape[k] == 0) empty = true;
        }
        for (int k = 0; k < t->ndim && !empty; k++) {
            if (numel > SIZE_MAX / (uint64_t)t->shape[k])
                return vkg_fail(VKG_ERR_INVALID, "%s: tensor '%s': element count overflows", path, t->name);
            numel *= (uint64_t)t->shape[k];
        }
        if (empty) numel = 0;
        if (numel > SIZE_MAX / dtype_sizes[t->dtype] || numel * dtype_sizes[t->dtype] != t->nbytes)
            return vkg_fail(VKG_ERR_INVALID, "%s: tensor '%s': nbytes is %zu but the shape and "
                            "dtype %s need %" PRIu64 " elements of %zu bytes", path, t->name,
                            t->nbytes, dtype_names[t->dtype], numel, dtype_sizes[t->dtype]);
        if (t->nbytes && !t->data)
            return vkg_fail(VKG_ERR_INVALID, "%s: tensor '%s': data is NULL", path, t->name);
    }
    for (int i = 0; i < nmeta; i++) {
        const char *k = kv[2 * i], *v = kv[2 * i + 1];
        if (!k || !v || !valid_text(k) || !valid_text(v))
            return vkg_fail(VKG_ERR_INVALID, "%s: metadata pair %d: key and value must be "
                            "non-NULL UTF-8 text", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(kv[2 * j], k) == 0)
                return vkg_fail(VKG_ERR_INVALID, "%s: duplicate metadata key '%s'", path, k);
    }
    return VKG_OK;
}

vkg_status vkg_safetensors_write(const char *path, const vkg_st_tensor *tensors, int count,
                                 const char *const *metadata_kv, int metadata_count) {
    vkg_status st = check_write_args(path, tensors, count, metadata_kv, metadata_count);
    if (st != VKG_OK) return st;
    const vkg_st_tensor **order = NULL;
    cJSON *root = NULL;
    char *json = NULL, *tmp = NULL;
    int fd = -1;
    FILE *f = NULL;
    bool tmp_made = false;

    order = malloc((count ? (size_t)count : 1) * sizeof *order);
    root = cJSON_CreateObject();
    tmp = malloc(strlen(path) + sizeof ".tmp.XXXXXX");
    if (!order || !root || !tmp) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot allocate the header", path);
        goto done;
    }
    for (int i = 0; i < count; i++) order[i] = &tensors[i];
    qsort(order, (size_t)count, sizeof *order, cmp_name_ptr);  /* by name, to find duplicates */
    for (int i = 1; i < count; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            st = vkg_fail(VKG_ERR_INVALID, "%s: duplicate tensor name '%s'", path, order[i]->name);
            goto done;
        }
    qsort(order, (size_t)count, sizeof *order, cmp_write_order);
    bool ok = true;
    if (metadata_count > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        ok = meta != NULL;
        for (int i = 0; ok && i < metadata_count; i++)
            ok = cJSON_AddStringToObject(meta, metadata_kv[2 * i], metadata_kv[2 * i + 1]) != NULL;
    }
    uint64_t offset = 0;
    for (int i = 0; ok && i < count; i++) {
        const vkg_st_tensor *t = order[i];
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        ok = e && shape && offs && cJSON_AddStringToObject(e, "dtype", dtype_names[t->dtype]);
        for (int k = 0; ok && k < t->ndim; k++)
            ok = cJSON_AddItemToArray(shape, json_int((uint64_t)t->shape[k]));
        ok = ok && cJSON_AddItemToArray(offs, json_int(offset)) &&
             cJSON_AddItemToArray(offs, json_int(offset + t->nbytes));
        ok = ok && cJSON_AddItemToObject(e, "shape", shape);
        if (!ok) cJSON_Delete(shape);
        ok = ok && cJSON_AddItemToObject(e, "data_offsets", offs);
        if (!ok) cJSON_Delete(offs);
        ok = ok && cJSON_AddItemToObject(root, t->name, e);
        if (!ok) cJSON_Delete(e);
        offset += t->nbytes;
    }
    json = ok ? cJSON_PrintUnformatted(root) : NULL;
    if (!json) {
        st = vkg_fail(VKG_ERR_OUT_OF_MEMORY, "%s: cannot build the JSON header", path);
        goto done;
    }
    size_t jlen = strlen(json), hlen = (jlen + 7) / 8 * 8;
    if (hlen > VKG_ST_MAX_HEADER) {
        st = vkg_fail(VKG_ERR_TOO_LARGE, "%s: the header would be %zu bytes (limit %" PRIu64 ")",
                      path, hlen, VKG_ST_MAX_HEADER);
        goto done;
    }

    strcpy(tmp, path);
    strcat(tmp, ".tmp.XXXXXX");
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot create a temporary file beside it (%s)", path,
                      strerror(errno));
        goto done;
    }
    tmp_made = true;
    struct stat old;
    mode_t mode = stat(path, &old) == 0 ? (old.st_mode & 07777) : 0644;
    if (fchmod(fd, mode) != 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot set the mode of %s (%s)", path, tmp, strerror(errno));
        goto done;
    }
    f = fdopen(fd, "wb");
    if (!f) {
        st = vkg_fail(VKG_ERR_IO, "%s: fdopen failed (%s)", path, strerror(errno));
        goto done;
    }
    fd = -1;  /* owned by f now */
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    bool wrote = fwrite(lenb, 1, 8, f) == 8 && fwrite(json, 1, jlen, f) == jlen;
    for (size_t i = jlen; wrote && i < hlen; i++) wrote = fputc(' ', f) != EOF;
    for (int i = 0; wrote && i < count; i++)
        wrote = order[i]->nbytes == 0 || fwrite(order[i]->data, 1, order[i]->nbytes, f) == order[i]->nbytes;
    if (!wrote || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot write %s (%s)", path, tmp, strerror(errno));
        goto done;
    }
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot close %s (%s)", path, tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = vkg_fail(VKG_ERR_IO, "%s: cannot rename %s over it (%s)", path, tmp, strerror(errno));
        goto done;
    }
    tmp_made = false;
    /* Make the rename itself durable; a failure here loses nothing already written. */
    char *slash = strrchr(tmp, '/');
    if (slash) *slash = '\0';
    int dfd = open(slash ? (tmp[0] ? tmp : "/") : ".", O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
done:
    if (f) fclose(f);
    if (fd >= 0) close(fd);
    if (tmp_made) unlink(tmp);
    free(tmp);
    free(json);
    cJSON_Delete(root);
    free(order);
    return st;
}
