/* Your own compute shader as a vkgrad op: the SPIR-V (compiled at build time, e.g. with
 * glslangValidator --vn my_shader), tensors bound in order, push constants, a grid. It runs in
 * vkgrad's command stream like any op: batched, with barriers where it touches what earlier
 * ops wrote. Records no gradient.
 *
 *   // scale.comp: layout(local_size_x_id = 0) in; binding 0 = y (written), binding 1 = x,
 *   //             layout(push_constant) uniform P { uint n; float a; } p;
 *   struct { uint32_t n; float a; } pc = { 1000, 2.0f };
 *   vkg_custom_dispatch(&(vkg_custom_desc){ .name = "scale", .spirv = my_shader, .spirv_size = sizeof my_shader,
 *                                           .bind = { y, x }, .nout = 1, .push = &pc, .push_size = sizeof pc,
 *                                           .local_size = 64, .groups = { (1000 + 63) / 64 } });
 */
#ifndef VKGRAD_CUSTOM_H
#define VKGRAD_CUSTOM_H

#ifndef VKGRAD_H
#include "../vkgrad.h"
#endif

typedef struct vkg_custom_desc {
    const char *name;             /* for messages, VKG_EXPLAIN and VKG_PROFILE                  */
    const uint32_t *spirv;        /* kept by vkgrad by address: it must outlive vkg_shutdown    */
    size_t spirv_size;            /* bytes                                                      */
    vkg_tensor *bind[8];          /* binding i of descriptor set 0 = bind[i]; ends at a NULL   */
    int nout;                     /* the first nout bindings are written, the rest only read    */
    const void *push;             /* up to 128 bytes of push constants                         */
    uint32_t push_size;
    uint32_t local_size;          /* specialization constant 0 (local_size_x_id = 0); 0 = 64   */
    uint32_t spec[7];             /* specialization constants 1..7                              */
    int nspec;
    uint32_t groups[3];           /* workgroups in x, y, z; 0 in y or z means 1                 */
} vkg_custom_desc;

vkg_status vkg_custom_dispatch(const vkg_custom_desc *desc);

#endif
