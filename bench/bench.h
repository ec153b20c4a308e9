/* vkgrad-bench's library: the case table (cases.c), the measuring loop (measure.c), the report
 * as a terminal table and versioned JSON (report.c, bench/SCHEMA.md) and compare (compare.c).
 * vkgrad_bench.c is only the command line, so tests link the rest.
 *
 *   vkgb_settings s = vkgb_defaults("quick");
 *   vkgb_run *r = vkgb_run_suite(&s);       // vkg_init done by the caller
 *   vkgb_print_table(r, stdout);
 *   cJSON *json = vkgb_report_json(r);
 */
#ifndef VKGRAD_BENCH_H
#define VKGRAD_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define VKGB_SCHEMA "vkgrad-bench/1"
#define VKGB_SCHEMA_VERSION 1

enum { VKGB_QUICK = 1, VKGB_MICRO = 2, VKGB_MODELS = 4 };

typedef struct vkgb_settings {
    const char *suite;       /* "quick", "micro" or "models"                                    */
    unsigned suite_bit;
    const char *filter;      /* substring of the case name; NULL: all                            */
    double min_time;         /* seconds of timed repetitions per case (at least min_reps)        */
    int min_reps, max_reps;
    int warmup;              /* untimed repetitions after the check                              */
    double rep_target;       /* one repetition lasts at least this (s): small ops repeat inside  */
    double peak_target;      /* one FMA submit lasts at least this (s), vkpeak-style            */
    double peak_cap;         /* give up doubling after this (s)                                  */
    bool progress;           /* "[i/n] case ... time left" lines on stderr                       */
} vkgb_settings;

vkgb_settings vkgb_defaults(const char *suite);   /* NULL if the suite is unknown: check suite_bit */

typedef enum vkgb_kind {
    VKGB_FMA32, VKGB_FMA16, VKGB_COPYBW, VKGB_DISPATCH, VKGB_ROUNDTRIP,
    VKGB_MATMUL, VKGB_UNARY, VKGB_BINARY, VKGB_REDUCE, VKGB_COPY, VKGB_RANDN,
    VKGB_CONV2D, VKGB_SOFTMAX, VKGB_LAYER_NORM, VKGB_ATTENTION, VKGB_CROSS_ENTROPY, VKGB_ADAM,
    VKGB_MODEL_TRAIN,        /* one training step of a reference model (models/models.h)          */
    VKGB_MODEL_INFER,        /* one forward pass of it, no gradients                              */
    VKGB_HOST,               /* host overhead: eager chain vs raw Vulkan, graph replay (host.c)   */
    VKGB_MISSING,            /* an op or model the library does not have yet                     */
} vkgb_kind;

/* One row of the case table. Adding a case is one row (and, for a new kind, a runner). */
typedef struct vkgb_case {
    const char *name;        /* unique, stable across versions: compare matches on it            */
    const char *group;       /* peak, launch, matmul, elementwise, reduce, memory, random, nn, model */
    unsigned suites;         /* VKGB_QUICK | VKGB_MICRO | VKGB_MODELS                             */
    vkgb_kind kind;
    int op;                  /* vkg_op for elementwise and reductions                             */
    int64_t p[7];            /* sizes; meaning per kind (cases.c)                                  */
    int max_reps;            /* 0: the settings' cap; large cases cap their repetitions            */
    const char *missing;     /* VKGB_MISSING: what it waits for                                    */
} vkgb_case;

extern const vkgb_case vkgb_cases[];
extern const int vkgb_ncases;

typedef enum vkgb_status { VKGB_OK = 0, VKGB_FAIL, VKGB_SKIPPED, VKGB_UNAVAILABLE } vkgb_status;
const char *vkgb_status_name(vkgb_status s);

typedef struct vkgb_stats {
    int n;
    double median, min, p90, max, spread_pct;  /* spread: (p90 - min) / median, in percent      */
} vkgb_stats;

typedef struct vkgb_result {
    const vkgb_case *c;
    vkgb_status status;
    char reason[256];        /* why it failed / was skipped / is unavailable                       */
    char variant[512];       /* the kernels dispatched: shader[constants]/wg                       */
    char shape[128];         /* the case's settings as text: compare refuses if they differ        */
    double flops, bytes;     /* per operation                                                       */
    int reps, inner;         /* timed repetitions; operations per repetition                        */
    bool gpu_timer;          /* gpu holds timestamp times (else wall clock)                         */
    vkgb_stats gpu_ms, wall_ms;   /* per operation                                                  */
    double max_err;          /* largest |got - want| / (atol + rtol |want|) seen by the check (<= 1) */
    const char *unit;        /* of value: "GFLOP/s", "GB/s", "us/dispatch", "us/submit"            */
    double value;            /* the headline figure, from the median time                           */
    double gflops, gbps;     /* 0 where the case has no such count                                  */
    double pct_roofline;     /* percent of min(peak, intensity x bandwidth); < 0: unknown            */
    const char *bound;       /* "compute" or "memory" (by the measured ridge point), or NULL         */
    double items;            /* model cases: samples or tokens per operation (0: not a model case)  */
    const char *items_unit;
    char check_note[64];         /* what the check saw, for the report's note                    */  /* "samples/s" or "tokens/s"                                           */
    double note_seconds;     /* seconds the case took in all                                        */
    char note[320];          /* e.g. "repetitions capped at 3"                                       */
} vkgb_result;

typedef struct vkgb_run {
    vkgb_settings settings;
    vkgb_result *results;
    int n;
    double peak_gflops, peak_gflops_f16, copy_gbps;   /* measured in this run; 0: not measured   */
    double seconds;
    char started[32];        /* ISO 8601 UTC                                                      */
} vkgb_run;

vkgb_run *vkgb_run_suite(const vkgb_settings *s);
void vkgb_run_free(vkgb_run *r);
/* Runs one case (the table's or any other); peaks feed the roofline of later cases. */
void vkgb_run_case(vkgb_run *run, const vkgb_case *c, vkgb_result *out);
bool vkgb_case_selected(const vkgb_case *c, const vkgb_settings *s);

/* host.c: the host-overhead cases (VKGB_HOST); they set their own value and unit. */
void vkgb_run_host(vkgb_run *run, const vkgb_case *c, vkgb_result *r);

/* Statistics of n samples (sorted in place). */
vkgb_stats vkgb_stats_of(double *x, int n);

/* report.c */
void vkgb_print_table(const vkgb_run *r, FILE *out);
cJSON *vkgb_report_json(const vkgb_run *r);
bool vkgb_write_json(const cJSON *j, const char *path);
uint64_t vkgb_fnv1a64(const void *data, size_t n);

/* compare.c: 0 on success; writes the markdown table (stdout or md_path) and, with
 * chart_prefix, PREFIX.png and PREFIX.svg through gnuplot. */
int vkgb_compare(const char *const *paths, int n, const char *md_path, const char *chart_prefix);

/* Test switch, never set in normal use: the named case's result is altered after the kernel
 * ran and before the check, so tests can see that a wrong result fails its case. */
void vkgb_test_corrupt(const char *case_name);

#endif

/* ---- internal: one op or model case's state, set up by cases.c and driven by measure.c ----- */
typedef struct vkgb_inst {
    const vkgb_case *c;
    struct vkg_tensor *in[3];    /* device inputs, kept for the whole case (models: x, y)      */
    bool in_place;               /* the operation updates in[0] and returns it (Adam)            */
    struct vkg_optim *opt;       /* Adam, model training                                         */
    struct vkg_model *model;     /* model cases                                                  */
    struct vkg_graph *graph;     /* train cases but the LSTM: the captured step (vkgb_inst_run)  */
    int runs;                    /* train cases: steps run so far                                */
    double items;                /* model cases: samples or tokens per operation                 */
    const char *items_unit;
    char check_note[64];         /* what the check saw, for the report's note                    */
    float *ref;                  /* reference output (host), or sampled rows of it               */
    int32_t *refi;               /* argmax reference                                              */
    size_t nout;                 /* elements of the output                                       */
    int64_t rows[8];             /* matmul checked on these rows only when nrows > 0             */
    int nrows;
    int64_t row_len;
    double rtol, atol;
    double flops, bytes;         /* per operation                                                  */
    char shape[128];
} vkgb_inst;

bool vkgb_inst_setup(vkgb_inst *s, const vkgb_case *c, char *why, size_t whysize);
struct vkg_tensor *vkgb_inst_record(vkgb_inst *s);          /* op cases: one operation; NULL on error */
/* One operation as it is timed (an op with its output freed at once, a model step in its own
 * scope); false on error. */
bool vkgb_inst_run(vkgb_inst *s);
/* Runs the case once and checks it (op cases: the output against the reference; model cases:
 * the loss, see bench/README.md); false (and why) when it differs or fails. corrupt: the test
 * switch, alters the result before the check. */
bool vkgb_inst_verify(vkgb_inst *s, bool corrupt, double *max_err, char *why, size_t whysize);
/* Compares a read-back output with the reference; false (and why) when it differs. */
bool vkgb_inst_check(const vkgb_inst *s, const void *got, double *max_err, char *why, size_t whysize);
void vkgb_inst_free(vkgb_inst *s);
