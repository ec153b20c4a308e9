/* vkgrad-info: every Vulkan device with its capabilities (the default marked), and with --ops
 * the op table. Needs no vkg_init for the device list. */
#include <stdio.h>
#include <string.h>

#include "vkgrad.h"

static const char *kind_name(vkg_op_kind k) {
    switch (k) {
    case VKG_KIND_UNARY: return "unary";
    case VKG_KIND_BINARY: return "binary";
    case VKG_KIND_TERNARY: return "ternary";
    case VKG_KIND_REDUCE: return "reduce";
    case VKG_KIND_MATMUL: return "matmul";
    case VKG_KIND_COPY: return "copy";
    case VKG_KIND_FILL: return "fill";
    case VKG_KIND_RANDOM: return "random";
    case VKG_KIND_NN: return "nn";
    case VKG_KIND_CONV: return "conv";
    case VKG_KIND_SEQ: return "seq";
    }
    return "?";
}

static void print_ops(void) {
    printf("%-12s %-8s %-9s %-9s\n", "op", "kind", "backward", "reference");
    for (int i = 0; i < VKG_OP_COUNT; i++) {
        const vkg_op_info *o = &vkg_op_table[i];
        printf("%-12s %-8s %-9s %-9s\n", o->name, kind_name(o->kind), o->has_backward ? "yes" : "no",
               o->has_reference ? "yes" : "no");
    }
    printf("%d ops\n", VKG_OP_COUNT);
}

static void print_device(const vkg_device_info *d) {
    char line[1024];
    vkg_device_line(d, line, sizeof line);
    printf("%s device %d: %s\n", d->is_default ? "*" : " ", d->index, line);
    char uuid[40];
    for (int i = 0; i < 16; i++) snprintf(uuid + 2 * i, 3, "%02x", d->device_uuid[i]);
    printf("    vendor 0x%04x device 0x%04x, driver %s (%s), version 0x%08x, uuid %s\n", d->vendor_id, d->device_id,
           d->driver_name, d->driver_info, d->driver_version, uuid);
    printf("    workgroup max %u x %u x %u, %u invocations; groups max %u x %u x %u; push constants %u bytes\n",
           d->max_workgroup_size[0], d->max_workgroup_size[1], d->max_workgroup_size[2], d->max_workgroup_invocations,
           d->max_workgroup_count[0], d->max_workgroup_count[1], d->max_workgroup_count[2], d->max_push_constants);
    printf("    storage binding max %llu bytes; allocation max %llu bytes, %u allocations; timestamp period %g ns\n",
           (unsigned long long)d->max_storage_buffer_range, (unsigned long long)d->max_allocation_size,
           d->max_allocation_count, d->timestamp_period);
    printf("    fp16 %s, int8 %s, fp64 %s, 16-bit storage %s, cooperative matrix %s, push descriptors %s\n",
           d->fp16 ? "yes" : "no", d->int8 ? "yes" : "no", d->fp64 ? "yes" : "no", d->storage16 ? "yes" : "no",
           d->cooperative_matrix ? "yes" : "no", d->push_descriptor ? "yes" : "no");
    for (uint32_t h = 0; h < d->heap_count; h++)
        printf("    heap %u: %.2f GiB%s\n", h, (double)d->heap_size[h] / (1u << 30),
               d->heap_device_local[h] ? " device-local" : "");
}

int main(int argc, char **argv) {
    bool ops = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ops") == 0) ops = true;
        else {
            fprintf(stderr, "usage: vkgrad-info [--ops]\n");
            return 2;
        }
    }
    vkg_device_info devs[16];
    int n = vkg_device_list(devs, 16);
    if (n < 0) {
        fprintf(stderr, "vkgrad-info: %s\n", vkg_last_error());
        return 1;
    }
    printf("vkgrad %s: %d Vulkan device%s (* = default; choose with VKG_DEVICE=index or name)\n", VKG_VERSION_STRING, n,
           n == 1 ? "" : "s");
    for (int i = 0; i < n && i < 16; i++) print_device(&devs[i]);
    if (ops) print_ops();
    return n > 0 ? 0 : 1;
}
