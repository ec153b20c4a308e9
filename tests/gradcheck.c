/* vkgt_gradcheck: see gradcheck.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"

static void default_values(double *x, size_t n, uint64_t seed) {
    float *f = malloc((n + 1) * sizeof *f);
    vkgt_fill(f, n, -1.0f, 1.0f, seed);
    for (size_t i = 0; i < n; i++) x[i] = (f[i] < 0 ? -1 : 1) * (0.2 + 1.8 * fabs(f[i]));
    free(f);
}

/* The (last two dims) transpose of a row-major array of shape s. */
static void transpose_last2(double *dst, const double *src, vkg_shape s) {
    int64_t R = s.d[s.ndim - 2], C = s.d[s.ndim - 1], B = (R > 0 && C > 0) ? vkg_shape_numel(s) / (R * C) : 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) dst[b * R * C + j * R + i] = src[b * R * C + i * C + j];
}

static vkg_tensor *upload(const vkgt_gc *c, int i, const double *x, size_t n, vkg_tensor **leaf) {
    vkg_shape s = c->shape[i];
    double *src = (double *)x, *tmp = NULL;
    if (c->transposed[i]) {
        tmp = malloc((n + 1) * sizeof *tmp);
        transpose_last2(tmp, x, s);
        src = tmp;
        int64_t r = s.d[s.ndim - 2];
        s.d[s.ndim - 2] = s.d[s.ndim - 1];
        s.d[s.ndim - 1] = r;
    }
    vkg_tensor *t;
    if (c->dtype[i] == VKG_I32) {
        int32_t *v = malloc((n + 1) * sizeof *v);
        for (size_t k = 0; k < n; k++) v[k] = (int32_t)src[k];
        t = vkg_from_data_dtype(s, VKG_I32, v);
        free(v);
    } else {
        float *v = malloc((n + 1) * sizeof *v);
        for (size_t k = 0; k < n; k++) v[k] = (float)src[k];
        t = vkg_from_data(s, v);
        free(v);
    }
    free(tmp);
    cr_assert_not_null(t, "%s: input %d: %s", c->name, i, vkg_last_error());
    bool diff = c->dtype[i] == VKG_F32 && !c->constant[i];
    if (diff) vkg_requires_grad(t, true);
    *leaf = t;
    return c->transposed[i] ? vkg_transpose(t, -1, -2) : t;
}

static double loss_of(const vkgt_gc *c, vkg_shape ys, double *const *x, const double *w, double *y) {
    c->forward(y, ys, x, c->ctx);
    double l = 0;
    for (int64_t i = 0; i < vkg_shape_numel(ys); i++) l += y[i] * w[i];
    return l;
}

void vkgt_gradcheck(const vkgt_gc *c) {
    double fd_rtol = c->fd_rtol ? c->fd_rtol : 1e-5, fd_atol = c->fd_atol ? c->fd_atol : 1e-6;
    double dev_rtol = c->dev_rtol ? c->dev_rtol : 1e-4, dev_atol = c->dev_atol ? c->dev_atol : 1e-5;
    vkg_scope_begin();
    double *x[VKGT_GC_MAXIN] = { 0 }, *dx[VKGT_GC_MAXIN] = { 0 };
    vkg_tensor *leaf[VKGT_GC_MAXIN] = { 0 }, *in[VKGT_GC_MAXIN] = { 0 };
    size_t n[VKGT_GC_MAXIN] = { 0 };
    bool diff[VKGT_GC_MAXIN] = { false };
    for (int i = 0; i < c->nin; i++) {
        n[i] = (size_t)vkg_shape_numel(c->shape[i]);
        x[i] = malloc((n[i] + 1) * sizeof(double));
        if (c->init) c->init(i, x[i], n[i], c->ctx);
        else default_values(x[i], n[i], c->seed + (uint64_t)i);
        for (size_t k = 0; k < n[i]; k++) /* the device sees float (or int) values: so must the reference */
            x[i][k] = c->dtype[i] == VKG_I32 ? (double)(int32_t)x[i][k] : (double)(float)x[i][k];
        diff[i] = c->dtype[i] == VKG_F32 && !c->constant[i];
        dx[i] = diff[i] ? calloc(n[i] + 1, sizeof(double)) : NULL;
        in[i] = upload(c, i, x[i], n[i], &leaf[i]);
    }
    vkg_tensor *y = c->device(in, c->ctx);
    cr_assert_not_null(y, "%s: %s", c->name, vkg_last_error());
    vkg_shape ys = vkg_tensor_shape(y);
    size_t ny = (size_t)vkg_shape_numel(ys);
    double *w = malloc((ny + 1) * sizeof(double)), *ybuf = malloc((ny + 1) * sizeof(double));
    float *wf = malloc((ny + 1) * sizeof(float));
    vkgt_fill(wf, ny, -1.0f, 1.0f, c->seed + 99);
    for (size_t k = 0; k < ny; k++) w[k] = wf[k];

    /* the forward result itself first: a wrong forward makes every gradient meaningless */
    float *yd = vkgt_read(y);
    c->forward(ybuf, ys, x, c->ctx);
    for (size_t k = 0; k < ny; k++)
        cr_assert(fabs(yd[k] - ybuf[k]) <= 1e-5 + 1e-4 * fabs(ybuf[k]), "%s: forward element %zu: device %.9g, "
                  "reference %.9g", c->name, k, (double)yd[k], ybuf[k]);
    free(yd);

    vkg_tensor *loss = vkg_sum_all(vkg_mul(y, vkg_from_data(ys, wf)));
    cr_assert_eq(vkg_backward(loss), VKG_OK, "%s backward: %s", c->name, vkg_last_error());
    c->backward(dx, ys, x, w, c->ctx);
    for (int i = 0; i < c->nin; i++) {
        if (!diff[i]) continue;
        char what[192], sh[64];
        snprintf(what, sizeof what, "%s input %d %s%s (seed %llu)", c->name, i, vkg_shape_str(c->shape[i], sh, sizeof sh),
                 c->transposed[i] ? " transposed" : "", (unsigned long long)c->seed);
        for (size_t k = 0; k < n[i]; k++) { /* 1. reference backward against central differences */
            double keep = x[i][k], h = 1e-6 * fmax(1.0, fabs(keep));
            x[i][k] = keep + h;
            double lp = loss_of(c, ys, x, w, ybuf);
            x[i][k] = keep - h;
            double lm = loss_of(c, ys, x, w, ybuf);
            x[i][k] = keep;
            double num = (lp - lm) / (2 * h);
            cr_assert(fabs(num - dx[i][k]) <= fd_atol + fd_rtol * fabs(num),
                      "%s: element %zu: finite differences %.9g, reference backward %.9g", what, k, num, dx[i][k]);
        }
        vkg_tensor *g = vkg_grad(leaf[i]); /* 2. device backward against reference backward */
        cr_assert_not_null(g, "%s: no gradient on the device", what);
        cr_assert_eq(vkg_numel(g), (int64_t)n[i]);
        float *got = vkgt_read(g);
        double *want = dx[i], *tw = NULL;
        if (c->transposed[i]) {
            tw = malloc((n[i] + 1) * sizeof(double));
            transpose_last2(tw, dx[i], c->shape[i]);
            want = tw;
        }
        double scale = 0;
        for (size_t k = 0; k < n[i]; k++) scale = fmax(scale, fabs(want[k]));
        for (size_t k = 0; k < n[i]; k++)
            cr_assert(fabs(got[k] - want[k]) <= dev_atol * (1 + scale) + dev_rtol * fabs(want[k]),
                      "%s: element %zu: device %.9g, reference %.9g", what, k, (double)got[k], want[k]);
        free(got);
        free(tw);
    }
    for (int i = 0; i < c->nin; i++) {
        free(x[i]);
        free(dx[i]);
    }
    free(w);
    free(wf);
    free(ybuf);
    vkg_scope_end();
}
