/* vkgrad-bench compare: reports side by side (cases as rows, reports as columns, ratios to the
 * first), and a chart of each case's throughput relative to the first report, as PNG and SVG
 * through gnuplot. A case whose settings differ between reports is not compared: its cells say
 * so and a line on stderr names the difference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static cJSON *load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vkgrad-bench compare: %s: cannot open\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n > 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text || got != (size_t)n) {
        free(text);
        fprintf(stderr, "vkgrad-bench compare: %s: cannot read\n", path);
        return NULL;
    }
    text[n] = '\0';
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *schema = j ? cJSON_GetObjectItemCaseSensitive(j, "schema") : NULL;
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, VKGB_SCHEMA) != 0) {
        fprintf(stderr, "vkgrad-bench compare: %s: not a %s report\n", path, VKGB_SCHEMA);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const cJSON *find_case(const cJSON *report, const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(report, "cases"))
        if (strcmp(str(c, "name"), name) == 0) return c;
    return NULL;
}

/* The value of a case as throughput (higher is better); NAN when it has none. */
static double throughput(const cJSON *c) {
    if (!c || strcmp(str(c, "status"), "ok") != 0) return NAN;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "value");
    if (!cJSON_IsNumber(v) || v->valuedouble <= 0) return NAN;
    const char *unit = str(c, "unit");   /* times per thing (us/dispatch, ms/batch): lower is better */
    return strncmp(unit, "us/", 3) == 0 || strncmp(unit, "ms/", 3) == 0 ? 1.0 / v->valuedouble : v->valuedouble;
}

static void label(const cJSON *r, char *out, size_t size) {
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "host"), "env");
    const char *lp = str(env, "LP_NUM_THREADS");
    if (*lp) snprintf(out, size, "%s, LP_NUM_THREADS=%s", str(dev, "name"), lp);
    else snprintf(out, size, "%s", str(dev, "name"));
}

static bool chart(const char *prefix, const char *const *labels, int n, char **rows, double *ratio, int nrows) {
    char dat[1024];
    snprintf(dat, sizeof dat, "%s.dat", prefix);
    FILE *f = fopen(dat, "w");
    if (!f) return false;
    for (int i = 0; i < nrows; i++) {
        fprintf(f, "\"%s\"", rows[i]);
        for (int k = 0; k < n; k++) fprintf(f, " %.6g", ratio[i * n + k]);
        fprintf(f, "\n");
    }
    fclose(f);
    const char *terms[2][2] = { { "pngcairo size 1200,%d font ',10'", "png" }, { "svg size 1200,%d dynamic font ',10'", "svg" } };
    bool ok = true;
    for (int t = 0; t < 2; t++) {
        FILE *g = popen("gnuplot", "w");
        if (!g) return false;
        char term[128];
        snprintf(term, sizeof term, terms[t][0], 260 + 22 * nrows);
        /* noenhanced: device labels hold underscores (LP_NUM_THREADS), which would become subscripts */
        fprintf(g, "set terminal %s noenhanced\nset output '%s.%s'\n", term, prefix, terms[t][1]);
        fprintf(g, "set title 'vkgrad-bench: throughput per case relative to %s (higher is better)'\n", labels[0]);
        fprintf(g, "set style data histogram\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
                   "set boxwidth 0.9\nset xtics rotate by -50 scale 0 font ',8'\nset grid ytics\nset yrange [0:*]\n"
                   "set ylabel 'throughput / throughput of the first report'\nset key top left\nset bmargin 14\n"
                   "set rmargin 12\n"); /* room for the last case's slanted name */
        fprintf(g, "plot ");
        for (int k = 0; k < n; k++)
            fprintf(g, "%s'%s' using %d%s title '%s'", k ? ", " : "", dat, k + 2, k ? "" : ":xtic(1)", labels[k]);
        fprintf(g, "\n");
        if (pclose(g) != 0) ok = false;
    }
    remove(dat);
    return ok;
}

int vkgb_compare(const char *const *paths, int n, const char *md_path, const char *chart_prefix) {
    cJSON **r = calloc((size_t)n, sizeof *r);
    char(*labels)[320] = calloc((size_t)n, sizeof *labels);
    const char **lp = calloc((size_t)n, sizeof *lp);
    int status = 0;
    if (!r || !labels || !lp) return 1;
    for (int i = 0; i < n; i++) {
        if (!(r[i] = load(paths[i]))) status = 1;
        else label(r[i], labels[i], sizeof labels[i]);
        lp[i] = labels[i];
    }
    FILE *md = stdout;
    if (status == 0 && md_path && !(md = fopen(md_path, "w"))) {
        fprintf(stderr, "vkgrad-bench compare: %s: cannot open for writing\n", md_path);
        status = 1;
    }
    if (status != 0) goto done;

    fprintf(md, "# vkgrad-bench compare\n\n| report | device | driver | host | commit | created |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r[i], "device");
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(r[i], "host");
        fprintf(md, "| %c: %s | %s | %s %s | %s | %s | %s |\n", 'A' + i, paths[i], labels[i], str(dev, "driver_name"),
                str(dev, "driver_info"), str(host, "cpu"),
                str(cJSON_GetObjectItemCaseSensitive(r[i], "vkgrad"), "git_commit"), str(r[i], "created"));
    }
    fprintf(md, "\nEach cell: the case's median figure; in brackets its throughput relative to A.\n\n| case | unit |");
    for (int i = 0; i < n; i++) fprintf(md, " %c |", 'A' + i);
    fprintf(md, "\n|---|---|");
    for (int i = 0; i < n; i++) fprintf(md, "---:|");
    fprintf(md, "\n");

    int ncases = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r[0], "cases"));
    char **rows = calloc((size_t)(ncases ? ncases : 1), sizeof *rows);
    double *ratio = calloc((size_t)(ncases ? ncases : 1) * (size_t)n, sizeof *ratio);
    int nrows = 0, refused = 0;
    const cJSON *c0;
    cJSON_ArrayForEach(c0, cJSON_GetObjectItemCaseSensitive(r[0], "cases")) {
        const char *name = str(c0, "name");
        fprintf(md, "| %s | %s |", name, str(c0, "unit"));
        double t0 = throughput(c0);
        bool all = !isnan(t0);
        for (int i = 0; i < n; i++) {
            const cJSON *c = i ? find_case(r[i], name) : c0;
            if (!c) {
                fprintf(md, " absent |");
                all = false;
                continue;
            }
            if (strcmp(str(c, "settings"), str(c0, "settings")) != 0) {
                fprintf(stderr, "vkgrad-bench compare: not comparing \"%s\": settings differ (A: %s; %c: %s)\n", name,
                        str(c0, "settings"), 'A' + i, str(c, "settings"));
                fprintf(md, " settings differ |");
                all = false;
                refused++;
                continue;
            }
            double t = throughput(c);
            if (isnan(t)) {
                const char *st = str(c, "status");
                fprintf(md, " %s |", strcmp(st, "unavailable") == 0 ? "n/a" : st);
                all = false;
                continue;
            }
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "value");
            if (i == 0 || isnan(t0)) fprintf(md, " %.4g |", v->valuedouble);
            else fprintf(md, " %.4g (%.2fx) |", v->valuedouble, t / t0);
            if (all) ratio[nrows * n + i] = isnan(t0) ? NAN : t / t0;
        }
        fprintf(md, "\n");
        if (all && rows) rows[nrows++] = (char *)name;
    }
    if (refused) fprintf(md, "\n%d case(s) not compared because their settings differ between reports.\n", refused);
    if (chart_prefix && nrows > 0) {
        if (!chart(chart_prefix, lp, n, rows, ratio, nrows)) {
            fprintf(stderr, "vkgrad-bench compare: gnuplot failed to draw %s.png / .svg (is gnuplot installed?)\n",
                    chart_prefix);
            status = 1;
        } else {
            fprintf(md, "\n![throughput relative to A](%s.svg)\n", chart_prefix);
        }
    }
    free(rows);
    free(ratio);
    if (md != stdout && fclose(md) != 0) status = 1;
done:
    for (int i = 0; i < n; i++) cJSON_Delete(r[i]);
    free(r);
    free(labels);
    free(lp);
    return status;
}
