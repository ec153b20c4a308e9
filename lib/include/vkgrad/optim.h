/* vkgrad optimizers: SGD, Adam, AdamW and RMSprop with torch.optim's update formulas and
 * defaults; gradient clipping by global norm; learning-rate schedules.
 *
 *   vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAMW, .lr = 3e-4 });
 *   vkg_optim_add_module(opt, model);                  // or vkg_optim_add(opt, "w", w) per tensor
 *   for (int64_t step = 0; step < steps; step++) {
 *       vkg_scope_begin();
 *       vkg_optim_zero_grad(opt);
 *       vkg_backward(loss_of(batch));
 *       vkg_clip_grad_norm(params, nparams, 1.0f);     // optional
 *       vkg_optim_set_lr(opt, vkg_lr_cosine(3e-4, step, 100, steps, 0.0));
 *       vkg_optim_step(opt);                           // fused: a dispatch per 1-6 parameters
 *       vkg_scope_end();
 *   }
 *   vkg_optim_free(opt);
 *
 * A step updates every parameter that has a gradient with ONE dispatch (shaders/optim_step.comp)
 * that reads the gradient and writes the parameter's storage and its state in place, so models
 * keep their tensor handles. Parameters without a gradient are skipped and their step count does
 * not advance (PyTorch skips p.grad None). The step records nothing for autograd.
 *
 * The updates, per element, for step t = 1, 2, ... of a parameter (g its gradient; PyTorch's
 * _single_tensor_* functions in torch/optim/{sgd,adam,adamw,rmsprop}.py):
 *
 *   all        g = -g if maximize
 *   SGD        g += wd p                                  (if weight_decay)
 *              b  = t == 1 ? g : momentum b + (1 - dampening) g          (if momentum)
 *              g  = nesterov ? g + momentum b : b                        (if momentum)
 *              p -= lr g
 *   Adam       g += wd p                                  (if weight_decay: L2, coupled)
 *   AdamW      p *= 1 - lr wd                             (decoupled)
 *   Adam(W)    m  = m + (1 - beta1)(g - m)                (exp_avg.lerp_)
 *              v  = beta2 v + (1 - beta2) g^2             (exp_avg_sq)
 *              vmax = max(vmax, v); v = vmax              (amsgrad only: max_exp_avg_sq)
 *              p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *   RMSprop    g += wd p                                  (if weight_decay)
 *              s  = alpha s + (1 - alpha) g^2             (square_avg)
 *              a  = a + (1 - alpha)(g - a)                (centered only: grad_avg)
 *              d  = sqrt(centered ? s - a^2 : s) + eps
 *              b  = momentum b + g / d; p -= lr b         (if momentum: momentum_buffer)
 *              p -= lr g / d                              (otherwise)
 *
 * State tensors (zeros when made; f32, the parameter's shape), by the names torch.optim's
 * state_dict uses: SGD "momentum_buffer" (momentum != 0); Adam/AdamW "exp_avg", "exp_avg_sq",
 * "max_exp_avg_sq" (amsgrad); RMSprop "square_avg", "momentum_buffer" (momentum > 0),
 * "grad_avg" (centered); and every kind a step count (vkg_optim_step_count). They are made when
 * the parameter is added, live outside every scope and are freed by vkg_optim_free; write them
 * (vkg_tensor_write) and set the step count to resume from a checkpoint. SGD's first step with
 * momentum (buf = g) is the step taken at step count 0. */
#ifndef VKGRAD_OPTIM_H
#define VKGRAD_OPTIM_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

typedef enum vkg_optim_kind {
    VKG_OPTIM_SGD = 0,
    VKG_OPTIM_ADAM,
    VKG_OPTIM_ADAMW,
    VKG_OPTIM_RMSPROP,
} vkg_optim_kind;

/* A hyperparameter of 0 means PyTorch's default. Where the default is not 0 (lr, betas, eps,
 * alpha, AdamW's weight_decay), VKG_OPTIM_ZERO asks for an explicit 0. Other negative values
 * are refused, as PyTorch refuses them. */
#define VKG_OPTIM_ZERO (-1.0)

typedef struct vkg_optim_desc {
    vkg_optim_kind kind;
    double lr;            /* SGD 1e-3, Adam 1e-3, AdamW 1e-3, RMSprop 1e-2                     */
    double weight_decay;  /* 0; AdamW 1e-2 (decoupled)                                         */
    double momentum;      /* SGD, RMSprop: 0                                                   */
    double dampening;     /* SGD: 0                                                            */
    bool nesterov;        /* SGD: needs momentum > 0 and dampening 0                           */
    double beta1, beta2;  /* Adam, AdamW: 0.9, 0.999                                           */
    double eps;           /* Adam, AdamW, RMSprop: 1e-8                                        */
    double alpha;         /* RMSprop: 0.99                                                     */
    bool centered;        /* RMSprop                                                           */
    bool amsgrad;         /* Adam, AdamW                                                       */
    bool maximize;        /* ascend instead of descend                                         */
} vkg_optim_desc;

typedef struct vkg_optim vkg_optim;

/* NULL with a message on a bad kind or hyperparameter. */
vkg_optim *vkg_optim_new(const vkg_optim_desc *desc);
void vkg_optim_free(vkg_optim *opt);   /* frees the state, not the parameters */
/* Adds a parameter (f32, contiguous, requires grad) under a name (unique within opt; copied) and
 * makes its state. The parameter must outlive opt. */
vkg_status vkg_optim_add(vkg_optim *opt, const char *name, vkg_tensor *param);
/* Adds n parameters at once; names may be NULL ("0", "1", ... by position in opt). */
vkg_status vkg_optim_add_params(vkg_optim *opt, const char *const *names, vkg_tensor *const *params, int n);
/* Adds every parameter of a module (vkgrad/nn.h) under its name ("fc1.weight", ...). */
typedef struct vkg_module vkg_module;
vkg_status vkg_optim_add_module(vkg_optim *opt, const vkg_module *m);

/* Updates every parameter that has a gradient, nothing waits: one dispatch for up to six
 * parameters with the same step count (the multi-tensor step; on CPU devices only parameters
 * up to 64K elements share one, up to 4K where the single step reads texel views: lavapipe), else
 * one each. VKG_OPTIM_MULTI=0 turns the sharing off. */
vkg_status vkg_optim_step(vkg_optim *opt);
/* Frees every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
void vkg_optim_zero_grad(vkg_optim *opt);

/* The effective hyperparameters (defaults filled in). */
vkg_optim_desc vkg_optim_get_desc(const vkg_optim *opt);
void vkg_optim_set_lr(vkg_optim *opt, double lr);   /* for schedules: takes effect at the next step */
double vkg_optim_lr(const vkg_optim *opt);

int vkg_optim_param_count(const vkg_optim *opt);
const char *vkg_optim_param_name(const vkg_optim *opt, int i);  /* NULL past the end */
vkg_tensor *vkg_optim_param(const vkg_optim *opt, int i);
/* A state tensor of the named parameter ("exp_avg", ...), or NULL (with a message) if the
 * parameter or that state does not exist for this optimizer. */
vkg_tensor *vkg_optim_state(const vkg_optim *opt, const char *param_name, const char *state_name);
/* Steps taken by the named parameter (-1 with a message if unknown), and setting it (resume). */
int64_t vkg_optim_step_count(const vkg_optim *opt, const char *param_name);
vkg_status vkg_optim_set_step_count(vkg_optim *opt, const char *param_name, int64_t step);

/* ---- gradient clipping by global norm -------------------------------------------------------
 * torch.nn.utils.clip_grad_norm_ (norm 2): total = sqrt(sum over params of sum(g^2)), and
 * every gradient is multiplied in place by min(max_norm / (total + 1e-6), 1). The norm is
 * reduced and applied on the device (shaders/optim_clip.comp reads it from a buffer: no host
 * read in between). Parameters without a gradient are skipped; with none at all the norm is 0. */
/* The total norm as a 0-d tensor in the current scope; nothing is read back. NULL on error. */
vkg_tensor *vkg_clip_grad_norm_tensor(vkg_tensor *const *params, int n, float max_norm);
/* The same, returning the total norm (one read back); NAN with a message on error. */
float vkg_clip_grad_norm(vkg_tensor *const *params, int n, float max_norm);

/* ---- dynamic loss scaling for mixed precision (torch.cuda.amp.GradScaler) -----------------------
 *
 *   vkg_loss_scaler *sc = vkg_loss_scaler_new(NULL);       // 2^16, x2 after 2000 good steps, x0.5
 *   ... each step, in its scope:
 *   vkg_optim_zero_grad(opt);
 *   vkg_backward(vkg_loss_scaler_scale(sc, loss));          // gradients of loss * scale
 *   vkg_loss_scaler_unscale(sc, opt);                       // optional: before clipping
 *   vkg_clip_grad_norm(params, n, 1.0f);                    // optional: sees true gradients
 *   bool stepped;
 *   vkg_loss_scaler_step(sc, opt, &stepped);                // steps only if all are finite
 *
 * Scaling keeps small f16-stored gradients from flushing to zero; with f32 gradients (vkgrad
 * computes in f32) it changes nothing but the exponent, exactly, as long as nothing
 * overflows. Unscaling multiplies every gradient by 1/scale in place and ORs an inf/NaN flag on
 * the device (shaders/optim_unscale.comp: one dispatch per gradient, one flag); the step reads
 * that flag (one read-back, so the step waits for the backward: not for captured graphs), calls
 * vkg_optim_step only when it is clear, then updates the scale: x backoff_factor and the
 * tracker reset on inf/NaN, x growth_factor after growth_interval finite steps in a row. A
 * skipped step leaves parameters, optimizer state and step counts as they were. */
typedef struct vkg_loss_scaler_desc {   /* zero = default */
    double init_scale;        /* 65536 (2^16)                                                   */
    double growth_factor;     /* 2                                                              */
    double backoff_factor;    /* 0.5                                                            */
    int64_t growth_interval;  /* 2000                                                           */
} vkg_loss_scaler_desc;

typedef struct vkg_loss_scaler vkg_loss_scaler;

vkg_loss_scaler *vkg_loss_scaler_new(const vkg_loss_scaler_desc *desc);  /* NULL: defaults */
void vkg_loss_scaler_free(vkg_loss_scaler *s);
/* loss * scale (differentiable), in the current scope. */
vkg_tensor *vkg_loss_scaler_scale(vkg_loss_scaler *s, vkg_tensor *loss);
/* Unscales every gradient of opt's parameters in place and records the inf/NaN check; at most
 * once between steps. Nothing is read back. */
vkg_status vkg_loss_scaler_unscale(vkg_loss_scaler *s, vkg_optim *opt);
/* Unscales (unless done), reads the flag, steps opt when every gradient is finite (*stepped,
 * may be NULL, says whether it did) and updates the scale. */
vkg_status vkg_loss_scaler_step(vkg_loss_scaler *s, vkg_optim *opt, bool *stepped);
double vkg_loss_scaler_get_scale(const vkg_loss_scaler *s);
int64_t vkg_loss_scaler_growth_tracker(const vkg_loss_scaler *s);
bool vkg_loss_scaler_found_inf(const vkg_loss_scaler *s);   /* what the last step saw */
/* For resuming from a checkpoint: the scale and the count of finite steps since its last change. */
vkg_status vkg_loss_scaler_set_state(vkg_loss_scaler *s, double scale, int64_t growth_tracker);

/* ---- learning-rate schedules: plain functions of the step (0-based) -------------------------- */
/* torch.optim.lr_scheduler.StepLR: base_lr * gamma^floor(step / step_size). */
double vkg_lr_step_decay(double base_lr, int64_t step, int64_t step_size, double gamma);
/* Linear warm-up then cosine decay (the schedule of HF transformers'
 * get_cosine_schedule_with_warmup, with a floor):
 *   step < warmup:  base_lr * step / warmup                      (0 at step 0)
 *   after:          min_lr + (base_lr - min_lr) * 0.5 (1 + cos(pi * progress)),
 *                   progress = (step - warmup) / (total - warmup), clamped to [0, 1]. */
double vkg_lr_cosine(double base_lr, int64_t step, int64_t warmup, int64_t total, double min_lr);

#endif
