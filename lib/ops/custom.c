/* vkg_custom_dispatch: a user's SPIR-V through the same stream, hazard tracking and pipeline
 * cache as the built-in ops; only the checks a user's call needs are added here. */
#include "ops/ops.h"

vkg_status vkg_custom_dispatch(const vkg_custom_desc *d) {
    if (!d) return vkg_fail(VKG_ERR_INVALID, "vkg_custom_dispatch: desc is NULL");
    const char *name = d->name ? d->name : "custom";
    if (!d->spirv) return vkg_fail(VKG_ERR_INVALID, "vkg_custom_dispatch %s: spirv is NULL", name);
    if (d->push_size > VKG_PUSH_SIZE || (d->push_size && !d->push))
        return vkg_fail(VKG_ERR_INVALID, "vkg_custom_dispatch %s: %u bytes of push constants (at most %d)", name,
                        d->push_size, VKG_PUSH_SIZE);
    const int max_spec = (int)(sizeof d->spec / sizeof *d->spec);
    if (d->nspec < 0 || d->nspec > max_spec)
        return vkg_fail(VKG_ERR_INVALID, "vkg_custom_dispatch %s: %d specialization constants (at most %d)", name,
                        d->nspec, max_spec);
    int nbind = 0;
    while (nbind < 8 && d->bind[nbind]) nbind++;
    if (d->nout < 0 || d->nout > nbind)
        return vkg_fail(VKG_ERR_INVALID, "vkg_custom_dispatch %s: nout %d but %d bindings", name, d->nout, nbind);
    const vkg_device_info *dev = vkg_device();
    for (int i = 0; i < 3 && dev; i++)
        if (d->groups[i] > dev->max_workgroup_count[i])
            return vkg_fail(VKG_ERR_INVALID, "vkg_custom_dispatch %s: %u workgroups in dim %d (the device allows %u)", name,
                            d->groups[i], i, dev->max_workgroup_count[i]);
    vkg_dispatch_desc dd = { .shader = name, .name = name, .op = VKG_OP_COUNT, .code = d->spirv,
                             .code_size = d->spirv_size, .nspec = d->nspec, .local_size = d->local_size ? d->local_size : 64,
                             .groups = { d->groups[0], d->groups[1], d->groups[2] }, .nout = d->nout, .push = d->push,
                             .push_size = d->push_size };
    for (int i = 0; i < d->nspec; i++) dd.spec[i] = d->spec[i];
    for (int i = 0; i < nbind; i++) dd.bind[i] = d->bind[i];
    return vkg_dispatch(&dd);
}
