/* Tutorial 03: your first compute shader. saxpy.comp and block_sum.comp are compiled to SPIR-V
 * when the tutorial is built and embedded here as arrays; vkg_custom_dispatch runs them on
 * vkgrad tensors, in the same stream as vkgrad's own ops. README.md walks through it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vkgrad.h"
#include "saxpy.spv.h"     /* const uint32_t saxpy[]: built from saxpy.comp by glslangValidator */
#include "block_sum.spv.h" /* const uint32_t block_sum[]                                       */

/* Mirrors the Push block of saxpy.comp: change both together. */
typedef struct saxpy_push {
    uint32_t n;
    float a;
} saxpy_push;

int main(int argc, char **argv) {
    uint32_t n = (argc > 1 && strcmp(argv[1], "--test") == 0) ? 1000 : 1000000;
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_scope_begin();

    /* x = 0, 1, 2, ...; y = 1, 1, 1, ... */
    vkg_tensor *x = vkg_arange(0.0f, (float)n, 1.0f);
    vkg_tensor *y = vkg_ones(VKG_SHAPE(n));

    /* One invocation per element, 64 per workgroup: enough workgroups to cover n. */
    uint32_t local = 64, groups = (n + local - 1) / local;
    saxpy_push pc = { .n = n, .a = 2.0f };
    vkg_status st = vkg_custom_dispatch(&(vkg_custom_desc){
        .name = "saxpy", .spirv = saxpy, .spirv_size = sizeof saxpy,
        .bind = { y, x }, .nout = 1,           /* binding 0 = y (written), binding 1 = x */
        .push = &pc, .push_size = sizeof pc,
        .local_size = local, .groups = { groups } });
    if (st != VKG_OK) {
        printf("saxpy failed: %s\n", vkg_last_error());
        return 1;
    }
    printf("dispatched %u workgroups of %u invocations for %u elements\n", groups, local, n);

    /* Nothing has run yet: reading y submits the work and waits for it. */
    float first[4];
    vkg_tensor_read(vkg_narrow(y, 0, 0, 4), first, sizeof first);
    printf("y[0..3] = %g %g %g %g\n", first[0], first[1], first[2], first[3]);

    /* A vkgrad op can consume the custom op's result: the stream orders them. */
    double want = 2.0 * ((double)n - 1) * n / 2 + n;
    float total = vkg_item(vkg_sum_all(y));
    printf("sum of y = %.6g (expected %.6g)\n", total, want);

    /* The second shader: a sum per block of 64 elements, using shared memory and barriers. */
    uint32_t blocks = (n + 63) / 64;
    vkg_tensor *sums = vkg_empty(VKG_SHAPE(blocks));
    vkg_custom_dispatch(&(vkg_custom_desc){ .name = "block_sum", .spirv = block_sum, .spirv_size = sizeof block_sum,
                                            .bind = { sums, x }, .nout = 1, .push = &n, .push_size = sizeof n,
                                            .groups = { blocks } });
    float s0;
    vkg_tensor_read(vkg_narrow(sums, 0, 0, 1), &s0, sizeof s0);
    printf("block 0 sums x[0..63] = %g\n", s0);
    vkg_scope_end();
    vkg_shutdown();
    return fabs(total - want) <= 1e-3 * want ? 0 : 1;
}
