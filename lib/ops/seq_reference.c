/* The seq group's C reference (vkgrad/seq_ops.h), forward and backward: the definition the
 * shaders and backward rules are tested against. The code is in seq_reference_impl.h, compiled
 * once in float (vkg_ref_*) and once in double (vkg_ref_*_f64, for gradient checks). */
#include <stdbool.h>
#include <stdlib.h>
#include <tgmath.h>

#include "vkgrad.h"

#define VKG_REF_IMPL "ops/seq_reference_impl.h"
#include "ops/reference_twice.h"
