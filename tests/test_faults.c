/* Fault injection: volk's vkAllocateMemory, vkQueueSubmit and vkWaitForFences pointers are
 * replaced, after vkg_init, by wrappers that fail at the i-th call. For every i up to the number
 * of calls a small workload makes, the workload must fail with a clear message naming the failed
 * call, never crash or leak, leave the library usable (or, after device loss, refusing every op
 * with "device was lost"), shut down cleanly, and work again after a fresh vkg_init. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <volk.h>

#include "support.h"

#define SEED 20261127u
#define M 64
#define K 48
#define N 32
#define BIG ((int64_t)1 << 24)   /* 64 MiB of f32: as large as a default block, so a block of its own */
#define TAIL 1000                /* the elements of the big tensors that are read back          */

/* ---- the fault injector ----------------------------------------------------------------------- */
typedef enum fault_call { CALL_ALLOC, CALL_SUBMIT, CALL_WAIT, CALL_COUNT } fault_call;
static const char *const call_names[CALL_COUNT] = { "vkAllocateMemory", "vkQueueSubmit", "vkWaitForFences" };

static struct {
    fault_call call;
    int at;          /* the call (1-based) that fails; 0: none                                     */
    bool sticky;     /* every later call fails too (a lost device stays lost)                       */
    VkResult result;
    int calls[CALL_COUNT];
    int injected;
} inj;

static PFN_vkAllocateMemory real_allocate_memory;
static PFN_vkQueueSubmit real_queue_submit;
static PFN_vkWaitForFences real_wait_for_fences;

static bool should_fail(fault_call call) {
    int n = ++inj.calls[call];
    if (call != inj.call || inj.at == 0 || n < inj.at || (n > inj.at && !inj.sticky)) return false;
    inj.injected++;
    return true;
}

static VKAPI_ATTR VkResult VKAPI_CALL fake_allocate_memory(VkDevice device, const VkMemoryAllocateInfo *info,
                                                           const VkAllocationCallbacks *cb, VkDeviceMemory *memory) {
    if (should_fail(CALL_ALLOC)) return inj.result;
    return real_allocate_memory(device, info, cb, memory);
}

static VKAPI_ATTR VkResult VKAPI_CALL fake_queue_submit(VkQueue queue, uint32_t count, const VkSubmitInfo *submits,
                                                        VkFence fence) {
    if (should_fail(CALL_SUBMIT)) return inj.result;
    return real_queue_submit(queue, count, submits, fence);
}

static VKAPI_ATTR VkResult VKAPI_CALL fake_wait_for_fences(VkDevice device, uint32_t count, const VkFence *fences,
                                                           VkBool32 all, uint64_t timeout) {
    if (should_fail(CALL_WAIT)) return inj.result;
    return real_wait_for_fences(device, count, fences, all, timeout);
}

/* vkg_init loads the device's pointers (volkLoadDevice), so the wrappers go in after it. */
static void faults_install(fault_call call, int at, VkResult result, bool sticky) {
    memset(&inj, 0, sizeof inj);
    inj.call = call;
    inj.at = at;
    inj.result = result;
    inj.sticky = sticky;
    real_allocate_memory = vkAllocateMemory;
    real_queue_submit = vkQueueSubmit;
    real_wait_for_fences = vkWaitForFences;
    vkAllocateMemory = fake_allocate_memory;
    vkQueueSubmit = fake_queue_submit;
    vkWaitForFences = fake_wait_for_fences;
}

static void faults_remove(void) {
    vkAllocateMemory = real_allocate_memory;
    vkQueueSubmit = real_queue_submit;
    vkWaitForFences = real_wait_for_fences;
    inj.at = 0;
}

/* ---- errors and validation ------------------------------------------------------------------- */
static char first_error[1024];   /* the first failure since the last reset: the root cause */
static int errors;

static void on_error(vkg_status st, const char *message, void *user) {
    (void)st;
    (void)user;
    if (errors++ == 0) snprintf(first_error, sizeof first_error, "%s", message);
}

static void errors_reset(void) {
    first_error[0] = '\0';
    errors = 0;
    vkg_clear_error();
}

static void on_validation(const char *message, void *user) {
    (void)user;
    cr_log_error("validation message: %s", message);
}

/* The validation layer stays on throughout: a submit or wait that the wrapper fails never
 * reaches the layer, and the library's state after it (a command buffer reset, a fence never
 * submitted, or waited later) is one the layer accepts. */
typedef struct mode {
    bool staging;        /* discrete-GPU paths: staging ring and pooled descriptor sets */
} mode;

static void start(mode md) {
    vkg_set_error_handler(on_error, NULL);
    vkg_set_validation_hook(on_validation, NULL);
    vkg_status st = vkg_init(&(vkg_init_desc){ .validate = true, .force_staging = md.staging,
                                               .no_push_descriptor = md.staging,
                                               .cache_dir = getenv("VKG_TEST_CACHE") });
    if (st == VKG_ERR_NO_DEVICE) cr_skip_test("no Vulkan device: %s", vkg_last_error());
    cr_assert_eq(st, VKG_OK, "vkg_init: %s", vkg_last_error());
    errors_reset();
}

static void stop(const char *when) {
    vkg_shutdown();
    cr_assert(!vkg_is_initialized(), "%s: vkg_shutdown left the library initialized", when);
    cr_assert_eq(vkg_validation_message_count(), 0, "%s: %llu validation messages", when,
                 (unsigned long long)vkg_validation_message_count());
}

/* ---- the workload ------------------------------------------------------------------------------ */
/* Two 64 MiB tensors (two blocks besides the first), elementwise ops, a matmul, reductions and
 * two read-backs; with VKG_BATCH=4 about a submit every four dispatches. */
typedef struct result {
    float small;   /* sum over rows of mean(relu(a @ b - 0.1)^2, 1) */
    float tail;    /* the sum of the last TAIL elements of 0.5 * ones(BIG) */
} result;

static float host_a[M * K], host_b[K * N];

static result expected(void) {
    double s = 0.0;
    for (int i = 0; i < M; i++) {
        double row = 0.0;
        for (int j = 0; j < N; j++) {
            double c = 0.0;
            for (int k = 0; k < K; k++) c += (double)host_a[i * K + k] * host_b[k * N + j];
            c = c - 0.1 > 0.0 ? c - 0.1 : 0.0;
            row += c * c;
        }
        s += row / N;
    }
    return (result){ (float)s, 0.5f * TAIL };
}

/* Returns VKG_OK with *out filled, or the status of the first failure (with its message). */
static vkg_status workload(result *out) {
    vkg_status st = VKG_OK;
    vkg_scope_begin();
    vkg_tensor *a = vkg_from_data(VKG_SHAPE(M, K), host_a);
    vkg_tensor *b = vkg_from_data(VKG_SHAPE(K, N), host_b);
    vkg_tensor *big = vkg_full(VKG_SHAPE(BIG), 1.0f);
    vkg_tensor *half = vkg_mul_scalar(big, 0.5f);
    vkg_tensor *h = vkg_relu(vkg_sub_scalar(vkg_matmul(a, b), 0.1f));
    vkg_tensor *small = vkg_sum_all(vkg_mean(vkg_mul(h, h), 1, false));
    vkg_tensor *tail = vkg_sum_all(vkg_narrow(half, 0, BIG - TAIL, TAIL));
    if (!small || !tail) {
        st = vkg_last_status();
        goto done;
    }
    st = vkg_tensor_read(small, &out->small, sizeof out->small);
    if (st == VKG_OK) st = vkg_tensor_read(tail, &out->tail, sizeof out->tail);
    if (st == VKG_OK) st = vkg_sync();
done:
    vkg_scope_end();
    return st;
}

static void check_result(result got, const char *when) {
    result want = expected();
    cr_assert(fabsf(got.small - want.small) <= 1e-4f * fabsf(want.small) + 1e-5f, "%s: got %.9g, want %.9g", when,
              (double)got.small, (double)want.small);
    cr_assert_eq(got.tail, want.tail, "%s: tail sum %.9g, want %.9g", when, (double)got.tail, (double)want.tail);
}

static void run_clean(const char *when) {
    result r;
    errors_reset();
    vkg_status st = workload(&r);
    cr_assert_eq(st, VKG_OK, "%s: the workload failed: %s", when, vkg_last_error());
    check_result(r, when);
    cr_assert_eq(vkg_memory_stats_get().in_use, 0, "%s: tensors still hold memory after the scope", when);
}

/* Calls of each kind that one workload makes on a fresh device. */
static void count_calls(mode md, int counts[CALL_COUNT]) {
    start(md);
    faults_install(CALL_ALLOC, 0, VK_SUCCESS, false);
    run_clean("the run without faults");
    memcpy(counts, inj.calls, sizeof inj.calls);
    faults_remove();
    stop("the run without faults");
    cr_log_info("a workload makes %d vkAllocateMemory, %d vkQueueSubmit and %d vkWaitForFences calls",
                counts[CALL_ALLOC], counts[CALL_SUBMIT], counts[CALL_WAIT]);
}

/* For every i from 1 to the clean run's count: fail call i with fault, then check the error,
 * what the library does next, shutdown, and a fresh start. */
static void sweep(mode md, fault_call call, VkResult fault) {
    setenv("VKG_BATCH", "4", 1);
    int counts[CALL_COUNT];
    count_calls(md, counts);
    int n = counts[call];
    cr_assert_geq(n, 3, "the workload should make several %s calls, made %d", call_names[call], n);
    bool lost = fault == VK_ERROR_DEVICE_LOST;
    const char *rname = lost ? "VK_ERROR_DEVICE_LOST"
                        : fault == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "VK_ERROR_OUT_OF_DEVICE_MEMORY"
                                                                   : "VK_ERROR_OUT_OF_HOST_MEMORY";
    for (int i = 1; i <= n; i++) {
        char when[128];
        snprintf(when, sizeof when, "%s failing with %s at call %d of %d", call_names[call], rname, i, n);
        start(md);
        /* a lost device stays lost: every later submit or wait fails as well */
        faults_install(call, i, fault, lost);
        result r;
        vkg_status st = workload(&r);
        cr_assert_geq(inj.injected, 1, "%s: the call was never made", when);
        cr_assert_neq(st, VKG_OK, "%s: the workload reported success", when);
        cr_assert_neq(vkg_last_error()[0], '\0', "%s: no message", when);
        cr_log_info("%s: \"%s\"", when, first_error);
        if (call == CALL_ALLOC) {
            cr_assert_eq(st, VKG_ERR_OUT_OF_MEMORY, "%s: status %s", when, vkg_status_name(st));
            cr_assert(strstr(first_error, "out of device memory") && strstr(first_error, rname),
                      "%s: the message does not say what failed: \"%s\"", when, first_error);
        } else {
            char want[160];
            snprintf(want, sizeof want, "%s failed: %s", call_names[call], rname);
            cr_assert(strstr(first_error, want), "%s: the first message should say \"%s\": \"%s\"", when, want,
                      first_error);
            cr_assert_eq(st, lost ? VKG_ERR_DEVICE_LOST : VKG_ERR_OUT_OF_MEMORY, "%s: status %s", when,
                         vkg_status_name(st));
        }
        cr_assert_eq(vkg_memory_stats_get().in_use, 0, "%s: tensors still hold memory after the scope", when);
        if (lost) {
            /* everything after a lost device must refuse, saying so, until shutdown; the wrappers
             * stay in place, so a submit that shutdown still makes fails as on a real lost device */
            errors_reset();
            cr_assert_null(vkg_scalar(1.0f), "%s: an op after device loss succeeded", when);
            cr_assert(strstr(vkg_last_error(), "device was lost"), "%s: \"%s\"", when, vkg_last_error());
            cr_assert_eq(vkg_last_status(), VKG_ERR_DEVICE_LOST);
            cr_assert_eq(vkg_sync(), VKG_ERR_DEVICE_LOST, "%s: vkg_sync after device loss", when);
            cr_assert(strstr(vkg_last_error(), "device was lost"), "%s: \"%s\"", when, vkg_last_error());
            cr_assert_neq(workload(&r), VKG_OK, "%s: the workload after device loss", when);
            stop(when);
            faults_remove(); /* vkg_init reloads every pointer anyway; this only keeps inj tidy */
        } else {
            /* not a lost device: the same context must go on working */
            faults_remove();
            run_clean(when);
            stop(when);
        }
        start(md);
        run_clean(when);
        stop(when);
    }
    vkgt_leak_check();
}

/* ---- tests ------------------------------------------------------------------------------------ */
static void fill_inputs(void) {
    vkgt_fill(host_a, M * K, -1.0f, 1.0f, SEED);
    vkgt_fill(host_b, K * N, -1.0f, 1.0f, SEED + 1);
}

TestSuite(faults, .init = fill_inputs, .timeout = 300);

static const mode mapped = { .staging = false };
static const mode staging = { .staging = true };

Test(faults, alloc_out_of_device_memory) { sweep(mapped, CALL_ALLOC, VK_ERROR_OUT_OF_DEVICE_MEMORY); }
Test(faults, submit_out_of_host_memory) { sweep(mapped, CALL_SUBMIT, VK_ERROR_OUT_OF_HOST_MEMORY); }
Test(faults, wait_out_of_host_memory) { sweep(mapped, CALL_WAIT, VK_ERROR_OUT_OF_HOST_MEMORY); }
Test(faults, submit_device_lost) { sweep(mapped, CALL_SUBMIT, VK_ERROR_DEVICE_LOST); }
Test(faults, wait_device_lost) { sweep(mapped, CALL_WAIT, VK_ERROR_DEVICE_LOST); }

Test(faults, staging_alloc_out_of_device_memory) { sweep(staging, CALL_ALLOC, VK_ERROR_OUT_OF_DEVICE_MEMORY); }
Test(faults, staging_submit_out_of_host_memory) { sweep(staging, CALL_SUBMIT, VK_ERROR_OUT_OF_HOST_MEMORY); }
Test(faults, staging_wait_out_of_host_memory) { sweep(staging, CALL_WAIT, VK_ERROR_OUT_OF_HOST_MEMORY); }
Test(faults, staging_submit_device_lost) { sweep(staging, CALL_SUBMIT, VK_ERROR_DEVICE_LOST); }
Test(faults, staging_wait_device_lost) { sweep(staging, CALL_WAIT, VK_ERROR_DEVICE_LOST); }

/* What a failed submit computed is lost: reading it, or an op that reads it, fails with a
 * message instead of returning undefined values as if all were well; computing it again works. */
static void lost_results(mode md) {
    start(md);
    vkg_tensor *x = vkg_keep(vkg_full(VKG_SHAPE(100), 2.0f));
    cr_assert_eq(vkg_sync(), VKG_OK);
    faults_install(CALL_SUBMIT, 1, VK_ERROR_OUT_OF_HOST_MEMORY, false);
    vkg_tensor *y = vkg_keep(vkg_mul_scalar(x, 3.0f)); /* recorded, then its submit fails */
    cr_assert_neq(vkg_sync(), VKG_OK);
    faults_remove();
    errors_reset();
    float got[100];
    cr_assert_neq(vkg_tensor_read(y, got, sizeof got), VKG_OK, "a lost result must not read back as OK");
    cr_assert(strstr(vkg_last_error(), "lost"), "%s", vkg_last_error());
    cr_assert_null(vkg_add_scalar(y, 1.0f), "an op on a lost result must fail");
    cr_assert(strstr(vkg_last_error(), "lost"), "%s", vkg_last_error());
    cr_assert_eq(vkg_tensor_read(x, got, sizeof got), VKG_OK, "what an earlier submit computed is intact");
    cr_assert_eq(got[7], 2.0f);
    vkg_tensor *y2 = vkg_mul_scalar(x, 3.0f); /* computed again */
    cr_assert_eq(vkg_tensor_read(y2, got, sizeof got), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(got[99], 6.0f);
    stop("lost results");
    vkgt_leak_check();
}

Test(faults, failed_submit_loses_its_results) { lost_results(mapped); }
Test(faults, failed_submit_loses_its_results_staging) { lost_results(staging); }
