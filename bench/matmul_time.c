/* vkgrad-matmul-time: times vkg_matmul per kernel variant on square and MLP shapes, and prints
 * GFLOP/s with the variant that really ran (vkg_matmul_variant_last). A tool for the matmul
 * kernels (bench/MATMUL.md), not the benchmark harness: wall clock of record + submit + wait,
 * one matmul per submit, best of several runs after a warm-up.
 *   vkgrad-matmul-time [--variants auto,reg_sg,reg,general,tiled] [--ms 300] [MxKxN ...]
 * auto: no variant forced, the device's own choice (the rule, or the tuned one: VKG_TUNE). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkgrad.h"
#include "vkgrad/ops.h"
#include "vkgrad/random.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best seconds per matmul over runs of at least ms milliseconds each (3 runs); NAN on error.
 * *cpu: the process CPU seconds per matmul of the same best run (all lavapipe threads and the
 * host thread together): on a machine shared with other work, wall time grows with the load
 * but CPU time much less, so GFLOP per CPU-second is the steadier per-thread figure. */
static double time_matmul(vkg_tensor *a, vkg_tensor *b, double ms, const char **used, double *cpu) {
    vkg_free(vkg_matmul(a, b)); /* warm-up: pipeline creation */
    if (vkg_sync() != VKG_OK) return NAN;
    *used = vkg_matmul_variant_last();
    double best = INFINITY;
    for (int run = 0; run < 3; run++) {
        int n = 0;
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t;
        do {
            vkg_tensor *c = vkg_matmul(a, b);
            if (!c || vkg_sync() != VKG_OK) return NAN;
            vkg_free(c);
            n++;
            t = clock_s(CLOCK_MONOTONIC) - t0;
        } while (t < ms * 1e-3);
        if (t / n < best) {
            best = t / n;
            *cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / n;
        }
    }
    return best;
}

int main(int argc, char **argv) {
    const char *variants = "reg_sg,reg,general";
    double ms = 300;
    const char *defaults[] = { "256x256x256", "512x512x512", "1024x1024x1024", "128x784x512", "128x512x256" };
    const char *shapes[32];
    int nshapes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--variants") == 0 && i + 1 < argc) variants = argv[++i];
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) ms = atof(argv[++i]);
        else if (nshapes < 32) shapes[nshapes++] = argv[i];
    }
    if (nshapes == 0)
        for (int i = 0; i < 5; i++) shapes[nshapes++] = defaults[i];
    if (vkg_init(NULL) != VKG_OK) {
        fprintf(stderr, "vkg_init: %s\n", vkg_last_error());
        return 1;
    }
    char line[512];
    vkg_device_line(vkg_device(), line, sizeof line);
    const char *thr = getenv("LP_NUM_THREADS");
    printf("device: %s\nLP_NUM_THREADS=%s\n", line, thr ? thr : "(unset)");
    printf("%-16s %-8s %-8s %10s %10s %14s\n", "M x K x N", "asked", "ran", "ms", "GFLOP/s", "GFLOP/cpu-s");
    for (int s = 0; s < nshapes; s++) {
        long long M, K, N;
        if (sscanf(shapes[s], "%lldx%lldx%lld", &M, &K, &N) != 3) {
            fprintf(stderr, "shape %s: want MxKxN\n", shapes[s]);
            return 1;
        }
        vkg_scope_begin();
        vkg_tensor *a = vkg_randn(VKG_SHAPE(M, K), &(vkg_rand_desc){ .seed = 1, .std = 1.0f });
        vkg_tensor *b = vkg_randn(VKG_SHAPE(K, N), &(vkg_rand_desc){ .seed = 2, .std = 1.0f });
        char list[256];
        snprintf(list, sizeof list, "%s", variants);
        for (char *v = strtok(list, ","); v; v = strtok(NULL, ",")) {
            if (strcmp(v, "auto") == 0) unsetenv("VKG_MATMUL_VARIANT"); /* the device's choice (VKG_TUNE) */
            else setenv("VKG_MATMUL_VARIANT", v, 1);
            const char *used = "?";
            double cpu = NAN, t = time_matmul(a, b, ms, &used, &cpu);
            if (isnan(t)) {
                fprintf(stderr, "%s %s: %s\n", shapes[s], v, vkg_last_error());
                return 1;
            }
            double flop = 2.0 * (double)M * (double)N * (double)K;
            printf("%-16s %-8s %-8s %10.3f %10.2f %14.2f\n", shapes[s], v, used, t * 1e3, flop / t * 1e-9,
                   flop / cpu * 1e-9);
            fflush(stdout);
        }
        vkg_scope_end();
    }
    vkg_shutdown();
    return 0;
}
