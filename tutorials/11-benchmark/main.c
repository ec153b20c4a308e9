/* Tutorial 11: benchmark your GPU. How vkgrad-bench measures, in miniature: check the result
 * first, warm up, repeat, keep the median; count the work to turn time into GFLOP/s and GB/s;
 * place the kernel on the roofline of the device's peak compute and bandwidth. README.md walks
 * through it, and through vkgrad-bench itself. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = (argc > 1 && strcmp(argv[1], "--test") == 0) ? 128 : 512, reps = 9;
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_scope_begin();
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *got = malloc(sizeof(float) * n * n), *want = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
        b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
    }
    vkg_tensor *ta = vkg_from_data(VKG_SHAPE(n, n), a), *tb = vkg_from_data(VKG_SHAPE(n, n), b);

    /* 1. Check before timing: a fast wrong kernel is worth nothing. */
    vkg_tensor_read(vkg_matmul(ta, tb), got, sizeof(float) * n * n);
    vkg_ref_matmul(want, a, VKG_SHAPE(n, n), b, VKG_SHAPE(n, n));
    float worst = 0;
    for (int i = 0; i < n * n; i++) worst = fmaxf(worst, fabsf(got[i] - want[i]));
    printf("matmul %dx%dx%d checked against the C reference: %s\n", n, n, n, worst < 1e-3f ? "ok" : "WRONG");
    printf("kernel variant: %s\n", vkg_matmul_variant_last());

    /* 2. Count the work: 2 n^3 flops (a multiply and an add), and the bytes that must move at
     *    least once: read A and B, write C. */
    double flops = 2.0 * n * n * n, bytes = 3.0 * n * n * sizeof(float);
    printf("work: %.0f flop, %.0f bytes, %.1f flop per byte\n", flops, bytes, flops / bytes);

    /* 3. Warm up, then time each repetition to completion and keep the median. */
    vkg_scope_begin();
    vkg_matmul(ta, tb);
    vkg_sync();
    vkg_scope_end();
    double t[16];
    for (int r = 0; r < reps; r++) {
        vkg_scope_begin();
        double t0 = now();
        vkg_matmul(ta, tb);
        vkg_sync(); /* submit and wait: the time includes one submit's round trip */
        t[r] = now() - t0;
        vkg_scope_end();
    }
    qsort(t, (size_t)reps, sizeof *t, by_value);
    double med = t[reps / 2];
    printf("median of %d: %.3f ms, %.2f GFLOP/s (spread %.0f%%)\n", reps, med * 1e3, flops / med * 1e-9,
           (t[reps - 1] - t[0]) / med * 100);

    free(a);
    free(b);
    free(got);
    free(want);
    vkg_scope_end();
    vkg_shutdown();
    return 0;
}
