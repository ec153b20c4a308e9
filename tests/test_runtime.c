/* Runtime tests: device choice, texel or storage reads, the validation layer really active,
 * batched submits and barriers, the on-disk pipeline cache (and a corrupt one ignored),
 * statistics, memory reuse. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "support.h"

VKG_TEST(runtime, init_and_device_line) {
    const vkg_device_info *d = vkg_device();
    cr_assert_not_null(d);
    cr_assert_gt(d->max_storage_buffer_range, 0);
    cr_assert_gt(d->subgroup_size, 0);
    /* RGBA32F uniform texel buffers are a format feature every Vulkan device must have: a false
     * here (outside synchronization validation, which turns them off) is a detection bug, which
     * would quietly take reg_tex and reg_sg_tex off (matmul.c) */
    const char *val = getenv("VKG_VALIDATE");
    if (!val || strcmp(val, "full") != 0)
        cr_assert(d->texel_buffers, "%s: no R32G32B32A32_SFLOAT uniform texel buffers", d->name);
    cr_assert(vkg_is_initialized());
    cr_assert_eq(vkg_init(NULL), VKG_ERR_INVALID, "a second vkg_init must be refused");
    vkg_device_info all[8];
    int n = vkg_device_list(all, 8);
    cr_assert_geq(n, 1);
    bool listed = false;
    for (int i = 0; i < n && i < 8; i++) listed |= strcmp(all[i].name, d->name) == 0;
    cr_assert(listed, "the device in use, %s, is not listed", d->name);
}

/* The first word of the device's name, upper-cased ("LLVMPIPE", "NVIDIA"): a case-insensitive
 * substring that picks it. *name gets the first word as it is. */
static void name_word(char *upper, char *name, size_t size) {
    const char *s = vkg_device()->name;
    size_t i = 0;
    for (; s[i] && s[i] != ' ' && s[i] != '(' && i + 1 < size; i++) {
        name[i] = s[i];
        upper[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
    }
    name[i] = upper[i] = 0;
}

/* The layer must really be on: a deliberately invalid call (a buffer of size 0) is reported.
 * Criterion runs this test in its own child process. */
Test(runtime, validation_layer_is_active) {
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .no_pipeline_cache = true }), VKG_OK, "%s",
                 vkg_last_error());
    uint64_t before = vkg_validation_message_count();
    VkBufferCreateInfo bi = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 0,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT };
    VkBuffer buf = VK_NULL_HANDLE;
    VkResult r = vkCreateBuffer(vkg_ctx.device, &bi, NULL, &buf);
    if (r == VK_SUCCESS && buf) vkDestroyBuffer(vkg_ctx.device, buf, NULL);
    cr_assert_gt(vkg_validation_message_count(), before, "the validation layer did not report vkCreateBuffer(size 0)");
    vkg_shutdown();
}

VKG_TEST(runtime, device_choice_by_name_and_index) {
    char upper[64], word[64];
    name_word(upper, word, sizeof word);
    vkg_shutdown();
    setenv("VKG_DEVICE", upper, 1); /* a case-insensitive name substring */
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK, "%s", vkg_last_error());
    cr_assert(strstr(vkg_device()->name, word));
    vkg_shutdown();
    setenv("VKG_DEVICE", "0", 1);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK, "%s", vkg_last_error());
    vkg_shutdown();
    setenv("VKG_DEVICE", "no-such-gpu", 1);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_ERR_NO_DEVICE);
    cr_assert(strstr(vkg_last_error(), "no-such-gpu") && strstr(vkg_last_error(), word), "%s", vkg_last_error());
    setenv("VKG_DEVICE", "17", 1);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_ERR_NO_DEVICE);
    /* the option wins over the variable */
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .device = word }), VKG_OK, "%s", vkg_last_error());
    unsetenv("VKG_DEVICE");
}

/* The memory-bound kernels read their inputs through texel views on CPU devices that have them
 * (vkg_texel_read), storage buffers elsewhere; VKG_TEXEL_READS overrides. Both paths give the
 * same bits, here through the elementwise, reduction and softmax kernels. */
VKG_TEST(runtime, texel_reads_by_device_and_variable) {
    const vkg_device_info *d = vkg_device();
    cr_assert_eq(vkg_ctx.texel_reads, d->texel_buffers && d->type == VKG_DEVICE_CPU);
    enum { N = 4 * 37 };
    float x[N], got[2][N + 4];
    for (int i = 0; i < N; i++) x[i] = 3.0f * sinf(0.7f * (float)i);
    for (int mode = 0; mode < 2; mode++) {
        vkg_shutdown();
        setenv("VKG_TEXEL_READS", mode ? "1" : "0", 1);
        cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(vkg_ctx.texel_reads, mode && vkg_device()->texel_buffers);
        vkg_tensor *t = vkg_from_data(VKG_SHAPE(4, 37), x);
        vkg_tensor *y = vkg_mul(vkg_tanh(t), t);                /* scalar forms: rows of 37  */
        vkg_tensor *s = vkg_sum(vkg_reshape(y, VKG_SHAPE(37, 4)), 0, false); /* 4 column sums  */
        cr_assert_eq(vkg_tensor_read(vkg_softmax(y, 1), got[mode], N * sizeof(float)), VKG_OK, "%s",
                     vkg_last_error());
        cr_assert_eq(vkg_tensor_read(s, got[mode] + N, 4 * sizeof(float)), VKG_OK, "%s", vkg_last_error());
    }
    cr_assert(memcmp(got[0], got[1], sizeof got[0]) == 0, "texel and storage reads differ");
    unsetenv("VKG_TEXEL_READS");
}

/* A chain of 10,000 small dependent ops and one read-back: batched into at most 20 submits. */
VKG_TEST(runtime, long_chain_is_batched) {
    vkg_stream_stats before = vkg_stream_stats_get();
    float host[10];
    for (int i = 0; i < 10; i++) host[i] = (float)i;
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(10), host);
    for (int k = 0; k < 10000; k++) {
        vkg_tensor *y = (k % 2) ? vkg_mul_scalar(x, 2.0f) : vkg_sub_scalar(x, 1.0f);
        vkg_free(x); /* freed while the dispatch that reads it is still pending: reuse is stream-ordered */
        x = y;
        for (int i = 0; i < 10; i++) host[i] = (k % 2) ? host[i] * 2.0f : host[i] - 1.0f;
        if (k % 64 == 63) { /* keep values small: a halving step brings them back */
            vkg_tensor *z = vkg_mul_scalar(x, 1.0f / 4096.0f);
            vkg_free(x);
            x = z;
            for (int i = 0; i < 10; i++) host[i] = host[i] * (1.0f / 4096.0f);
        }
    }
    float got[10];
    cr_assert_eq(vkg_tensor_read(x, got, sizeof got), VKG_OK, "%s", vkg_last_error());
    vkgt_assert_close(got, host, 10, 0.0f, 0.0f, "10,000-op chain");
    vkg_stream_stats s = vkg_stream_stats_get();
    uint64_t dispatches = s.dispatches - before.dispatches, submits = s.submits - before.submits;
    cr_log_info("10,000-op chain: %llu dispatches, %llu submits, %llu barriers", (unsigned long long)dispatches,
                (unsigned long long)submits, (unsigned long long)(s.barriers - before.barriers));
    cr_assert_geq(dispatches, 10000);
    cr_assert_leq(submits, 20, "%llu submits", (unsigned long long)submits);
    /* dependent ops need a barrier each; the reused range is in the same memory all along */
    cr_assert_gt(s.barriers - before.barriers, 9000);
    cr_assert_eq(vkg_memory_stats_get().allocations, 1);
}

/* The command pool's host allocator (cmdmem.c): every block aligned as asked and big enough, a
 * freed block served again to its size class, reallocation keeping the contents, large and
 * over-aligned requests served too; and the driver records through it (the pool holds memory). */
VKG_TEST(runtime, command_memory_allocator) {
    cr_assert_gt(vkg_cmdmem_held(vkg_ctx.cmd_mem), 0, "the command pool records through vkgrad's allocator");
    vkg_cmdmem *m = vkg_cmdmem_new();
    cr_assert_not_null(m);
    const VkAllocationCallbacks *cb = vkg_cmdmem_callbacks(m);
    const VkSystemAllocationScope scope = VK_SYSTEM_ALLOCATION_SCOPE_OBJECT;
    enum { N = 600 };
    static uint8_t *p[N];
    for (int i = 0; i < N; i++) { /* sizes 0..2990 (small classes and large), alignments 1..256 */
        size_t size = (size_t)(i * 5) % 2995, align = (size_t)1 << (i % 9);
        p[i] = cb->pfnAllocation(cb->pUserData, size, align, scope);
        cr_assert_not_null(p[i], "block %d (%zu bytes)", i, size);
        cr_assert_eq((uintptr_t)p[i] % align, 0, "block %d: %zu-byte alignment", i, align);
        memset(p[i], i & 0xff, size);
    }
    for (int i = 0; i < N; i++) { /* no block overlapped another */
        size_t size = (size_t)(i * 5) % 2995;
        for (size_t k = 0; k < size; k++) cr_assert_eq(p[i][k], i & 0xff, "block %d byte %zu", i, k);
    }
    size_t held = vkg_cmdmem_held(m);
    cr_assert_gt(held, 0);
    uint8_t *small = p[10]; /* 50 bytes, 2-byte alignment */
    cb->pfnFree(cb->pUserData, small);
    cr_assert_eq(cb->pfnAllocation(cb->pUserData, 60, 8, scope), small, "a freed block serves its size class again");
    memset(small, 10, 60);
    uint8_t *grown = cb->pfnReallocation(cb->pUserData, small, 4000, 16, scope); /* to a large block */
    cr_assert_not_null(grown);
    for (int k = 0; k < 60; k++) cr_assert_eq(grown[k], 10, "reallocation keeps byte %d", k);
    uint8_t *shrunk = cb->pfnReallocation(cb->pUserData, grown, 20, 16, scope); /* back to a small one */
    for (int k = 0; k < 20; k++) cr_assert_eq(shrunk[k], 10, "reallocation keeps byte %d", k);
    cr_assert_null(cb->pfnReallocation(cb->pUserData, shrunk, 0, 16, scope), "size 0 frees");
    cr_assert_null(cb->pfnAllocation(cb->pUserData, SIZE_MAX - 8, 8, scope), "a size past the address space fails");
    cr_assert_not_null(p[N - 1]);
    for (int i = 0; i < N; i++)
        if (i != 10) cb->pfnFree(cb->pUserData, p[i]);
    cb->pfnFree(cb->pUserData, NULL);
    for (int i = 0; i < N; i++) { /* the same requests again come from what was freed */
        size_t size = (size_t)(i * 5) % 2995, align = (size_t)1 << (i % 9);
        p[i] = cb->pfnAllocation(cb->pUserData, size, align, scope);
        cr_assert_not_null(p[i]);
    }
    cr_assert_eq(vkg_cmdmem_held(m), held, "freed blocks are reused, not carved again");
    for (int i = 0; i < N; i++) cb->pfnFree(cb->pUserData, p[i]);
    vkg_cmdmem_free(m);
    cr_assert_null(vkg_cmdmem_callbacks(NULL));
}

/* Out of host memory while recording: the op fails with a message that says so, nothing crashes
 * (lavapipe's push-descriptor command copies into a failed allocation; cmdmem.c keeps a slab in
 * reserve and vkg_dispatch stops recording once it is in use), and once memory can be had again
 * the same ops work. */
VKG_TEST(runtime, out_of_command_memory_fails_cleanly) {
    vkg_tensor *a = vkg_zeros(VKG_SHAPE(64)), *b = vkg_ones(VKG_SHAPE(64));
    cr_assert_eq(vkg_sync(), VKG_OK, "%s", vkg_last_error());
    vkg_cmdmem_fail_slabs(vkg_ctx.cmd_mem, 1 << 30);
    vkg_scope_begin();
    vkg_tensor *y = a;
    int done = 0;
    for (; done < 20000 && y; done++) y = vkg_add(y, b);
    cr_assert_null(y, "a chain of 20,000 adds needs more command memory than the first slab");
    cr_assert_eq(vkg_last_status(), VKG_ERR_OUT_OF_MEMORY, "%s", vkg_last_error());
    cr_assert(strstr(vkg_last_error(), "add: out of host memory to record commands"), "%s", vkg_last_error());
    cr_log_info("out of command memory after %d adds: %s", done, vkg_last_error());
    vkg_scope_end();
    vkg_cmdmem_fail_slabs(vkg_ctx.cmd_mem, 0);
    vkg_scope_begin();
    y = a;
    for (int i = 0; i < 3000 && y; i++) y = vkg_add(y, b);
    float got[64], want[64];
    for (int i = 0; i < 64; i++) want[i] = 3000.0f;
    cr_assert_eq(y ? vkg_tensor_read(y, got, sizeof got) : vkg_last_status(), VKG_OK, "%s", vkg_last_error());
    vkgt_assert_close(got, want, 64, 0.0f, 0.0f, "the chain after memory came back");
    vkg_scope_end();
    vkg_free(a);
    vkg_free(b);
}

/* Independent dispatches need no barrier between them. */
VKG_TEST(runtime, independent_ops_share_no_barrier) {
    vkg_tensor *a = vkg_ones(VKG_SHAPE(100));
    vkg_sync();
    vkg_stream_stats before = vkg_stream_stats_get();
    vkg_tensor *outs[8];
    for (int i = 0; i < 8; i++) outs[i] = vkg_mul_scalar(a, (float)i);
    vkg_stream_stats mid = vkg_stream_stats_get();
    cr_assert_eq(mid.barriers - before.barriers, 0, "reads of one tensor by independent ops need no barrier");
    vkg_tensor *s = vkg_add(outs[3], outs[5]); /* reads what two earlier dispatches wrote: one barrier */
    cr_assert_eq(vkg_stream_stats_get().barriers - mid.barriers, 1);
    cr_assert_eq(vkg_item(vkg_sum_all(s)), 800.0f);
}

static void cache_dir_for_test(char *dir, size_t size) {
    snprintf(dir, size, "/tmp/vkgrad-cache-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void small_workload(void) {
    vkg_scope_begin();
    vkg_tensor *a = vkg_arange(0.0f, 12.0f, 1.0f);
    vkg_tensor *m = vkg_reshape(a, VKG_SHAPE(3, 4));
    vkg_tensor *r = vkg_sum(vkg_relu(vkg_matmul(m, vkg_transpose(m, 0, 1))), 1, false);
    float got[3];
    cr_assert_eq(vkg_tensor_read(r, got, sizeof got), VKG_OK, "%s", vkg_last_error());
    cr_assert_eq(got[0], 14.0f + 38.0f + 62.0f);
    vkg_scope_end();
}

static char *only_file(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s/pipelines-*.bin 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    static char path[512];
    path[0] = '\0';
    if (p && fgets(path, sizeof path, p)) path[strcspn(path, "\n")] = '\0';
    if (p) pclose(p);
    return path;
}

/* The cache is saved at shutdown and loaded at the next init; hits are reported by the driver's
 * creation feedback. lavapipe 22.3 keeps no pipelines in VkPipelineCache (its data is the
 * 32-byte header alone), so there the second run can load the file but not skip compiling. */
VKG_TEST(runtime, pipeline_cache_round_trip) {
    vkg_shutdown();
    char dir[64];
    cache_dir_for_test(dir, sizeof dir);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .cache_dir = dir }), VKG_OK, "%s", vkg_last_error());
    small_workload();
    uint64_t created = vkg_stream_stats_get().pipelines_created;
    cr_assert_gt(created, 0);
    vkg_shutdown();
    const char *path = only_file(dir);
    cr_assert(path[0], "no cache file was written in %s", dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_geq(st.st_size, 56 + 32, "the file holds our header and the driver's");
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .cache_dir = dir }), VKG_OK, "%s", vkg_last_error());
    vkg_stream_stats s = vkg_stream_stats_get();
    cr_assert_eq(s.pipeline_cache_loaded, (uint64_t)st.st_size - 56, "the whole driver cache is loaded");
    small_workload();
    s = vkg_stream_stats_get();
    bool driver_keeps_pipelines = st.st_size > 56 + 32;
    cr_log_info("pipeline cache: %lld bytes on disk, %llu of %llu pipelines from cache", (long long)st.st_size,
                (unsigned long long)s.pipelines_from_cache, (unsigned long long)s.pipelines_created);
    if (driver_keeps_pipelines)
        cr_assert_eq(s.pipelines_from_cache, s.pipelines_created, "a driver that stores pipelines must hit them");
    vkg_shutdown();
    unlink(path);
    rmdir(dir);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK);
}

/* A corrupt or foreign cache file is ignored (with a log line), never handed to the driver,
 * and replaced by a good one at shutdown. */
VKG_TEST(runtime, corrupt_pipeline_cache_is_ignored) {
    vkg_shutdown();
    char dir[64];
    cache_dir_for_test(dir, sizeof dir);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .cache_dir = dir }), VKG_OK);
    small_workload();
    vkg_shutdown();
    char path[512];
    snprintf(path, sizeof path, "%s", only_file(dir));
    const char *garbage[] = { "junk", "VKGPIPE1 but then nothing valid at all, just bytes and more bytes......" };
    for (int k = 0; k < 3; k++) {
        FILE *f = fopen(path, k == 2 ? "r+b" : "wb");
        cr_assert_not_null(f);
        if (k < 2) fputs(garbage[k], f);
        else { /* flip one byte of the driver data: the checksum must catch it */
            fseek(f, -1, SEEK_END);
            int c = fgetc(f);
            fseek(f, -1, SEEK_END);
            fputc(c ^ 0x5a, f);
        }
        fclose(f);
        cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .cache_dir = dir }), VKG_OK, "%s", vkg_last_error());
        cr_assert_eq(vkg_stream_stats_get().pipeline_cache_loaded, 0, "case %d: a bad file must not be loaded", k);
        small_workload();
        vkg_shutdown();
        cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true, .cache_dir = dir }), VKG_OK);
        cr_assert_gt(vkg_stream_stats_get().pipeline_cache_loaded, 0, "case %d: the file was not rewritten", k);
        vkg_shutdown();
    }
    unlink(path);
    rmdir(dir);
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK);
}

VKG_TEST(runtime, stats_and_sync_mode) {
    small_workload();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    vkg_stats_print(f);
    fclose(f);
    cr_assert(strstr(buf, "submits") && strstr(buf, "dispatches") && strstr(buf, "barriers") &&
                  strstr(buf, "pipelines created") && strstr(buf, "peak memory") && strstr(buf, "command memory"),
              "%s", buf);
    free(buf);
    vkg_shutdown();
    setenv("VKG_SYNC", "1", 1); /* debug mode: a wait after every op */
    cr_assert_eq(vkg_init(&(vkg_init_desc){ .validate = true }), VKG_OK);
    unsetenv("VKG_SYNC");
    vkg_stream_stats before = vkg_stream_stats_get();
    small_workload();
    vkg_stream_stats s = vkg_stream_stats_get();
    cr_assert_geq(s.submits - before.submits, s.dispatches - before.dispatches);
}

VKG_TEST(runtime, memory_is_cached_and_reused) {
    vkg_memory_stats m0 = vkg_memory_stats_get();
    vkg_scope_begin();
    for (int i = 0; i < 100; i++) vkg_zeros(VKG_SHAPE(1000));
    vkg_memory_stats m1 = vkg_memory_stats_get();
    cr_assert_geq(m1.in_use - m0.in_use, 100 * 4000);
    vkg_scope_end();
    vkg_memory_stats m2 = vkg_memory_stats_get();
    cr_assert_eq(m2.in_use, m0.in_use, "scope end frees every tensor made in it");
    cr_assert_geq(m2.peak, m1.in_use);
    cr_assert_gt(m2.cached, 0);
    cr_assert_eq(m2.allocations, m1.allocations, "freed memory stays cached, not given back");
    vkg_scope_begin();
    for (int i = 0; i < 100; i++) vkg_zeros(VKG_SHAPE(1000));
    cr_assert_eq(vkg_memory_stats_get().device_bytes, m1.device_bytes, "the cache is reused");
    vkg_scope_end();
    vkg_memory_empty_cache();
    cr_assert_eq(vkg_memory_stats_get().allocations, 0);
    small_workload(); /* and memory comes back on demand */
}
