/* Dynamic loss scaling for mixed-precision training, torch.cuda.amp.GradScaler's algorithm:
 * the loss is multiplied by the scale before backward; before the optimizer step the gradients
 * are unscaled in place and checked for inf/NaN on the device (shaders/optim_unscale.comp, one
 * dispatch per gradient into one flag), the flag is read once, the step is taken only when every
 * gradient is finite, and the scale is halved on an overflow or doubled after growth_interval
 * finite steps in a row. */
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"

/* Mirrors the Push block of shaders/optim_unscale.comp: change both. */
typedef struct vkg_unscale_push {
    uint32_t n, g_off, flag_off;
    float inv_scale;
} vkg_unscale_push;

#define LOCAL 128

struct vkg_loss_scaler {
    vkg_loss_scaler_desc d;   /* defaults filled in */
    double scale;
    int64_t tracker;          /* finite steps in a row since the last change of scale */
    vkg_tensor *flag;         /* 0-d f32: 0, or 1 when an unscaled gradient was inf/NaN; outside every scope */
    bool unscaled;            /* vkg_loss_scaler_unscale ran since the last step */
    bool found_inf;           /* what the last step's flag said */
};

vkg_loss_scaler *vkg_loss_scaler_new(const vkg_loss_scaler_desc *desc) {
    static const char *const WHO = "vkg_loss_scaler_new";
    if (!vkg_ready(WHO)) return NULL;
    vkg_loss_scaler_desc d = desc ? *desc : (vkg_loss_scaler_desc){ 0 };
    if (d.init_scale == 0) d.init_scale = 65536.0;
    if (d.growth_factor == 0) d.growth_factor = 2.0;
    if (d.backoff_factor == 0) d.backoff_factor = 0.5;
    if (d.growth_interval == 0) d.growth_interval = 2000;
    if (!(d.init_scale > 0) || !isfinite(d.init_scale) || !(d.growth_factor > 1.0) || !isfinite(d.growth_factor) ||
        !(d.backoff_factor > 0) || !(d.backoff_factor < 1.0) || d.growth_interval < 1)
        return vkg_fail_null(VKG_ERR_INVALID,
                             "%s: init_scale %g must be > 0, growth_factor %g > 1, backoff_factor %g in (0, 1), "
                             "growth_interval %lld >= 1",
                             WHO, d.init_scale, d.growth_factor, d.backoff_factor, (long long)d.growth_interval);
    vkg_loss_scaler *s = calloc(1, sizeof *s);
    if (!s) return vkg_fail_null(VKG_ERR_OUT_OF_MEMORY, "%s: out of host memory", WHO);
    s->d = d;
    s->scale = d.init_scale;
    s->flag = vkg_zeros(VKG_SCALAR);
    while (s->flag && s->flag->scope > 0) vkg_keep(s->flag); /* outside every scope: freed with s */
    if (!s->flag) {
        free(s);
        return NULL;
    }
    return s;
}

void vkg_loss_scaler_free(vkg_loss_scaler *s) {
    if (!s) return;
    vkg_free(s->flag);
    free(s);
}

double vkg_loss_scaler_get_scale(const vkg_loss_scaler *s) { return s ? s->scale : NAN; }
int64_t vkg_loss_scaler_growth_tracker(const vkg_loss_scaler *s) { return s ? s->tracker : -1; }
bool vkg_loss_scaler_found_inf(const vkg_loss_scaler *s) { return s && s->found_inf; }

vkg_status vkg_loss_scaler_set_state(vkg_loss_scaler *s, double scale, int64_t growth_tracker) {
    if (!s) return vkg_fail(VKG_ERR_INVALID, "vkg_loss_scaler_set_state: scaler is NULL");
    if (!(scale > 0) || !isfinite(scale) || growth_tracker < 0)
        return vkg_fail(VKG_ERR_INVALID, "vkg_loss_scaler_set_state: scale %g must be finite and > 0, tracker %lld >= 0",
                        scale, (long long)growth_tracker);
    s->scale = scale;
    s->tracker = growth_tracker;
    return VKG_OK;
}

vkg_tensor *vkg_loss_scaler_scale(vkg_loss_scaler *s, vkg_tensor *loss) {
    if (!loss) return NULL;
    if (!s) return vkg_fail_null(VKG_ERR_INVALID, "vkg_loss_scaler_scale: scaler is NULL");
    return vkg_mul_scalar(loss, (float)s->scale);
}

vkg_status vkg_loss_scaler_unscale(vkg_loss_scaler *s, vkg_optim *opt) {
    static const char *const WHO = "vkg_loss_scaler_unscale";
    if (!s || !opt) return vkg_fail(VKG_ERR_INVALID, "%s: %s is NULL", WHO, s ? "optimizer" : "scaler");
    if (s->unscaled)
        return vkg_fail(VKG_ERR_INVALID, "%s: already called since the last vkg_loss_scaler_step", WHO);
    if (!vkg_fill_(s->flag, 0.0f)) return vkg_last_status();
    /* torch: inv_scale = scale.double().reciprocal().float() */
    float inv = (float)(1.0 / s->scale);
    for (int i = 0; i < vkg_optim_param_count(opt); i++) {
        vkg_tensor *g = vkg_optim_param(opt, i)->grad;
        int64_t n = g ? vkg_numel(g) : 0;
        if (n == 0) continue;
        char b[192];
        if (g->dtype != VKG_F32 || !vkg_is_contiguous(g))
            return vkg_fail(VKG_ERR_INVALID, "%s: the gradient of %s is %s; f32 and contiguous only", WHO,
                            vkg_optim_param_name(opt, i), vkg_desc(g, b, sizeof b));
        vkg_unscale_push pc = { (uint32_t)n, (uint32_t)g->offset, (uint32_t)s->flag->offset, inv };
        vkg_status st = vkg_dispatch(&(vkg_dispatch_desc){
            .shader = "optim_unscale", .op = VKG_OP_COUNT, .name = "loss_scaler_unscale", .local_size = LOCAL,
            .groups = { vkg_groups_for((uint64_t)n, LOCAL) }, .bind = { g, s->flag }, .nout = 2, .push = &pc,
            .push_size = sizeof pc, .flops = (double)n, .bytes = 8.0 * (double)n });
        if (st != VKG_OK) return st;
    }
    s->unscaled = true;
    return VKG_OK;
}

vkg_status vkg_loss_scaler_step(vkg_loss_scaler *s, vkg_optim *opt, bool *stepped) {
    if (stepped) *stepped = false;
    if (!s || !opt) return vkg_fail(VKG_ERR_INVALID, "vkg_loss_scaler_step: %s is NULL", s ? "optimizer" : "scaler");
    vkg_status st = s->unscaled ? VKG_OK : vkg_loss_scaler_unscale(s, opt);
    if (st != VKG_OK) return st;
    s->unscaled = false;
    float flag = vkg_item(s->flag); /* the one read-back of the step */
    if (isnan(flag)) return vkg_last_status();
    s->found_inf = flag != 0.0f;
    if (!s->found_inf) {
        if ((st = vkg_optim_step(opt)) != VKG_OK) return st;
        if (stepped) *stepped = true;
    }
    /* torch's _amp_update_scale_ */
    if (s->found_inf) {
        s->scale *= s->d.backoff_factor;
        s->tracker = 0;
    } else if (++s->tracker >= s->d.growth_interval) {
        double grown = s->scale * s->d.growth_factor;
        if (isfinite((float)grown)) s->scale = grown;
        s->tracker = 0;
    }
    return VKG_OK;
}
