/* vkgrad-linear-time: a linear layer with bias and ReLU, fused (vkg_linear_forward_relu: the
 * bias and the ReLU in the matmul kernel's epilogue) against the unfused ops (vkg_matmul, vkg_add,
 * vkg_relu), forward alone (no grad) and forward + backward (dL/dy given, the layer's own
 * backward only). A tool for the matmul epilogue (bench/MATMUL.md), not the benchmark harness:
 * wall clock of record + submit + wait, one step per submit, and the process CPU time. The two
 * are timed in alternation, A then B, round after round, so that a machine shared with other
 * work loads both alike; each round prints its pair and the ratio unfused / fused.
 *   vkgrad-linear-time [--rounds 7] [--ms 300] [BxINxOUT]        (default 128x784x512) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkgrad.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct layer {
    vkg_linear *l;
    vkg_tensor *x, *gy;  /* (B, in), (B, out) */
} layer;

/* One step: the forward, and with backward its backward from gy; synced. */
static bool step(const layer *s, bool fused, bool backward) {
    vkg_scope_begin();
    if (!backward) vkg_no_grad_begin();
    vkg_tensor *y = fused ? vkg_linear_forward_relu(s->l, s->x)
                          : vkg_relu(vkg_add(vkg_matmul(s->x, vkg_transpose(s->l->weight, 0, 1)), s->l->bias));
    bool ok = y != NULL;
    if (ok && backward) {
        vkg_zero_grad(s->l->weight);
        vkg_zero_grad(s->l->bias);
        ok = vkg_backward_desc_run(y, &(vkg_backward_desc){ .grad_output = s->gy }) == VKG_OK;
    }
    if (!backward) vkg_no_grad_end();
    ok = ok && vkg_sync() == VKG_OK;
    vkg_scope_end();
    return ok;
}

/* Seconds per step over a run of at least ms milliseconds; *cpu the CPU seconds per step. */
static double time_steps(const layer *s, bool fused, bool backward, double ms, double *cpu) {
    int n = 0;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t;
    do {
        if (!step(s, fused, backward)) return NAN;
        n++;
        t = clock_s(CLOCK_MONOTONIC) - t0;
    } while (t < ms * 1e-3);
    *cpu = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) / n;
    return t / n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rounds = 7;
    double ms = 300;
    long long B = 128, IN = 784, OUT = 512;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) ms = atof(argv[++i]);
        else if (sscanf(argv[i], "%lldx%lldx%lld", &B, &IN, &OUT) != 3) {
            fprintf(stderr, "usage: vkgrad-linear-time [--rounds R] [--ms MS] [BxINxOUT]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 100) rounds = 7;
    if (vkg_init(NULL) != VKG_OK) {
        fprintf(stderr, "vkg_init: %s\n", vkg_last_error());
        return 1;
    }
    char line[512];
    vkg_device_line(vkg_device(), line, sizeof line);
    printf("device: %s\nlinear %lld x %lld -> %lld, bias + relu; ms per step (wall, CPU), the mean over a run of "
           ">= %.0f ms\n", line, B, IN, OUT, ms);
    vkg_module *m = vkg_module_new(&(vkg_module_desc){ .seed = 1 });
    layer s = { .l = vkg_linear_new(m, "fc", &(vkg_linear_desc){ .in = IN, .out = OUT }) };
    s.x = vkg_randn(VKG_SHAPE(B, IN), &(vkg_rand_desc){ .seed = 2, .std = 1.0f });
    s.gy = vkg_randn(VKG_SHAPE(B, OUT), &(vkg_rand_desc){ .seed = 3, .std = 1.0f });
    if (!s.l || !s.x || !s.gy) {
        fprintf(stderr, "setup: %s\n", vkg_last_error());
        return 1;
    }
    int status = 0;
    for (int backward = 0; backward < 2 && status == 0; backward++) {
        const char *what = backward ? "forward+backward" : "forward";
        for (int w = 0; w < 2; w++) /* warm-up: pipelines */
            if (!step(&s, w, backward)) {
                fprintf(stderr, "%s: %s\n", what, vkg_last_error());
                return 1;
            }
        printf("\n%-17s %5s %16s %16s %14s %14s\n", what, "round", "fused ms (cpu)", "unfused ms (cpu)", "ratio wall",
               "ratio cpu");
        double *rw = malloc((size_t)rounds * sizeof *rw), *rc = malloc((size_t)rounds * sizeof *rc);
        for (int r = 0; r < rounds; r++) {
            double cf, cu, tf, tu;
            if (r % 2 == 0) { /* alternate which goes first, too */
                tf = time_steps(&s, true, backward, ms, &cf);
                tu = time_steps(&s, false, backward, ms, &cu);
            } else {
                tu = time_steps(&s, false, backward, ms, &cu);
                tf = time_steps(&s, true, backward, ms, &cf);
            }
            if (isnan(tf) || isnan(tu)) {
                fprintf(stderr, "%s: %s\n", what, vkg_last_error());
                status = 1;
                break;
            }
            rw[r] = tu / tf;
            rc[r] = cu / cf;
            printf("%-17s %5d %8.3f (%5.3f) %8.3f (%5.3f) %14.3f %14.3f\n", what, r, tf * 1e3, cf * 1e3, tu * 1e3,
                   cu * 1e3, rw[r], rc[r]);
            fflush(stdout);
        }
        if (status == 0) {
            qsort(rw, (size_t)rounds, sizeof *rw, cmp_double);
            qsort(rc, (size_t)rounds, sizeof *rc, cmp_double);
            printf("%-17s median unfused/fused: wall %.3f, cpu %.3f (min %.3f, max %.3f wall)\n", what,
                   rw[rounds / 2], rc[rounds / 2], rw[0], rw[rounds - 1]);
        }
        free(rw);
        free(rc);
    }
    printf("kernel: %s\n", vkg_matmul_variant_last());
    vkg_module_free(m);
    vkg_shutdown();
    return status;
}
