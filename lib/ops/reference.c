/* The C reference of every op in the table: the definition the shaders are tested against. */
#include <math.h>
#include <string.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"

float vkg_ref_unary1(vkg_op op, float x, float s) {
    switch (op) {
    case VKG_OP_NEG: return -x;
    case VKG_OP_ABS: return fabsf(x);
    case VKG_OP_EXP: return expf(x);
    case VKG_OP_LOG: return logf(x);
    case VKG_OP_SQRT: return sqrtf(x);
    case VKG_OP_RSQRT: return 1.0f / sqrtf(x);
    case VKG_OP_TANH: return tanhf(x);
    case VKG_OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case VKG_OP_RELU: return x > 0.0f ? x : 0.0f;
    case VKG_OP_GELU: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case VKG_OP_SILU: return x / (1.0f + expf(-x));
    case VKG_OP_POW: return powf(x, s);
    default: return NAN;
    }
}

void vkg_ref_unary(vkg_op op, float *y, const float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) y[i] = vkg_ref_unary1(op, x[i], s);
}

float vkg_ref_binary1(vkg_op op, float a, float b) {
    switch (op) {
    case VKG_OP_ADD: return a + b;
    case VKG_OP_SUB: return a - b;
    case VKG_OP_MUL: return a * b;
    case VKG_OP_DIV: return a / b;
    case VKG_OP_MAXIMUM: return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b);
    case VKG_OP_MINIMUM: return (isnan(a) || isnan(b)) ? NAN : (a < b ? a : b);
    case VKG_OP_LT: return a < b ? 1.0f : 0.0f;
    case VKG_OP_GT: return a > b ? 1.0f : 0.0f;
    case VKG_OP_EQ: return a == b ? 1.0f : 0.0f;
    default: return NAN;
    }
}

int64_t vkg_ref_broadcast_index(int64_t index, vkg_shape to, vkg_shape from) {
    int64_t src = 0, mul = 1;
    for (int i = to.ndim - 1; i >= 0; i--) {
        int64_t coord = index % to.d[i];
        index /= to.d[i];
        int fi = i - (to.ndim - from.ndim);
        if (fi < 0) continue;
        if (from.d[fi] != 1) src += coord * mul;
        mul *= from.d[fi];
    }
    return src;
}

void vkg_ref_binary(vkg_op op, float *y, vkg_shape ys, const float *a, vkg_shape as, const float *b, vkg_shape bs) {
    int64_t n = vkg_shape_numel(ys);
    for (int64_t i = 0; i < n; i++)
        y[i] = vkg_ref_binary1(op, a[vkg_ref_broadcast_index(i, ys, as)], b[vkg_ref_broadcast_index(i, ys, bs)]);
}

void vkg_ref_where(float *y, vkg_shape ys, const float *cond, vkg_shape cs, const float *a, vkg_shape as,
                   const float *b, vkg_shape bs) {
    int64_t n = vkg_shape_numel(ys);
    for (int64_t i = 0; i < n; i++)
        y[i] = cond[vkg_ref_broadcast_index(i, ys, cs)] != 0.0f ? a[vkg_ref_broadcast_index(i, ys, as)]
                                                                : b[vkg_ref_broadcast_index(i, ys, bs)];
}

void vkg_ref_reduce(vkg_op op, float *y, int32_t *yi, const float *x, vkg_shape xs, int axis) {
    int64_t outer = 1, R = vkg_shape_numel(xs), inner = 1;
    if (axis != VKG_REF_ALL) {
        if (axis < 0) axis += xs.ndim;
        outer = inner = 1;
        for (int i = 0; i < xs.ndim; i++) {
            if (i < axis) outer *= xs.d[i];
            if (i > axis) inner *= xs.d[i];
        }
        R = xs.d[axis];
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            const float *p = x + o * R * inner + in;
            double acc = 0.0;
            float best = op == VKG_OP_MIN ? INFINITY : -INFINITY;
            int32_t bi = 0;
            for (int64_t r = 0; r < R; r++) {
                float v = p[r * inner];
                acc += v;
                if (r == 0) {
                    best = v;
                    bi = 0;
                } else if (!isnan(best) && (isnan(v) || (op == VKG_OP_MIN ? v < best : v > best))) {
                    best = v; /* the first NaN wins, like PyTorch; ties keep the first index */
                    bi = (int32_t)r;
                }
            }
            int64_t k = o * inner + in;
            switch (op) {
            case VKG_OP_SUM: y[k] = (float)acc; break;
            case VKG_OP_MEAN: y[k] = (float)(acc / (double)R); break;
            case VKG_OP_MAX:
            case VKG_OP_MIN: y[k] = best; break;
            case VKG_OP_ARGMAX: yi[k] = bi; break;
            default: break;
            }
        }
}

void vkg_ref_matmul(float *c, const float *a, vkg_shape as, const float *b, vkg_shape bs) {
    int an = as.ndim, bn = bs.ndim;
    int64_t M = an == 1 ? 1 : as.d[an - 2], K = as.d[an - 1], N = bn == 1 ? 1 : bs.d[bn - 1];
    vkg_shape ab = { .ndim = an > 2 ? an - 2 : 0 }, bb = { .ndim = bn > 2 ? bn - 2 : 0 }, batch;
    for (int i = 0; i < ab.ndim; i++) ab.d[i] = as.d[i];
    for (int i = 0; i < bb.ndim; i++) bb.d[i] = bs.d[i];
    vkg_broadcast_shape(ab, bb, &batch);
    int64_t nb = vkg_shape_numel(batch);
    for (int64_t t = 0; t < nb; t++) {
        const float *pa = a + vkg_ref_broadcast_index(t, batch, ab) * M * K;
        const float *pb = b + vkg_ref_broadcast_index(t, batch, bb) * K * N;
        float *pc = c + t * M * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0.0;
                for (int64_t k = 0; k < K; k++) acc += (double)pa[i * K + k] * pb[k * N + j];
                pc[i * N + j] = (float)acc;
            }
    }
}
