/* The C reference of every op in the table, forward and backward: the definition the shaders
 * and the autograd rules are tested against. The code is in reference_impl.h, compiled once in
 * float (vkg_ref_*) and once in double (vkg_ref_*_f64, for finite-difference gradient checks). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"
/* last: <tgmath.h> brings <complex.h>, whose macro I would rewrite any header's parameter I */
#include <tgmath.h>

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

#define VKG_REF_IMPL "ops/reference_impl.h"
#include "ops/reference_twice.h"
