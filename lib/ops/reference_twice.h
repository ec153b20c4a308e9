/* Compiles a C reference implementation twice: with REAL = float under the names vkg_ref_<x>
 * (what the tests compare the shaders with) and with REAL = double under vkg_ref_<x>_f64 (for
 * finite-difference gradient checks). Define VKG_REF_IMPL as the implementation's path, e.g.
 *   #define VKG_REF_IMPL "ops/reference_impl.h"
 *   #include "ops/reference_twice.h"
 * No include guard: each reference file includes it once for its own implementation. */
#define REAL float
#define NAME(x) vkg_ref_##x
#include VKG_REF_IMPL
#undef REAL
#undef NAME

#define REAL double
#define NAME(x) vkg_ref_##x##_f64
#include VKG_REF_IMPL
#undef REAL
#undef NAME
#undef VKG_REF_IMPL
