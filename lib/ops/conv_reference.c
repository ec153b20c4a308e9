/* The C reference of the conv group (conv2d, max/avg pooling, batch norm), forward and
 * backward: the definition the shaders and the backward rules are tested against. The code is
 * in conv_reference_impl.h, compiled in float (vkg_ref_*) and in double (vkg_ref_*_f64). */
#include "vkgrad.h" /* before <tgmath.h>, whose macros would rewrite names in the headers */

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

int64_t vkg_conv_out_size(int64_t in, int kernel, int stride, int padding, int dilation) {
    int64_t extent = (int64_t)dilation * (kernel - 1) + 1;
    if (in + 2 * (int64_t)padding < extent || stride <= 0) return -1;
    return (in + 2 * (int64_t)padding - extent) / stride + 1;
}

/* Sizes and options with the defaults filled in. */
typedef struct conv_params {
    int64_t N, C, H, W, K, Cg, Kg, kh, kw, OH, OW;
    int sh, sw, ph, pw, dh, dw, G;
} conv_params;

static int def(int v, int d) { return v ? v : d; }

static conv_params conv_params_of(vkg_shape xs, vkg_shape ws, const vkg_conv2d_desc *d) {
    vkg_conv2d_desc z = { 0 };
    if (!d) d = &z;
    conv_params p = { .N = xs.d[0], .C = xs.d[1], .H = xs.d[2], .W = xs.d[3], .K = ws.d[0], .Cg = ws.d[1],
                      .kh = ws.d[2], .kw = ws.d[3], .sh = def(d->stride[0], 1), .sw = def(d->stride[1], 1),
                      .ph = d->padding[0], .pw = d->padding[1], .dh = def(d->dilation[0], 1),
                      .dw = def(d->dilation[1], 1), .G = def(d->groups, 1) };
    p.Kg = p.K / p.G;
    p.OH = vkg_conv_out_size(p.H, (int)p.kh, p.sh, p.ph, p.dh);
    p.OW = vkg_conv_out_size(p.W, (int)p.kw, p.sw, p.pw, p.dw);
    return p;
}

typedef struct pool_params {
    int64_t NC, H, W, OH, OW;
    int kh, kw, sh, sw, ph, pw;
} pool_params;

static pool_params pool_params_of(vkg_shape xs, const vkg_pool2d_desc *d) {
    pool_params p = { .NC = xs.d[0] * xs.d[1], .H = xs.d[2], .W = xs.d[3], .kh = d->kernel[0], .kw = d->kernel[1],
                      .sh = def(d->stride[0], d->kernel[0]), .sw = def(d->stride[1], d->kernel[1]),
                      .ph = d->padding[0], .pw = d->padding[1] };
    p.OH = vkg_conv_out_size(p.H, p.kh, p.sh, p.ph, 1);
    p.OW = vkg_conv_out_size(p.W, p.kw, p.sw, p.pw, 1);
    return p;
}

/* (N, C, spatial) of a batch-norm input (N, C, ...). */
static void bn_dims(vkg_shape xs, int64_t *N, int64_t *C, int64_t *S) {
    *N = xs.d[0];
    *C = xs.d[1];
    *S = 1;
    for (int i = 2; i < xs.ndim; i++) *S *= xs.d[i];
}

static void bn_options(const vkg_batch_norm_desc *d, bool *train, double *momentum, double *eps) {
    *train = d && d->train;
    *momentum = d && d->momentum != 0.0f ? d->momentum : 0.1f; /* the device's float values */
    *eps = d && d->eps != 0.0f ? d->eps : 1e-5f;
}

#define VKG_REF_IMPL "ops/conv_reference_impl.h"
#include "ops/reference_twice.h"
