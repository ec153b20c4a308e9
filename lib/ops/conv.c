/* conv2d (on the matmul kernels: an implicit GEMM or im2col; grouped convolutions direct),
 * max_pool2d and avg_pool2d, forward and the kernels their backward rules use. The group's own
 * dispatches go through conv_dispatch; the products through lib/ops/matmul.c. x is read in
 * place through its strides; weights, biases and incoming gradients are made contiguous. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv_internal.h"
#include "ops/ops.h"

/* Mirrors the Push block of shaders/conv.glsl: change both. */
typedef struct vkg_conv_push {
    uint32_t N, C, H, W;
    uint32_t K, OH, OW, G;
    uint32_t kh, kw, sh, sw;
    uint32_t ph, pw, dh, dw;
    int32_t xs[4];           /* strides of the strided input x (N, C, H, W) */
    uint32_t off[4];         /* offset of binding 0..3, in elements */
    uint32_t flags;          /* bit 0: conv2d has a bias; bit 1: pool2d_backward by windows (tiles);
                              * bit 2: pooling by pairs of columns; bit 3: max pooling with relu */
    uint32_t items;
    uint32_t per, base;      /* conv2d_backward_weight: (n, oh) rows per chunk, items per chunk */
} vkg_conv_push;
_Static_assert(sizeof(vkg_conv_push) <= VKG_PUSH_SIZE, "push constants too large");

#define LOCAL 64
#define KB 4 /* register blocks of shaders/conv2d*.comp: change both */
#define PB 4
#define CB 4
#define TB 9 /* kernel taps per block of shaders/conv2d_backward_weight.comp: change both */

static const char *variant_last = "none";
const char *vkg_conv2d_variant_last(void) { return variant_last; }

/* Records one dispatch of the group; binding i = bind[i], the first nout written. */
/* cost: loop iterations of one item. Loops over the register blocks (KB, PB, CB) have constant
 * trip counts, which the driver unrolls, so only the loops over the kernel window and the
 * channels count. */
static vkg_status conv_dispatch(const char *shader, vkg_op op, const char *name, vkg_conv_push *pc,
                                vkg_tensor *const *bind, int nbind, int nout, double flops, uint64_t cost) {
    if (vkg_loop_check(cost, name, "one output block") != VKG_OK) return vkg_last_status();
    vkg_dispatch_desc d = { .shader = shader, .op = op, .name = name, .local_size = LOCAL, .nout = nout, .push = pc,
                            .push_size = sizeof *pc, .flops = flops };
    if (op == VKG_OP_MAX_POOL2D || op == VKG_OP_AVG_POOL2D) {
        d.spec[0] = vkg_op_table[op].code;
        d.spec[1] = pc->kh; /* pool2d.comp unrolls its window's loops */
        d.spec[2] = pc->kw;
        d.spec[3] = (pc->flags & 4u) != 0; /* PAIRS */
        d.spec[4] = (pc->flags & 8u) != 0; /* RELU (pool2d.comp) */
        d.nspec = 5;
    } else if (strcmp(shader, "conv_col2im") == 0) {
        d.spec[0] = pc->kh; /* its loops over the taps unroll */
        d.spec[1] = pc->kw;
        d.nspec = 2;
    }
    for (int i = 0; i < nbind; i++) {
        d.bind[i] = bind[i];
        pc->off[i] = (uint32_t)bind[i]->offset;
    }
    d.groups[0] = vkg_groups_for_cost(pc->items, LOCAL, cost);
    return vkg_dispatch(&d);
}

/* Items per run of the run kernels (shaders/conv.glsl, RUNS), for a cost per item (loop
 * iterations): on CPU devices one run per invocation of the grid conv_dispatch picks, so that
 * an invocation divides once; GPUs keep runs of one item, neighbouring invocations on
 * neighbouring items. Set before conv_dispatch, which sizes the same grid. */
static void runs_of(vkg_conv_push *pc, uint64_t cost) {
    uint64_t inv = (uint64_t)vkg_groups_for_cost(pc->items, LOCAL, cost) * LOCAL;
    uint64_t per = vkg_ctx.info.type == VKG_DEVICE_CPU ? (pc->items + inv - 1) / inv : 1;
    pc->per = per ? (uint32_t)per : 1u;
}

static void strides_of(const vkg_tensor *x, int32_t *xs) {
    for (int i = 0; i < 4; i++) xs[i] = (int32_t)x->strides[i];
}

/* ---- the matmul path (groups 1) ----------------------------------------------------------------
 * conv2d as matmuls over the unfolded input, either gathered by the product itself (the
 * implicit GEMM, below: no copy) or written out first: cols (nb, C kh kw, OH OW) for a chunk of nb images
 * (shaders/conv_im2col.comp), then y[n] = w (K, C kh kw) @ cols[n], dcols[n] = w^T @ g[n] folded
 * back by a gather (conv_col2im.comp), and dw = sum over n of g[n] @ cols[n]^T: all on the
 * tuned matmul kernels, where the direct kernels reach a few percent of them. The unfolded copy
 * is kh kw times x's bytes, so images go in chunks that keep it and the matmul's batched
 * weight gradient under UNFOLD_BYTES. Grouped convolutions keep the direct kernels, and so do
 * images whose unfolding alone passes that bound, and VKG_CONV_VARIANT=direct (comparisons, tests). */
#define UNFOLD_BYTES ((int64_t)48 << 20)

/* unfolded: C kh kw x OH OW values of one image, which must fit a chunk. Thin layers too (the
 * CNN's first, C = 1, 3x3) take the matmul path, now that the unfolding divides once per run and
 * the forward's is reused for the weight gradient: on lavapipe the CNN's step took 10% less CPU
 * time than with that layer direct. VKG_CONV_VARIANT=direct forces the direct kernels
 * (comparisons, tests). */
static bool unfold_path(int groups, int64_t unfolded) {
    const char *v = getenv("VKG_CONV_VARIANT");
    return groups == 1 && 4 * unfolded <= UNFOLD_BYTES && !(v && strcmp(v, "direct") == 0);
}

/* Images per chunk: per_image floats each (at least 1). VKG_CONV_UNFOLD_BYTES=N lowers the
 * bound, so that tests run the chunked path at small sizes. */
static int64_t unfold_chunk(int64_t N, int64_t per_image) {
    const char *v = getenv("VKG_CONV_UNFOLD_BYTES");
    int64_t bytes = v && atoll(v) > 0 ? atoll(v) : UNFOLD_BYTES;
    int64_t nb = bytes / (4 * (per_image > 0 ? per_image : 1));
    return nb < 1 ? 1 : nb > N ? N : nb;
}

/* The implicit GEMM (vkg_conv_gemm_*, lib/ops/matmul.c): the matmul path's products with B read
 * from the image itself, no unfolded copy. geo: conv2d's forward geometry for d, or the
 * input gradient's (a stride-1 convolution of g: taps at -dilation, the padding on the other
 * side). The rule, by measurement (bench/README.md, "Implicit-GEMM convolution"): CPU devices
 * take it wherever it runs, since lavapipe's unfolding and folding passes were a third of the
 * CNN's step and the product's own gathers cost less than they did (CNN step 0.66-0.68x);
 * GPUs keep im2col, whose products run on the tiled kernel (on an H100 the implicit GEMM on
 * the reg kernel made the CNN's step 1.9x slower). VKG_CONV_VARIANT=implicit or im2col picks
 * one where both run. */
static vkg_conv_gemm forward_geometry(const vkg_conv2d_desc *d, int64_t kh, int64_t kw, int64_t OH, int64_t OW) {
    return (vkg_conv_gemm){ kh, kw, OH, OW, d->stride[0], d->stride[1], d->dilation[0], d->dilation[1],
                            -d->padding[0], -d->padding[1] };
}

static bool implicit_path(const vkg_tensor *x, const vkg_conv_gemm *geo) {
    const char *v = getenv("VKG_CONV_VARIANT");
    if (v && strcmp(v, "im2col") == 0) return false;
    if (!(v && strcmp(v, "implicit") == 0) && vkg_ctx.info.type != VKG_DEVICE_CPU) return false;
    return vkg_conv_gemm_ok(x, geo);
}

static vkg_tensor *unfold(vkg_tensor *x, int64_t n0, int64_t nb, const vkg_conv2d_desc *d, int64_t kh, int64_t kw,
                          int64_t OH, int64_t OW, const char *name) {
    int64_t C = x->shape.d[1], ckk = C * kh * kw, P = OH * OW;
    if (nb * ckk * P >= (int64_t)1 << 31) return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: one image unfolds to 2^31 values or more", name);
    vkg_tensor *xv = vkg_narrow(x, 0, n0, nb);
    vkg_tensor *cols = xv ? vkg_tensor_alloc(VKG_SHAPE(nb, ckk, P), VKG_F32, false, name) : NULL;
    if (cols) {
        vkg_conv_push pc = { (uint32_t)nb, (uint32_t)C, (uint32_t)x->shape.d[2], (uint32_t)x->shape.d[3], 0,
                             (uint32_t)OH, (uint32_t)OW, 1, (uint32_t)kh, (uint32_t)kw, (uint32_t)d->stride[0],
                             (uint32_t)d->stride[1], (uint32_t)d->padding[0], (uint32_t)d->padding[1],
                             (uint32_t)d->dilation[0], (uint32_t)d->dilation[1], .items = (uint32_t)(nb * ckk * P) };
        strides_of(xv, pc.xs);
        vkg_tensor *bind[2] = { cols, xv };
        /* CPU devices: 4 values per item, one vec4 store (conv_im2col.comp), where cols allows */
        bool vec4 = vkg_ctx.info.type == VKG_DEVICE_CPU && cols->offset % 4 == 0 && pc.items % 4 == 0;
        if (vec4) pc.items /= 4;
        runs_of(&pc, vec4 ? 5 : 2);
        if (conv_dispatch(vec4 ? "conv_im2col4" : "conv_im2col", VKG_OP_CONV2D, name, &pc, bind, 2, 1, 0.0,
                          vec4 ? 5 : 2) != VKG_OK) {
            vkg_free(cols);
            cols = NULL;
        }
    }
    vkg_free(xv);
    return cols;
}

/* The weights wc as the (K, ckk) matrix of the matmul path. On CPU devices the matmul's
 * register-blocked kernel reads its operands as aligned vec4s, which a row stride that is not a
 * multiple of 4 rules out (the CNN's first layer: ckk = 9, left to the general kernel at a
 * fraction of the speed); there the rows go into a zero-padded copy (ckk rounded up to 4) and
 * the matrix is its (K, ckk) view. */
static vkg_tensor *weight_matrix(vkg_tensor *wc, int64_t K, int64_t ckk) {
    if (vkg_ctx.info.type != VKG_DEVICE_CPU || ckk % 4 == 0) return vkg_reshape(wc, VKG_SHAPE(K, ckk));
    vkg_tensor *w2 = vkg_reshape(wc, VKG_SHAPE(K, ckk)), *pad = w2 ? vkg_zeros(VKG_SHAPE(K, (ckk + 3) / 4 * 4)) : NULL;
    vkg_tensor *view = pad ? vkg_narrow(pad, 1, 0, ckk) : NULL;
    if (view && vkg_copy_into(view, w2) != VKG_OK) {
        vkg_free(view);
        view = NULL;
    }
    vkg_free(pad);
    vkg_free(w2);
    return view;
}

/* y = conv2d(x, w) + bias through the matmul path (wc and bc contiguous), or NULL. The batched
 * matmul's output (nb, K, OH OW) is y's layout: with the whole batch in one chunk it is y, else
 * each chunk's is copied into y. The bias, one per output channel, is over the product's rows:
 * the matmul kernels add it as they store (vkg_matmul_row_bias), where a pass over y after
 * them cost 5.3 ms of the CNN's step on lavapipe. keep (NULL: not wanted): where the whole
 * batch unfolds in one chunk, its cols, for the weight gradient, else NULL. */
static vkg_tensor *unfold_forward(vkg_tensor *x, vkg_tensor *wc, vkg_tensor *bc, const vkg_conv2d_desc *d,
                                  int64_t OH, int64_t OW, const char *name, vkg_tensor **keep) {
    int64_t N = x->shape.d[0], K = wc->shape.d[0], kh = wc->shape.d[2], kw = wc->shape.d[3];
    int64_t P = OH * OW, ckk = vkg_numel(wc) / K;
    vkg_conv_gemm geo = forward_geometry(d, kh, kw, OH, OW);
    bool implicit = implicit_path(x, &geo);
    int64_t per = implicit ? N : unfold_chunk(N, ckk * P + K * P);
    vkg_status st = VKG_OK;
    vkg_tensor *y = NULL;
    if (keep) *keep = NULL;
    vkg_no_grad_begin();
    vkg_tensor *w2 = weight_matrix(wc, K, ckk);
    if (!w2) st = vkg_last_status();
    if (st == VKG_OK && per < N && !(y = vkg_tensor_alloc(VKG_SHAPE(N, K, OH, OW), VKG_F32, false, name)))
        st = vkg_last_status();
    for (int64_t n0 = 0; n0 < N && st == VKG_OK; n0 += per) {
        int64_t nb = N - n0 < per ? N - n0 : per;
        vkg_tensor *cols = implicit ? NULL : unfold(x, n0, nb, d, kh, kw, OH, OW, name);
        /* (nb, K, P), the bias added as the product is stored */
        vkg_tensor *prod = implicit ? vkg_conv_gemm_forward(w2, x, &geo, bc)
                           : !cols  ? NULL
                           : bc     ? vkg_matmul_row_bias(w2, cols, bc)
                                    : vkg_matmul(w2, cols);
        if (!prod) {
            st = vkg_last_status();
        } else if (nb == N) {
            if (!(y = vkg_reshape(prod, VKG_SHAPE(N, K, OH, OW)))) st = vkg_last_status();
        } else {
            vkg_tensor *ys = vkg_narrow(y, 0, n0, nb);
            vkg_tensor *dst = ys ? vkg_reshape(ys, VKG_SHAPE(nb, K, P)) : NULL;
            st = dst ? vkg_copy_into(dst, prod) : vkg_last_status();
            vkg_free(dst);
            vkg_free(ys);
        }
        vkg_free(prod);
        if (keep && nb == N && st == VKG_OK) *keep = cols;
        else vkg_free(cols);
    }
    vkg_free(w2);
    vkg_no_grad_end();
    variant_last = implicit ? "implicit-gemm" : "im2col+matmul";
    if (st != VKG_OK) {
        vkg_free(y);
        if (keep) {
            vkg_free(*keep);
            *keep = NULL;
        }
        return NULL;
    }
    return y;
}

/* The input gradient's geometry as a convolution of g (N, K, OH, OW) with stride 1, or false
 * when d's stride is not 1: dx[n, c, h, w] = sum over (k, r, s) of w[k, c, r, s] g[n, k, h + ph
 * - r dh, w + pw - s dw], the taps at minus the dilation and the padding added. */
static bool grad_input_geometry(const vkg_conv2d_desc *d, vkg_shape xs, const vkg_tensor *wc, vkg_conv_gemm *geo) {
    if (d->groups != 1 || d->stride[0] != 1 || d->stride[1] != 1) return false;
    *geo = (vkg_conv_gemm){ wc->shape.d[2], wc->shape.d[3], xs.d[2], xs.d[3], 1, 1, -d->dilation[0], -d->dilation[1],
                            d->padding[0], d->padding[1] };
    return true;
}

/* dx as one implicit GEMM: (C, K kh kw) weights (w with its first two dims swapped) times the
 * unfolding of g in that geometry, written as dx (N, C, H W); or NULL. */
static vkg_tensor *implicit_grad_input(vkg_tensor *g, vkg_tensor *wc, vkg_shape xs, const vkg_conv_gemm *geo) {
    int64_t C = wc->shape.d[1], ckk = wc->shape.d[0] * wc->shape.d[2] * wc->shape.d[3];
    vkg_no_grad_begin();
    vkg_tensor *wt = vkg_transpose(wc, 0, 1), *wtc = wt ? vkg_copy(wt) : NULL; /* (C, K, kh, kw) */
    vkg_tensor *w2 = wtc ? weight_matrix(wtc, C, ckk) : NULL;
    vkg_tensor *prod = w2 ? vkg_conv_gemm_forward(w2, g, geo, NULL) : NULL; /* (N, C, H W) */
    vkg_tensor *dx = prod ? vkg_reshape(prod, xs) : NULL;
    vkg_free(prod);
    vkg_free(w2);
    vkg_free(wtc);
    vkg_free(wt);
    vkg_no_grad_end();
    return dx;
}

/* dx through the matmul path: dcols = w^T @ g per chunk, folded back by conv_col2im. */
static vkg_status unfold_grad_input(vkg_tensor *dx, vkg_tensor *gc, vkg_tensor *wc, const vkg_conv2d_desc *d,
                                    const char *name) {
    int64_t N = dx->shape.d[0], C = dx->shape.d[1], K = wc->shape.d[0], kh = wc->shape.d[2], kw = wc->shape.d[3];
    int64_t OH = gc->shape.d[2], OW = gc->shape.d[3], P = OH * OW, ckk = C * kh * kw;
    int64_t per = unfold_chunk(N, ckk * P + C * dx->shape.d[2] * dx->shape.d[3]);
    vkg_status st = VKG_OK;
    vkg_no_grad_begin();
    vkg_tensor *w2 = weight_matrix(wc, K, ckk), *wt = w2 ? vkg_transpose(w2, 0, 1) : NULL;
    if (!wt) st = vkg_last_status();
    for (int64_t n0 = 0; n0 < N && st == VKG_OK; n0 += per) {
        int64_t nb = N - n0 < per ? N - n0 : per;
        vkg_tensor *gs = vkg_narrow(gc, 0, n0, nb), *gv = gs ? vkg_reshape(gs, VKG_SHAPE(nb, K, P)) : NULL;
        vkg_tensor *dcols = gv ? vkg_matmul(wt, gv) : NULL;                /* (nb, C kh kw, P) */
        vkg_tensor *dxs = dcols ? vkg_narrow(dx, 0, n0, nb) : NULL;
        if (dxs) {
            vkg_conv_push pc = { (uint32_t)nb, (uint32_t)C, (uint32_t)dx->shape.d[2], (uint32_t)dx->shape.d[3],
                                 (uint32_t)K, (uint32_t)OH, (uint32_t)OW, 1, (uint32_t)kh, (uint32_t)kw,
                                 (uint32_t)d->stride[0], (uint32_t)d->stride[1], (uint32_t)d->padding[0],
                                 (uint32_t)d->padding[1], (uint32_t)d->dilation[0], (uint32_t)d->dilation[1],
                                 .items = (uint32_t)vkg_numel(dxs) };
            vkg_tensor *bind[2] = { dxs, dcols };
            uint64_t cost = (uint64_t)(kh * (kw + 1)) + 4;
            runs_of(&pc, cost);
            st = conv_dispatch("conv_col2im", VKG_OP_CONV2D, name, &pc, bind, 2, 1, 0.0, cost);
        } else {
            st = vkg_last_status();
        }
        vkg_free(dxs);
        vkg_free(dcols);
        vkg_free(gv);
        vkg_free(gs);
    }
    vkg_free(wt);
    vkg_free(w2);
    vkg_no_grad_end();
    return st;
}

/* dw through the matmul path: the sum over images of g[n] @ cols[n]^T, chunk by chunk, in order;
 * cols: the forward's, of the whole batch, or NULL (unfolded here). */
static vkg_tensor *unfold_grad_weight(vkg_tensor *gc, vkg_tensor *x, vkg_tensor *kept, vkg_shape ws,
                                      const vkg_conv2d_desc *d, const char *name) {
    int64_t N = x->shape.d[0], K = ws.d[0], kh = ws.d[2], kw = ws.d[3], ckk = ws.d[1] * kh * kw;
    int64_t OH = gc->shape.d[2], OW = gc->shape.d[3], P = OH * OW;
    vkg_conv_gemm geo = forward_geometry(d, kh, kw, OH, OW);
    bool implicit = !kept && implicit_path(x, &geo); /* the forward's unfolding, where kept, is read */
    int64_t per = unfold_chunk(N, (implicit ? 0 : ckk * P) + K * ckk);
    vkg_tensor *acc = NULL;
    vkg_no_grad_begin();
    for (int64_t n0 = 0; n0 < N; n0 += per) {
        int64_t nb = N - n0 < per ? N - n0 : per;
        vkg_tensor *part = NULL;                                               /* (nb, K, C kh kw) */
        vkg_tensor *gs = vkg_narrow(gc, 0, n0, nb), *gv = gs ? vkg_reshape(gs, VKG_SHAPE(nb, K, P)) : NULL;
        vkg_tensor *cols = NULL, *ct = NULL;
        if (implicit) {
            vkg_tensor *xs = gv ? vkg_narrow(x, 0, n0, nb) : NULL;
            part = xs ? vkg_conv_gemm_wgrad(gv, xs, &geo) : NULL;
            vkg_free(xs);
        } else {
            cols = !gv ? NULL : kept ? vkg_narrow(kept, 0, n0, nb) : unfold(x, n0, nb, d, kh, kw, OH, OW, name);
            ct = cols ? vkg_transpose(cols, 1, 2) : NULL;
            part = ct ? vkg_matmul(gv, ct) : NULL;
        }
        vkg_tensor *sum = part ? vkg_sum(part, 0, false) : NULL;
        vkg_tensor *next = !sum ? NULL : acc ? vkg_add(acc, sum) : sum;
        if (sum != next) vkg_free(sum);
        vkg_free(part);
        vkg_free(gv);
        vkg_free(gs);
        vkg_free(ct);
        vkg_free(cols);
        if (acc != next) vkg_free(acc);
        acc = next;
        if (!acc) break;
    }
    vkg_tensor *dw = acc ? vkg_reshape(acc, ws) : NULL;
    if (dw != acc) vkg_free(acc);
    vkg_no_grad_end();
    return dw;
}

/* Options with the defaults filled in; false (message) when one is out of range. */
static bool conv_desc_norm(const vkg_conv2d_desc *in, vkg_conv2d_desc *out) {
    vkg_conv2d_desc d = in ? *in : (vkg_conv2d_desc){ 0 };
    for (int i = 0; i < 2; i++) {
        if (d.stride[i] < 0 || d.padding[i] < 0 || d.dilation[i] < 0) {
            vkg_fail(VKG_ERR_INVALID, "vkg_conv2d: stride (%d, %d), padding (%d, %d) and dilation (%d, %d) must not be "
                                      "negative", d.stride[0], d.stride[1], d.padding[0], d.padding[1], d.dilation[0],
                     d.dilation[1]);
            return false;
        }
        if (!d.stride[i]) d.stride[i] = 1;
        if (!d.dilation[i]) d.dilation[i] = 1;
    }
    if (d.groups < 0) {
        vkg_fail(VKG_ERR_INVALID, "vkg_conv2d: groups %d must be positive", d.groups);
        return false;
    }
    if (!d.groups) d.groups = 1;
    *out = d;
    return true;
}

static bool fits_u32(const vkg_tensor *t) { return vkg_numel(t) < (int64_t)1 << 31; }

vkg_tensor *vkg_conv2d(vkg_tensor *x, vkg_tensor *weight, vkg_tensor *bias, const vkg_conv2d_desc *desc) {
    if (!x || !weight) return NULL;
    const char *op = "vkg_conv2d";
    char a[192], b[192], c[192];
    if (!vkg_require_f32(x, op, "x") || !vkg_require_f32(weight, op, "weight") || (bias && !vkg_require_f32(bias, op, "bias")))
        return NULL;
    vkg_conv2d_desc d;
    if (!conv_desc_norm(desc, &d)) return NULL;
    if (x->shape.ndim != 4 || weight->shape.ndim != 4)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s and weight is %s; they must be 4-D: x (N, C_in, H, W), weight "
                                              "(C_out, C_in/groups, kH, kW)",
                             op, vkg_desc(x, a, sizeof a), vkg_desc(weight, b, sizeof b));
    int64_t N = x->shape.d[0], C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3];
    int64_t K = weight->shape.d[0], kh = weight->shape.d[2], kw = weight->shape.d[3];
    if (C % d.groups || K % d.groups)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s and weight is %s: %" PRId64 " input and %" PRId64
                                              " output channels do not divide into %d groups",
                             op, vkg_desc(x, a, sizeof a), vkg_desc(weight, b, sizeof b), C, K, d.groups);
    if (weight->shape.d[1] != C / d.groups || kh < 1 || kw < 1)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s but weight is %s: expected weight (C_out, %" PRId64
                                              ", kH >= 1, kW >= 1) for %" PRId64 " input channels in %d groups",
                             op, vkg_desc(x, a, sizeof a), vkg_desc(weight, b, sizeof b), C / d.groups, C, d.groups);
    if (bias && (bias->shape.ndim != 1 || bias->shape.d[0] != K))
        return vkg_fail_null(VKG_ERR_INVALID, "%s: bias is %s but weight %s has %" PRId64 " output channels", op,
                             vkg_desc(bias, c, sizeof c), vkg_desc(weight, b, sizeof b), K);
    int64_t OH = vkg_conv_out_size(H, (int)kh, d.stride[0], d.padding[0], d.dilation[0]);
    int64_t OW = vkg_conv_out_size(W, (int)kw, d.stride[1], d.padding[1], d.dilation[1]);
    if (OH < 1 || OW < 1)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: the kernel %" PRId64 "x%" PRId64 " (dilation %dx%d: extent %" PRId64
                                              "x%" PRId64 ") is larger than the padded input %" PRId64 "x%" PRId64
                                              " (x %s, padding %dx%d)",
                             op, kh, kw, d.dilation[0], d.dilation[1], (kh - 1) * d.dilation[0] + 1,
                             (kw - 1) * d.dilation[1] + 1, H + 2 * d.padding[0], W + 2 * d.padding[1],
                             vkg_shape_str(x->shape, a, sizeof a), d.padding[0], d.padding[1]);
    if (!fits_u32(x) || !fits_u32(weight))
        return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: x %s or weight %s has 2^31 elements or more", op,
                             vkg_desc(x, a, sizeof a), vkg_desc(weight, b, sizeof b));
    /* the matmul path keeps its unfolded input for the weight gradient when one will be asked
     * for (the weight needs it and the graph is recorded): the backward's im2col pass is then
     * saved, for C kh kw x N OH OW floats held from forward to backward (in the forward's
     * scope, like batch_norm's stats) */
    vkg_tensor *y = NULL, *cols = NULL;
    bool keep = weight->requires_grad && vkg_grad_enabled();
    if (N * K * OH * OW == 0) {
        y = vkg_tensor_alloc(VKG_SHAPE(N, K, OH, OW), VKG_F32, false, op);
    } else {
        vkg_tensor *wc = vkg_contiguous(weight), *bc = bias ? vkg_contiguous(bias) : NULL;
        if (wc && (!bias || bc) && unfold_path(d.groups, C * kh * kw * OH * OW)) {
            y = unfold_forward(x, wc, bc, &d, OH, OW, op, keep ? &cols : NULL);
        } else if (wc && (!bias || bc) && (y = vkg_tensor_alloc(VKG_SHAPE(N, K, OH, OW), VKG_F32, false, op))) {
            int64_t Kg = K / d.groups;
            int64_t items = N * d.groups * ((Kg + KB - 1) / KB) * OH * ((OW + PB - 1) / PB);
            vkg_conv_push pc = { (uint32_t)N, (uint32_t)C, (uint32_t)H, (uint32_t)W, (uint32_t)K, (uint32_t)OH,
                                 (uint32_t)OW, (uint32_t)d.groups, (uint32_t)kh, (uint32_t)kw, (uint32_t)d.stride[0],
                                 (uint32_t)d.stride[1], (uint32_t)d.padding[0], (uint32_t)d.padding[1],
                                 (uint32_t)d.dilation[0], (uint32_t)d.dilation[1], .flags = bias ? 1u : 0u,
                                 .items = (uint32_t)items };
            strides_of(x, pc.xs);
            vkg_tensor *bind[4] = { y, x, wc, bc ? bc : wc };
            if (conv_dispatch("conv2d", VKG_OP_CONV2D, op, &pc, bind, 4, 1,
                              2.0 * (double)vkg_numel(y) * (double)(C / d.groups) * (double)(kh * kw),
                              (uint64_t)(kh * (1 + kw * (1 + C / d.groups))) + 8) != VKG_OK) {
                vkg_free(y);
                y = NULL;
            }
            variant_last = "direct4x4";
        }
        if (wc && wc != weight) vkg_free(wc);
        if (bc && bc != bias) vkg_free(bc);
    }
    if (!y) return NULL;
    vkg_node *n = vkg_node_record(y, VKG_OP_CONV2D, (vkg_tensor *[]){ x, weight, bias, cols }, 4);
    if (n) vkg_conv_desc_store(n->ip, &d);
    else vkg_free(cols);
    return y;
}

vkg_tensor *vkg_conv2d_grad_input(vkg_tensor *g, vkg_tensor *weight, vkg_shape xs, const vkg_conv2d_desc *d) {
    if (!g || !weight) return NULL;
    vkg_conv_gemm geo;
    if (vkg_numel(g) > 0 && grad_input_geometry(d, xs, weight, &geo) && implicit_path(g, &geo)) {
        vkg_tensor *wc = vkg_contiguous(weight), *dx = wc ? implicit_grad_input(g, wc, xs, &geo) : NULL;
        if (wc && wc != weight) vkg_free(wc);
        return dx;
    }
    vkg_tensor *dx = vkg_tensor_alloc(xs, VKG_F32, false, "conv2d backward");
    if (!dx || vkg_numel(dx) == 0) return dx;
    vkg_tensor *gc = vkg_contiguous(g), *wc = vkg_contiguous(weight);
    vkg_status st = (!gc || !wc) ? vkg_last_status() : VKG_OK;
    if (st == VKG_OK && unfold_path(d->groups, vkg_numel(weight) / weight->shape.d[0] * g->shape.d[2] * g->shape.d[3])) {
        st = unfold_grad_input(dx, gc, wc, d, "conv2d backward (input)");
    } else if (st == VKG_OK) {
        int64_t C = xs.d[1], Cg = C / d->groups;
        vkg_conv_push pc = { (uint32_t)xs.d[0], (uint32_t)C, (uint32_t)xs.d[2], (uint32_t)xs.d[3],
                             (uint32_t)g->shape.d[1], (uint32_t)g->shape.d[2], (uint32_t)g->shape.d[3],
                             (uint32_t)d->groups, (uint32_t)weight->shape.d[2], (uint32_t)weight->shape.d[3],
                             (uint32_t)d->stride[0], (uint32_t)d->stride[1], (uint32_t)d->padding[0],
                             (uint32_t)d->padding[1], (uint32_t)d->dilation[0], (uint32_t)d->dilation[1], .flags = 0 };
        pc.items = (uint32_t)(xs.d[0] * d->groups * ((Cg + CB - 1) / CB) * xs.d[2] * xs.d[3]);
        vkg_tensor *bind[3] = { dx, gc, wc };
        uint64_t kg = (uint64_t)(g->shape.d[1] / d->groups), taps = (uint64_t)(weight->shape.d[2] * weight->shape.d[3]);
        st = conv_dispatch("conv2d_backward_input", VKG_OP_CONV2D, "conv2d backward (input)", &pc, bind, 3, 1,
                           2.0 * (double)vkg_numel(g) * (double)vkg_numel(weight) / (double)weight->shape.d[0],
                           taps * (1 + kg) + (uint64_t)weight->shape.d[2] + 8);
    }
    if (gc && gc != g) vkg_free(gc);
    if (wc && wc != weight) vkg_free(wc);
    if (st != VKG_OK) {
        vkg_free(dx);
        return NULL;
    }
    return dx;
}

/* dw sums over every (n, oh, ow) of the batch. One invocation per block of KB output channels
 * x TB taps would walk N OH OW positions alone: too few invocations to fill a device for a
 * first layer (32 x 1 x 3 x 3 weights: 8 blocks), and past lavapipe's loop limit for a batch of
 * 28x28 images. So the (n, oh)
 * rows are split into chunks (vkg_split_rows), each chunk's partial sums land in their own slice
 * of a (chunks, dw) buffer, and one reduction over the chunks, in a fixed order, gives dw. */
vkg_tensor *vkg_conv2d_grad_weight(vkg_tensor *g, vkg_tensor *x, vkg_tensor *cols, vkg_shape ws,
                                   const vkg_conv2d_desc *d) {
    const char *name = "conv2d backward (weight)";
    if (!g || !x) return NULL;
    int64_t numel = vkg_shape_numel(ws);
    if (numel == 0) return vkg_tensor_alloc(ws, VKG_F32, false, name);
    if (unfold_path(d->groups, ws.d[1] * ws.d[2] * ws.d[3] * g->shape.d[2] * g->shape.d[3]) && vkg_numel(g) > 0) {
        vkg_tensor *gc = vkg_contiguous(g);
        vkg_tensor *dw = gc ? unfold_grad_weight(gc, x, cols, ws, d, name) : NULL;
        if (gc && gc != g) vkg_free(gc);
        return dw;
    }
    int64_t K = ws.d[0], Kg = K / d->groups, OH = g->shape.d[2], OW = g->shape.d[3];
    uint64_t base = (uint64_t)(d->groups * ((Kg + KB - 1) / KB) * ws.d[1] * ((ws.d[2] * ws.d[3] + TB - 1) / TB));
    uint64_t rows = (uint64_t)(x->shape.d[0] * OH), row_cost = 2 + (uint64_t)OW;
    if (vkg_loop_check(row_cost, name, "one output row") != VKG_OK) return NULL;
    uint64_t per, chunks = vkg_split_rows(rows, row_cost, base, &per);
    if (base * chunks > UINT32_MAX || (uint64_t)numel * chunks > UINT32_MAX) {
        vkg_fail(VKG_ERR_TOO_LARGE, "%s: %llu partial sums of %lld weights pass 2^32", name,
                 (unsigned long long)chunks, (long long)numel);
        return NULL;
    }
    vkg_tensor *part = vkg_tensor_alloc(chunks > 1 ? VKG_SHAPE((int64_t)chunks, numel) : ws, VKG_F32, false, name);
    if (!part) return NULL;
    vkg_tensor *gc = vkg_contiguous(g);
    vkg_status st = !gc ? vkg_last_status() : VKG_OK;
    if (st == VKG_OK) {
        vkg_conv_push pc = { (uint32_t)x->shape.d[0], (uint32_t)x->shape.d[1], (uint32_t)x->shape.d[2],
                             (uint32_t)x->shape.d[3], (uint32_t)K, (uint32_t)OH, (uint32_t)OW,
                             (uint32_t)d->groups, (uint32_t)ws.d[2], (uint32_t)ws.d[3], (uint32_t)d->stride[0],
                             (uint32_t)d->stride[1], (uint32_t)d->padding[0], (uint32_t)d->padding[1],
                             (uint32_t)d->dilation[0], (uint32_t)d->dilation[1], .flags = 0,
                             .items = (uint32_t)(base * chunks), .per = (uint32_t)per, .base = (uint32_t)base };
        strides_of(x, pc.xs);
        vkg_tensor *bind[3] = { part, gc, x };
        st = conv_dispatch("conv2d_backward_weight", VKG_OP_CONV2D, name, &pc, bind, 3, 1,
                           2.0 * (double)vkg_numel(g) * (double)(ws.d[1] * ws.d[2] * ws.d[3]),
                           per * row_cost + 8);
    }
    if (gc && gc != g) vkg_free(gc);
    if (st != VKG_OK) {
        vkg_free(part);
        return NULL;
    }
    if (chunks == 1) return part;
    vkg_tensor *dw = vkg_reshape(vkg_sum(part, 0, false), ws);
    vkg_free(part);
    return dw;
}

/* ---- pooling --------------------------------------------------------------------------------- */
static vkg_tensor *pool2d(vkg_op op, vkg_tensor *x, const vkg_pool2d_desc *desc, vkg_tensor **indices) {
    if (indices) *indices = NULL;
    if (!x) return NULL;
    const char *name = op == VKG_OP_MAX_POOL2D ? "vkg_max_pool2d" : "vkg_avg_pool2d";
    char a[192];
    if (!vkg_require_f32(x, name, "x")) return NULL;
    if (!desc) return vkg_fail_null(VKG_ERR_INVALID, "%s: the description (kernel size) is NULL", name);
    vkg_pool2d_desc d = *desc;
    for (int i = 0; i < 2; i++) {
        if (!d.stride[i]) d.stride[i] = d.kernel[i];
        if (d.kernel[i] < 1 || d.stride[i] < 1 || d.padding[i] < 0 || 2 * d.padding[i] > d.kernel[i])
            return vkg_fail_null(VKG_ERR_INVALID, "%s: kernel (%d, %d), stride (%d, %d), padding (%d, %d): the kernel "
                                                  "and stride must be positive, the padding at most half the kernel",
                                 name, d.kernel[0], d.kernel[1], desc->stride[0], desc->stride[1], d.padding[0],
                                 d.padding[1]);
    }
    if (d.relu && op != VKG_OP_MAX_POOL2D)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: relu is for max pooling only", name);
    if (x->shape.ndim != 4)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: x is %s; it must be 4-D (N, C, H, W)", name, vkg_desc(x, a, sizeof a));
    int64_t N = x->shape.d[0], C = x->shape.d[1], H = x->shape.d[2], W = x->shape.d[3];
    int64_t OH = vkg_conv_out_size(H, d.kernel[0], d.stride[0], d.padding[0], 1);
    int64_t OW = vkg_conv_out_size(W, d.kernel[1], d.stride[1], d.padding[1], 1);
    if (OH < 1 || OW < 1)
        return vkg_fail_null(VKG_ERR_INVALID, "%s: the kernel %dx%d is larger than the padded input %" PRId64 "x%" PRId64
                                              " (x %s, padding %dx%d)",
                             name, d.kernel[0], d.kernel[1], H + 2 * d.padding[0], W + 2 * d.padding[1],
                             vkg_shape_str(x->shape, a, sizeof a), d.padding[0], d.padding[1]);
    if (!fits_u32(x)) return vkg_fail_null(VKG_ERR_TOO_LARGE, "%s: x %s has 2^31 elements or more", name, vkg_desc(x, a, sizeof a));
    vkg_shape ys = VKG_SHAPE(N, C, OH, OW);
    vkg_tensor *y = vkg_tensor_alloc(ys, VKG_F32, false, name);
    vkg_tensor *idx = y && op == VKG_OP_MAX_POOL2D ? vkg_tensor_alloc(ys, VKG_I32, false, name) : NULL;
    if (!y || (op == VKG_OP_MAX_POOL2D && !idx)) {
        vkg_free(y);
        return NULL;
    }
    if (vkg_numel(y) > 0) {
        vkg_conv_push pc = { (uint32_t)N, (uint32_t)C, (uint32_t)H, (uint32_t)W, (uint32_t)C, (uint32_t)OH, (uint32_t)OW,
                             1, (uint32_t)d.kernel[0], (uint32_t)d.kernel[1], (uint32_t)d.stride[0],
                             (uint32_t)d.stride[1], (uint32_t)d.padding[0], (uint32_t)d.padding[1], 1, 1,
                             .items = (uint32_t)vkg_numel(y) };
        strides_of(x, pc.xs);
        vkg_tensor *bind[3] = { y, x, idx ? idx : y };
        /* windows 2 wide at stride 2 over rows whose elements pair up: vec2 loads (PAIRS) */
        bool even = x->strides[0] % 2 == 0 && x->strides[1] % 2 == 0 && x->strides[2] % 2 == 0 && x->offset % 2 == 0;
        if (d.kernel[1] == 2 && d.stride[1] == 2 && !d.padding[1] && x->strides[3] == 1 && even) pc.flags |= 4u;
        if (d.relu) pc.flags |= 8u;
        /* the window's two loops and their exits: 2x2 runs 11 on lavapipe */
        uint64_t cost = (uint64_t)(d.kernel[0] + 1) * (uint64_t)(d.kernel[1] + 2) + 2;
        runs_of(&pc, cost);
        if (conv_dispatch("pool2d", op, name, &pc, bind, 3, idx ? 2 : 1, (double)vkg_numel(y) * d.kernel[0] * d.kernel[1],
                          cost) != VKG_OK) {
            vkg_free(y);
            vkg_free(idx);
            return NULL;
        }
    }
    /* max keeps its argmax as a second input of the node: backward routes by it exactly */
    vkg_node *n = vkg_node_record(y, op, (vkg_tensor *[]){ x, idx }, idx ? 2 : 1);
    if (n) vkg_pool_desc_store(n->ip, &d);
    if (indices) *indices = idx;
    else if (!n) vkg_free(idx);
    return y;
}

vkg_tensor *vkg_max_pool2d(vkg_tensor *x, const vkg_pool2d_desc *desc) { return pool2d(VKG_OP_MAX_POOL2D, x, desc, NULL); }
vkg_tensor *vkg_max_pool2d_with_indices(vkg_tensor *x, const vkg_pool2d_desc *desc, vkg_tensor **indices) {
    return pool2d(VKG_OP_MAX_POOL2D, x, desc, indices);
}
vkg_tensor *vkg_avg_pool2d(vkg_tensor *x, const vkg_pool2d_desc *desc) { return pool2d(VKG_OP_AVG_POOL2D, x, desc, NULL); }

vkg_tensor *vkg_pool2d_grad_input(vkg_op op, vkg_tensor *g, vkg_tensor *indices, vkg_shape xs, const vkg_pool2d_desc *d) {
    if (!g || (op == VKG_OP_MAX_POOL2D && !indices)) return NULL;
    vkg_tensor *dx = vkg_tensor_alloc(xs, VKG_F32, false, "pool2d backward");
    if (!dx || vkg_numel(dx) == 0) return dx;
    vkg_tensor *gc = vkg_contiguous(g), *ic = indices ? vkg_contiguous(indices) : NULL;
    vkg_status st = (!gc || (indices && !ic)) ? vkg_last_status() : VKG_OK;
    if (st == VKG_OK) {
        vkg_conv_push pc = { (uint32_t)xs.d[0], (uint32_t)xs.d[1], (uint32_t)xs.d[2], (uint32_t)xs.d[3],
                             (uint32_t)xs.d[1], (uint32_t)g->shape.d[2], (uint32_t)g->shape.d[3], 1,
                             (uint32_t)d->kernel[0], (uint32_t)d->kernel[1], (uint32_t)d->stride[0],
                             (uint32_t)d->stride[1], (uint32_t)d->padding[0], (uint32_t)d->padding[1], 1, 1,
                             .items = (uint32_t)vkg_numel(dx) };
        vkg_tensor *bind[3] = { dx, gc, ic ? ic : gc };
        uint64_t cost = (uint64_t)(d->kernel[0] + 1) * (uint64_t)(d->kernel[1] + 2) + 2;
        /* windows that tile the input: one item per window (pool2d_backward.comp), whose loops
         * run over the window and, in the last row and column of windows, the rest (< kernel) */
        if (d->stride[0] == d->kernel[0] && d->stride[1] == d->kernel[1] && !d->padding[0] && !d->padding[1]) {
            pc.flags = 2;
            /* windows 2 wide over rows of even length: one vec2 store per window row (PAIRS) */
            if (d->kernel[1] == 2 && xs.d[3] % 2 == 0 && dx->offset % 2 == 0) pc.flags |= 4u;
            pc.items = (uint32_t)vkg_numel(gc);
            cost = (uint64_t)(2 * d->kernel[0] + 1) * (uint64_t)(2 * d->kernel[1] + 1) + 2;
        }
        runs_of(&pc, cost);
        st = conv_dispatch("pool2d_backward", op, op == VKG_OP_MAX_POOL2D ? "max_pool2d backward" : "avg_pool2d backward",
                           &pc, bind, 3, 1, (double)vkg_numel(dx), cost);
    }
    if (gc && gc != g) vkg_free(gc);
    if (ic && ic != indices) vkg_free(ic);
    if (st != VKG_OK) {
        vkg_free(dx);
        return NULL;
    }
    return dx;
}
