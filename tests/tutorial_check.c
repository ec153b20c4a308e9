/* tutorial_check: keeps a tutorial's README and its program from drifting apart.
 *   tutorial_check README.md main.c -- PROGRAM [ARGS...]
 * 1. Every ```c block of the README is found verbatim in main.c, every ```glsl block in one of
 *    the folder's .comp shaders.
 * 2. The README links the previous and the next tutorial (../NN-...), where they exist.
 * 3. PROGRAM runs, exits 0, and prints every line of each ```output block of the README, in
 *    order; numbers match within the block's tolerance (```output tol=0.05: relative, with
 *    an absolute floor of the same size), everything else exactly. A line "..." is skipped.
 * Prints what differs and exits 1, or "N blocks, M lines checked" and exits 0. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <libgen.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tutorial_check: cannot open %s\n", path);
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t r; (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Splits a line into alternating text and number tokens; returns the count. */
typedef struct tok {
    bool num;
    double v;
    char s[128];
} tok;

static int tokenize(const char *line, tok *t, int max) {
    int n = 0;
    const char *p = line;
    while (*p && n < max) {
        char *end;
        bool starts = isdigit((unsigned char)p[0]) || ((p[0] == '-' || p[0] == '+' || p[0] == '.') && isdigit((unsigned char)p[1]));
        double v = starts ? strtod(p, &end) : 0;
        if (starts && end > p) {
            t[n].num = true;
            t[n].v = v;
            snprintf(t[n].s, sizeof t[n].s, "%.*s", (int)(end - p), p);
            n++;
            p = end;
            continue;
        }
        if (isspace((unsigned char)*p)) { /* runs of spaces are one separator */
            while (isspace((unsigned char)*p)) p++;
            continue;
        }
        size_t k = 0;
        t[n].num = false;
        while (*p && !isspace((unsigned char)*p) && k + 1 < sizeof t[n].s) {
            if (isdigit((unsigned char)p[0]) && k > 0 && !isalpha((unsigned char)p[-1])) break;
            t[n].s[k++] = *p++;
        }
        t[n].s[k] = '\0';
        n++;
    }
    return n;
}

static bool line_matches(const char *want, const char *got, double tol) {
    tok a[64], b[64];
    int na = tokenize(want, a, 64), nb = tokenize(got, b, 64);
    if (na != nb) return false;
    for (int i = 0; i < na; i++) {
        if (a[i].num != b[i].num) return false;
        if (a[i].num) {
            if (fabs(a[i].v - b[i].v) > tol * fmax(1.0, fabs(a[i].v))) return false;
        } else if (strcmp(a[i].s, b[i].s) != 0) {
            return false;
        }
    }
    return true;
}

/* The NN of a folder name "NN-topic", or -1. */
static int number_of(const char *name) {
    return isdigit((unsigned char)name[0]) && isdigit((unsigned char)name[1]) && name[2] == '-'
               ? (name[0] - '0') * 10 + (name[1] - '0')
               : -1;
}

static int check_links(const char *readme_path, const char *readme) {
    char *copy = strdup(readme_path), *dir = dirname(copy);
    char *copy2 = strdup(dir), *parent = dirname(copy2);
    int me = number_of(strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir), bad = 0;
    DIR *d = opendir(parent);
    for (struct dirent *e; d && (e = readdir(d));) {
        int k = number_of(e->d_name);
        if (k < 0 || (k != me - 1 && k != me + 1)) continue;
        char want[300];
        snprintf(want, sizeof want, "(../%s", e->d_name);
        if (!strstr(readme, want)) {
            fprintf(stderr, "tutorial_check: %s does not link %s tutorial ../%s/\n", readme_path,
                    k < me ? "the previous" : "the next", e->d_name);
            bad = 1;
        }
    }
    if (d) closedir(d);
    free(copy);
    free(copy2);
    return bad;
}

/* Is text found in one of the .comp files beside the README? */
static bool in_shaders(const char *readme_path, const char *text) {
    char *copy = strdup(readme_path), *dir = dirname(copy);
    bool found = false;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".comp") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *src = slurp(path);
        found = strstr(src, text) != NULL;
        free(src);
    }
    if (d) closedir(d);
    free(copy);
    return found;
}

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr, "usage: tutorial_check README.md main.c -- PROGRAM [ARGS...]\n");
        return 2;
    }
    char *readme = slurp(argv[1]), *src = slurp(argv[2]);
    int failures = check_links(argv[1], readme), blocks = 0, lines = 0;

    /* run the program, capturing its standard output */
    char cmd[4096] = "";
    for (int i = 4; i < argc; i++) {
        strncat(cmd, "'", sizeof cmd - strlen(cmd) - 1);
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 1);
        strncat(cmd, "' ", sizeof cmd - strlen(cmd) - 1);
    }
    char errpath[] = "/tmp/tutorial_check_XXXXXX";
    int errfd = mkstemp(errpath);
    if (errfd < 0) return 1;
    close(errfd);
    strncat(cmd, "2>", sizeof cmd - strlen(cmd) - 1);
    strncat(cmd, errpath, sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "tutorial_check: cannot run %s\n", cmd);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    for (size_t r; (r = fread(out + n, 1, cap - n - 1, p)) > 0;) {
        n += r;
        if (n + 1 == cap) out = realloc(out, cap *= 2);
    }
    out[n] = '\0';
    int status = pclose(p);
    fputs(out, stdout);
    /* a validation message (VKG_VALIDATE=1 is set by the test) fails the tutorial too */
    char *err = slurp(errpath);
    unlink(errpath);
    fputs(err, stderr);
    if (strstr(err, "validation:")) {
        fprintf(stderr, "tutorial_check: the program caused validation messages\n");
        failures++;
    }
    free(err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tutorial_check: %s exited with status %d\n", argv[4], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        failures++;
    }

    /* walk the README's fenced blocks */
    const char *cursor = out; /* output lines must appear in order */
    for (char *f = strstr(readme, "```"); f; f = strstr(f, "```")) {
        char *info = f + 3, *eol = strchr(info, '\n');
        if (!eol) break;
        char *body = eol + 1, *close = strstr(body, "\n```");
        if (!close) break;
        char infobuf[128];
        snprintf(infobuf, sizeof infobuf, "%.*s", (int)(eol - info), info);
        size_t blen = (size_t)(close - body) + 1; /* with its last newline */
        if (strcmp(infobuf, "c") == 0) {
            blocks++;
            char *block = strndup(body, blen);
            if (!strstr(src, block)) {
                fprintf(stderr, "tutorial_check: a ```c block of %s is not in %s verbatim; it starts:\n%.*s\n", argv[1],
                        argv[2], (int)strcspn(block, "\n"), block);
                failures++;
            }
            free(block);
        } else if (strcmp(infobuf, "glsl") == 0) {
            blocks++;
            char *block = strndup(body, blen);
            if (!in_shaders(argv[1], block)) {
                fprintf(stderr, "tutorial_check: a ```glsl block of %s is in none of its folder's .comp files; it starts:\n%.*s\n",
                        argv[1], (int)strcspn(block, "\n"), block);
                failures++;
            }
            free(block);
        } else if (strncmp(infobuf, "output", 6) == 0) {
            blocks++;
            double tol = 1e-9;
            const char *t = strstr(infobuf, "tol=");
            if (t) tol = strtod(t + 4, NULL);
            char *block = strndup(body, blen);
            for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
                if (strcmp(line, "...") == 0 || !*line) continue;
                lines++;
                bool found = false;
                for (const char *o = cursor; *o && !found;) {
                    size_t len = strcspn(o, "\n");
                    char *got = strndup(o, len);
                    if (line_matches(line, got, tol)) {
                        found = true;
                        cursor = o + len;
                    }
                    free(got);
                    o += len + (o[len] == '\n');
                }
                if (!found) {
                    fprintf(stderr, "tutorial_check: %s says the program prints\n  %s\nbut it did not (tolerance %g)\n",
                            argv[1], line, tol);
                    failures++;
                }
            }
            free(block);
        }
        f = close + 4;
    }
    if (failures) return 1;
    printf("tutorial_check: %d blocks, %d output lines checked\n", blocks, lines);
    free(readme);
    free(src);
    free(out);
    return 0;
}
