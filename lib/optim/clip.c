/* Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_, norm 2): the norm is
 * reduced with the ordinary ops (fixed order, so bitwise reproducible), and the scale is
 * applied by shaders/optim_clip.comp, which reads the norm from its buffer: the host reads
 * nothing unless it asks for the norm. */
#include <math.h>

#include "ops/ops.h"

/* Mirrors the Push block of shaders/optim_clip.comp: change both. */
typedef struct vkg_clip_push {
    uint32_t n, g_off, norm_off;
    float max_norm;
} vkg_clip_push;

#define LOCAL 128

vkg_tensor *vkg_clip_grad_norm_tensor(vkg_tensor *const *params, int n, float max_norm) {
    if (!vkg_ready("vkg_clip_grad_norm")) return NULL;
    if (n < 0 || (n > 0 && !params))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_clip_grad_norm: %d parameters at %p", n, (const void *)params);
    if (!(max_norm >= 0.0f) || isinf(max_norm))
        return vkg_fail_null(VKG_ERR_INVALID, "vkg_clip_grad_norm: max_norm %g must be finite and >= 0", (double)max_norm);
    for (int i = 0; i < n; i++) {
        if (!params[i]) return vkg_fail_null(VKG_ERR_INVALID, "vkg_clip_grad_norm: parameter %d is NULL", i);
        vkg_tensor *g = params[i]->grad;
        char b[192];
        if (g && (g->dtype != VKG_F32 || !vkg_is_contiguous(g)))
            return vkg_fail_null(VKG_ERR_INVALID, "vkg_clip_grad_norm: the gradient of parameter %d is %s%s", i,
                                 vkg_desc(g, b, sizeof b), vkg_is_contiguous(g) ? "" : " (not contiguous)");
    }
    vkg_no_grad_begin();
    vkg_scope_begin();
    vkg_tensor *total = NULL;
    for (int i = 0; i < n; i++) {
        vkg_tensor *g = params[i]->grad;
        if (!g) continue;
        vkg_tensor *sq = vkg_sum_all(vkg_mul(g, g));
        total = total ? vkg_add(total, sq) : sq;
    }
    vkg_tensor *norm = total ? vkg_sqrt(total) : vkg_zeros(VKG_SCALAR);
    bool ok = norm != NULL;
    for (int i = 0; ok && i < n; i++) {
        vkg_tensor *g = params[i]->grad;
        int64_t count = g ? vkg_numel(g) : 0;
        if (count == 0) continue;
        vkg_clip_push pc = { (uint32_t)count, (uint32_t)g->offset, (uint32_t)norm->offset, max_norm };
        ok = vkg_dispatch(&(vkg_dispatch_desc){ .shader = "optim_clip", .op = VKG_OP_COUNT, .name = "clip_grad_norm",
                                                .local_size = LOCAL, .groups = { vkg_groups_for((uint64_t)count, LOCAL) },
                                                .bind = { g, norm }, .nout = 1, .push = &pc, .push_size = sizeof pc,
                                                .flops = 2.0 * (double)count }) == VKG_OK;
    }
    if (ok) vkg_keep(norm);
    vkg_scope_end();
    vkg_no_grad_end();
    return ok ? norm : NULL;
}

float vkg_clip_grad_norm(vkg_tensor *const *params, int n, float max_norm) {
    vkg_tensor *norm = vkg_clip_grad_norm_tensor(params, n, max_norm);
    if (!norm) return NAN;
    float v = vkg_item(norm);
    vkg_free(norm);
    return v;
}
