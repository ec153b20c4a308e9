/* vkgrad-train MODEL [flags]: trains, evaluates and samples the reference models (models.h).
 * SIGINT sets a flag; the trainer finishes the current step, saves a checkpoint and stops, and
 * --resume continues from it to the same result as an uninterrupted run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"

static void on_sigint(int sig) {
    (void)sig;
    if (vkg_train_interrupt) _Exit(130);   /* a second Ctrl-C: stop at once */
    vkg_train_interrupt = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: vkgrad-train MODEL [flags]     MODEL: mlp | cnn | lstm | gpt (transformer)\n"
            "  --steps N          optimizer steps in all (default: epochs x batches, or 2000 for lstm/gpt)\n"
            "  --epochs N         classifiers: epochs (default 5 mlp, 2 cnn; drop-last batches)\n"
            "  --batch N          batch size (default 128 classifiers, 32 language models)\n"
            "  --lr X             learning rate (default: the model's, see models/README.md)\n"
            "  --seed N           parameters and data order (default 42)\n"
            "  --device D         Vulkan device index or name substring (default: VKG_DEVICE, else the best)\n"
            "  --checkpoint PATH  save there at the end, every --save-every steps and on Ctrl-C\n"
            "  --resume           continue from --checkpoint (from step 0 if it does not exist yet)\n"
            "  --save-every N     also save every N steps\n"
            "  --eval-only        load --checkpoint, evaluate (and sample), no training\n"
            "  --no-eval          skip the evaluation at the end\n"
            "  --no-graph         record every step eagerly instead of replaying a captured one (not lstm)\n"
            "  --amp              mixed precision: weights used through f16 (vkg_module_amp), dynamic\n"
            "                     loss scaling; f32 compute, so no faster on lavapipe (eager steps)\n"
            "  --eval-batches N   language models: validation batches (default 20)\n"
            "  --log-every N      steps between progress lines (default 50)\n"
            "  --sample PROMPT    language models: generate after training (or with --eval-only)\n"
            "  --length N  --temperature X  --top-k K  --sample-seed N   sampling (200, 1.0, all, 0)\n"
            "  --test             tiny sizes and data subsets (what the test suite runs)\n"
            "  --quiet            no progress lines\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int kind = vkg_model_kind_parse(argv[1]);
    if (kind < 0) {
        fprintf(stderr, "vkgrad-train: unknown model \"%s\"\n", argv[1]);
        usage(stderr);
        return 2;
    }
    vkg_train_options o = { .kind = (vkg_model_kind)kind, .seed = 42 };
    const char *device = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (v ? (i++, 1) : (fprintf(stderr, "vkgrad-train: %s needs a value\n", name), exit(2), 0)))
        if (ARG("--steps")) o.steps = strtoll(v, NULL, 10);
        else if (ARG("--epochs")) o.epochs = strtoll(v, NULL, 10);
        else if (ARG("--batch")) o.batch = strtoll(v, NULL, 10);
        else if (ARG("--lr")) o.lr = strtod(v, NULL);
        else if (ARG("--seed")) o.seed = strtoull(v, NULL, 10);
        else if (ARG("--device")) device = v;
        else if (ARG("--checkpoint")) o.checkpoint = v;
        else if (ARG("--save-every")) o.save_every = strtoll(v, NULL, 10);
        else if (ARG("--eval-batches")) o.eval_batches = strtoll(v, NULL, 10);
        else if (ARG("--log-every")) o.log_every = strtoll(v, NULL, 10);
        else if (ARG("--sample")) o.sample = v;
        else if (ARG("--length")) o.sample_desc.length = atoi(v);
        else if (ARG("--temperature")) o.sample_desc.temperature = strtof(v, NULL);
        else if (ARG("--top-k")) o.sample_desc.top_k = atoi(v);
        else if (ARG("--sample-seed")) o.sample_desc.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--resume")) o.resume = true;
        else if (!strcmp(a, "--eval-only")) o.eval_only = true;
        else if (!strcmp(a, "--no-eval")) o.skip_eval = true;
        else if (!strcmp(a, "--no-graph")) o.no_graph = true;
        else if (!strcmp(a, "--amp")) o.amp = true;
        else if (!strcmp(a, "--test")) o.test = true;
        else if (!strcmp(a, "--quiet")) o.quiet = true;
        else {
            fprintf(stderr, "vkgrad-train: unknown flag %s\n", a);
            usage(stderr);
            return 2;
        }
#undef ARG
    }
    if ((o.resume || o.eval_only) && !o.checkpoint && o.resume) {
        fprintf(stderr, "vkgrad-train: --resume needs --checkpoint PATH\n");
        return 2;
    }
    if (o.steps < 0 || o.epochs < 0 || o.batch < 0 || o.lr < 0.0) {
        fprintf(stderr, "vkgrad-train: --steps, --epochs, --batch and --lr must not be negative\n");
        return 2;
    }
    if (vkg_init(&(vkg_init_desc){ .device = device }) != VKG_OK) {
        fprintf(stderr, "vkgrad-train: %s\n", vkg_last_error());
        return 1;
    }
    char line[1024];
    vkg_device_line(vkg_device(), line, sizeof line);
    if (!o.quiet) printf("device: %s\n", line);
    struct sigaction sa = { 0 };
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    vkg_train_result r;
    vkg_status st = vkg_train_run(&o, &r);
    vkg_shutdown();
    if (st != VKG_OK) return 1;
    return r.interrupted ? 130 : 0;
}
