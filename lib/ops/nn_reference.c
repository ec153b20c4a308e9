/* The nn group's C reference, forward and backward (vkgrad/nn_ops.h): the definition the
 * shaders and the autograd rules are tested against. The code is in nn_reference_impl.h,
 * compiled once in float (vkg_ref_*) and once in double (vkg_ref_*_f64, for finite-difference
 * gradient checks). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"

#include <tgmath.h> /* after the headers: its <complex.h> defines I, a parameter name there */

#define VKG_REF_IMPL "ops/nn_reference_impl.h"
#include "ops/reference_twice.h"
