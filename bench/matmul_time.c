/* vkgrad-matmul-time: times vkg_matmul per kernel variant on square and MLP shapes, and prints
 * GFLOP/s with the variant that really ran (vkg_matmul_variant_last). A tool for the matmul
 * kernels (bench/MATMUL.md), not the benchmark harness: wall clock of record + submit + wait,
 * one matmul per submit, best of several runs after a warm-up.
 *   vkgrad-matmul-time [--variants auto,reg_sg,reg,general,tiled] [--ms 300] [[BATCH/]MxKxN[:LL] ...]
 * auto: no variant forced, the device's own choice (the rule, or the tuned one: VKG_TUNE). A
 * variant name followed by @TMxTNxWXxWY runs it with that tile shape (VKG_MATMUL_CONFIG).
 * BATCH/ makes a batched product of BATCH matrices; :LL gives the operands' layouts, n (stored
 * as they are used) or t (a transposed view of a matrix stored the other way round), as the
 * backward of a linear layer reads them: :tn is dW = X^T dY, :nt is dX = dY W^T. */
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
    printf("%-22s %-16s %-8s %10s %10s %14s\n", "M x K x N", "asked", "ran", "ms", "GFLOP/s", "GFLOP/cpu-s");
    for (int s = 0; s < nshapes; s++) {
        long long Bt = 1, M, K, N;
        char la = 'n', lb = 'n';
        const char *mkn = strchr(shapes[s], '/') ? strchr(shapes[s], '/') + 1 : shapes[s];
        if ((mkn != shapes[s] && sscanf(shapes[s], "%lld/", &Bt) != 1) ||
            sscanf(mkn, "%lldx%lldx%lld:%c%c", &M, &K, &N, &la, &lb) < 3 || (la != 'n' && la != 't') ||
            (lb != 'n' && lb != 't') || Bt < 1) {
            fprintf(stderr, "shape %s: want [BATCH/]MxKxN[:LL], L n or t\n", shapes[s]);
            return 1;
        }
        vkg_scope_begin();
        int bd = Bt > 1; /* the batch dim, if any, comes first */
        vkg_shape as = la == 't' ? VKG_SHAPE(K, M) : VKG_SHAPE(M, K), bs = lb == 't' ? VKG_SHAPE(N, K) : VKG_SHAPE(K, N);
        if (bd) {
            as = VKG_SHAPE(Bt, as.d[0], as.d[1]);
            bs = VKG_SHAPE(Bt, bs.d[0], bs.d[1]);
        }
        vkg_tensor *a = vkg_randn(as, &(vkg_rand_desc){ .seed = 1, .std = 1.0f });
        vkg_tensor *b = vkg_randn(bs, &(vkg_rand_desc){ .seed = 2, .std = 1.0f });
        if (la == 't') a = vkg_transpose(a, bd, bd + 1);
        if (lb == 't') b = vkg_transpose(b, bd, bd + 1);
        char list[256];
        snprintf(list, sizeof list, "%s", variants);
        for (char *v = strtok(list, ","); v; v = strtok(NULL, ",")) {
            char name[64];
            snprintf(name, sizeof name, "%s", v);
            char *at = strchr(name, '@');
            if (at) {
                *at = '\0';
                for (char *p = at + 1; *p; p++)
                    if (*p == 'x') *p = ',';
                setenv("VKG_MATMUL_CONFIG", at + 1, 1);
            } else {
                unsetenv("VKG_MATMUL_CONFIG");
            }
            if (strcmp(name, "auto") == 0) unsetenv("VKG_MATMUL_VARIANT"); /* the device's choice (VKG_TUNE) */
            else setenv("VKG_MATMUL_VARIANT", name, 1);
            const char *used = "?";
            double cpu = NAN, t = time_matmul(a, b, ms, &used, &cpu);
            if (isnan(t)) {
                fprintf(stderr, "%s %s: %s\n", shapes[s], v, vkg_last_error());
                return 1;
            }
            double flop = 2.0 * (double)Bt * (double)M * (double)N * (double)K;
            printf("%-22s %-16s %-8s %10.3f %10.2f %14.2f\n", shapes[s], v, used, t * 1e3, flop / t * 1e-9,
                   flop / cpu * 1e-9);
            fflush(stdout);
        }
        vkg_scope_end();
    }
    vkg_shutdown();
    return 0;
}
