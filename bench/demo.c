/* vkgrad-demo: the main job until the benchmark harness lands. Runs a small forward pass of an
 * MLP-shaped computation and a few ops on the default device, checks each against the C
 * reference, and prints the result, the time and the stream statistics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vkgrad.h"
#include "vkgrad/reference.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
}

static float max_rel_err(const float *got, const float *want, size_t n) {
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float e = fabsf(got[i] - want[i]) / (fabsf(want[i]) + 1e-3f);
        if (e > worst) worst = e;
    }
    return worst;
}

int main(void) {
    if (vkg_init(NULL) != VKG_OK) return 1;
    char line[1024];
    vkg_device_line(vkg_device(), line, sizeof line);
    printf("device: %s\n\n", line);
    enum { B = 128, D = 784, H = 512 };
    float *x = malloc(sizeof(float) * B * D), *w = malloc(sizeof(float) * D * H), *b = malloc(sizeof(float) * H);
    float *ref = malloc(sizeof(float) * B * H), *got = malloc(sizeof(float) * B * H);
    fill(x, (size_t)B * D, 1);
    fill(w, (size_t)D * H, 2);
    fill(b, H, 3);
    int status = 0;

    vkg_scope_begin();
    vkg_tensor *tx = vkg_from_data(VKG_SHAPE(B, D), x), *tw = vkg_from_data(VKG_SHAPE(D, H), w);
    vkg_tensor *tb = vkg_from_data(VKG_SHAPE(H), b);
    vkg_tensor *h = vkg_relu(vkg_add(vkg_matmul(tx, tw), tb)); /* (B, H): one MLP layer */
    vkg_sync();                                                  /* warm: pipelines made */
    printf("%-34s %10s %12s %10s\n", "case", "ms", "GFLOP/s", "max err");
    const int reps = 5;
    double t0 = now();
    for (int r = 0; r < reps; r++) {
        vkg_scope_begin();
        vkg_relu(vkg_add(vkg_matmul(tx, tw), tb));
        vkg_sync();
        vkg_scope_end();
    }
    double ms = (now() - t0) / reps * 1e3;
    if (!h || vkg_tensor_read(h, got, sizeof(float) * B * H) != VKG_OK) {
        fprintf(stderr, "demo: %s\n", vkg_last_error());
        return 1;
    }
    vkg_ref_matmul(ref, x, VKG_SHAPE(B, D), w, VKG_SHAPE(D, H));
    for (int i = 0; i < B * H; i++) ref[i] = fmaxf(ref[i] + b[i % H], 0.0f);
    float err = max_rel_err(got, ref, (size_t)B * H);
    printf("%-34s %10.2f %12.2f %10.2e\n", "relu(x @ w + b) 128x784 @ 784x512", ms, 2.0 * B * D * H / (ms * 1e6), err);
    status |= err > 1e-3f;

    vkg_tensor *s = vkg_sum(h, 1, false);
    vkg_tensor *am = vkg_argmax(h, 1, false);
    float sums[B];
    int32_t idx[B];
    if (vkg_tensor_read(s, sums, sizeof sums) != VKG_OK || vkg_tensor_read(am, idx, sizeof idx) != VKG_OK) return 1;
    float rsum[B];
    int32_t ridx[B];
    vkg_ref_reduce(VKG_OP_SUM, rsum, NULL, ref, VKG_SHAPE(B, H), 1);
    vkg_ref_reduce(VKG_OP_ARGMAX, NULL, ridx, ref, VKG_SHAPE(B, H), 1);
    int argmax_same = 0;
    for (int i = 0; i < B; i++) argmax_same += idx[i] == ridx[i];
    float serr = max_rel_err(sums, rsum, B);
    printf("%-34s %10s %12s %10.2e\n", "row sums (128, 512) -> (128,)", "-", "-", serr);
    printf("%-34s %10s %12s %7d/%d\n", "row argmax agrees with reference", "-", "-", argmax_same, B);
    status |= serr > 1e-3f;
    vkg_scope_end();

    printf("\n");
    vkg_stats_print(stdout);
    vkg_shutdown();
    free(x);
    free(w);
    free(b);
    free(ref);
    free(got);
    printf("%s\n", status ? "demo: FAILED (results differ from the C reference)" : "demo: ok");
    return status;
}
