/* Tutorial 12: profiling and tuning. One MLP training step under the per-op profiler, then the
 * same matrix multiply through every kernel variant vkgrad has, each checked and timed, and the
 * variant vkgrad picks for this device. README.md walks through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkgrad.h"
#include "vkgrad/nn.h"
#include "vkgrad/optim.h"
#include "vkgrad/reference.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    bool test_mode = argc > 1 && strcmp(argv[1], "--test") == 0;
    int n = test_mode ? 128 : 512;
    /* VKG_PROFILE is read at vkg_init: every dispatch gets GPU timestamps, and the per-op table
     * is printed (to standard error) at vkg_shutdown. */
    setenv("VKG_PROFILE", "1", 0);
    if (vkg_init(NULL) != VKG_OK) return 1;

    /* 1. A training step of a small MLP, for the profiler to see. */
    vkg_module *params = vkg_module_new(&(vkg_module_desc){ .seed = 1 });
    vkg_linear *fc1 = vkg_linear_new(params, "fc1", &(vkg_linear_desc){ .in = 784, .out = 256 });
    vkg_linear *fc2 = vkg_linear_new(params, "fc2", &(vkg_linear_desc){ .in = 256, .out = 10 });
    vkg_optim *opt = vkg_optim_new(&(vkg_optim_desc){ .kind = VKG_OPTIM_ADAM });
    vkg_optim_add_module(opt, params);
    for (int step = 0; step < 3; step++) {
        vkg_scope_begin();
        vkg_tensor *x = vkg_rand(VKG_SHAPE(128, 784), &(vkg_rand_desc){ .seed = 2, .offset = (uint64_t)step << 20 });
        vkg_tensor *y = vkg_randint(VKG_SHAPE(128), 0, 10, &(vkg_rand_desc){ .seed = 3, .offset = (uint64_t)step << 8 });
        vkg_optim_zero_grad(opt);
        vkg_backward(vkg_cross_entropy(vkg_linear_forward(fc2, vkg_relu(vkg_linear_forward(fc1, x))), y, NULL));
        vkg_optim_step(opt);
        vkg_sync();
        vkg_scope_end();
    }
    printf("3 training steps done (the profiler's table follows vkg_shutdown)\n");

    /* 2. One matmul through each variant: same answer, different speed. */
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n), *ref = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)((i * 7) % 13) / 13.0f;
        b[i] = (float)((i * 3) % 17) / 17.0f;
    }
    vkg_ref_matmul(ref, a, VKG_SHAPE(n, n), b, VKG_SHAPE(n, n));
    vkg_scope_begin();
    vkg_tensor *ta = vkg_from_data(VKG_SHAPE(n, n), a), *tb = vkg_from_data(VKG_SHAPE(n, n), b);
    const char *variants[] = { "general", "reg", "reg_sg", "reg_sg_tex", "tiled" };
    bool all_right = true;
    for (int v = 0; v < 5; v++) {
        setenv("VKG_MATMUL_VARIANT", variants[v], 1); /* force one kernel */
        vkg_tensor_read(vkg_matmul(ta, tb), c, sizeof(float) * n * n); /* warm: the pipeline is made */
        double t0 = now();
        vkg_tensor *r = vkg_matmul(ta, tb);
        vkg_sync();
        double dt = now() - t0;
        vkg_tensor_read(r, c, sizeof(float) * n * n);
        float worst = 0;
        for (int i = 0; i < n * n; i++) worst = fmaxf(worst, fabsf(c[i] - ref[i]) / (1 + fabsf(ref[i])));
        all_right &= worst < 1e-4f;
        printf("  %-10s ran %-10s %8.2f GFLOP/s\n", variants[v], vkg_matmul_variant_last(),
               2.0 * n * n * n / dt * 1e-9);
    }
    unsetenv("VKG_MATMUL_VARIANT");
    printf("every variant agrees with the C reference: %s\n", all_right ? "yes" : "no");
    vkg_matmul(ta, tb);
    printf("for this device vkgrad picks: %s\n", vkg_matmul_variant_last());
    vkg_scope_end();

    free(a);
    free(b);
    free(c);
    free(ref);
    vkg_optim_free(opt);
    vkg_module_free(params);
    vkg_shutdown();
    return 0;
}
