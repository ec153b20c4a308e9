/* vkgrad-bench: the benchmark harness's command line (bench/README.md, bench/SCHEMA.md).
 *   vkgrad-bench run [--suite quick|micro|models] [--out FILE.json] [--filter SUBSTR] [--min-time S] [--list]
 *   vkgrad-bench compare A.json B.json ... [--out-md FILE] [--chart PREFIX] */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "vkgrad.h"

static int usage(FILE *f) {
    fprintf(f, "usage: vkgrad-bench run [--suite quick|micro|models] [--out FILE.json] [--filter SUBSTR]\n"
               "                        [--min-time S] [--list] [--quiet]\n"
               "       vkgrad-bench compare A.json B.json ... [--out-md FILE] [--chart PREFIX]\n"
               "  run: checks every case against the C reference, then times it; prints a table and writes\n"
               "       the JSON report (bench/SCHEMA.md). VKG_DEVICE picks the device.\n"
               "  compare: a markdown table of the reports side by side (ratios to the first) and, with\n"
               "       --chart, PREFIX.png and PREFIX.svg through gnuplot.\n");
    return f == stdout ? 0 : 2;
}

static int cmd_run(int argc, char **argv) {
    const char *suite = "quick", *out = NULL, *filter = NULL;
    double min_time = -1;
    bool list = false, quiet = false;
    for (int i = 0; i < argc; i++) {
        bool v = i + 1 < argc;
        if (!strcmp(argv[i], "--suite") && v) suite = argv[++i];
        else if (!strcmp(argv[i], "--out") && v) out = argv[++i];
        else if (!strcmp(argv[i], "--filter") && v) filter = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && v) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--list")) list = true;
        else if (!strcmp(argv[i], "--quiet")) quiet = true;
        else return usage(stderr);
    }
    vkgb_settings s = vkgb_defaults(suite);
    if (!s.suite_bit) {
        fprintf(stderr, "vkgrad-bench: unknown suite \"%s\" (quick, micro or models)\n", suite);
        return 2;
    }
    s.filter = filter;
    s.progress = !quiet;
    if (min_time >= 0) s.min_time = min_time;
    if (list) {
        for (int i = 0; i < vkgb_ncases; i++)
            if (vkgb_case_selected(&vkgb_cases[i], &s))
                printf("%-44s %s\n", vkgb_cases[i].name, vkgb_cases[i].kind == VKGB_MISSING ? "(not yet available)" : "");
        return 0;
    }
    FILE *probe = out ? fopen(out, "a") : NULL; /* a bad path fails before minutes of measuring */
    if (out && !probe) {
        fprintf(stderr, "vkgrad-bench: %s: cannot open for writing\n", out);
        return 1;
    }
    if (probe) fclose(probe);
    if (vkg_init(NULL) != VKG_OK) {
        fprintf(stderr, "vkgrad-bench: %s\n", vkg_last_error());
        return 1;
    }
    vkgb_run *r = vkgb_run_suite(&s);
    int status = r ? 0 : 1;
    if (r) {
        vkgb_print_table(r, stdout);
        for (int i = 0; i < r->n; i++) status |= r->results[i].status == VKGB_FAIL;
        if (out) {
            cJSON *j = vkgb_report_json(r);
            if (!j || !vkgb_write_json(j, out)) {
                fprintf(stderr, "vkgrad-bench: %s: cannot write the report\n", out);
                status = 1;
            } else {
                printf("report: %s\n", out);
            }
            cJSON_Delete(j);
        }
        if (status) fprintf(stderr, "vkgrad-bench: some cases failed their check (see the table)\n");
    }
    vkgb_run_free(r);
    vkg_shutdown();
    return status;
}

static int cmd_compare(int argc, char **argv) {
    const char *md = NULL, *chart = NULL;
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    int n = 0;
    if (!paths) return 1;
    for (int i = 0; i < argc; i++) {
        bool v = i + 1 < argc;
        if (!strcmp(argv[i], "--out-md") && v) md = argv[++i];
        else if (!strcmp(argv[i], "--chart") && v) chart = argv[++i];
        else if (argv[i][0] == '-') { free(paths); return usage(stderr); }
        else paths[n++] = argv[i];
    }
    int st = n >= 1 ? vkgb_compare(paths, n, md, chart) : usage(stderr);
    free(paths);
    return st;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "compare")) return cmd_compare(argc - 2, argv + 2);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout);
    return usage(stderr);
}
