/* Free lists for the small host structs that every op makes and frees: a tensor, its storage
 * record and, under autograd, its graph node. In an eager chain of tiny adds the two calloc/free
 * pairs were ~1,000 of the op's ~9,000 instructions on the calling thread, and the chain ran ~15%
 * faster without them (bench/README.md, "Tenth session"; the driver's command memory still came
 * from the same heap then, and our churn fragmented it). A struct given back is kept for the next
 * request of its kind, up to a cap. Sanitizer builds bypass the lists, so that a use after free
 * is still reported. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#define RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECYCLE 0
#endif
#endif
#ifndef RECYCLE
#define RECYCLE 1
#endif

#define RECYCLE_CAP 16384 /* structs kept per kind (~5 MB of tensors at most): a scope of that many ops */

typedef struct spare {
    struct spare *next;
} spare;

vkg_recycler vkg_spare_tensors = { .size = sizeof(vkg_tensor) };
vkg_recycler vkg_spare_storage = { .size = sizeof(vkg_storage) };
vkg_recycler vkg_spare_nodes = { .size = sizeof(vkg_node) };

void *vkg_recycled_calloc(vkg_recycler *r) {
    spare *s = r->head;
    if (!RECYCLE || !s) return calloc(1, r->size);
    r->head = s->next;
    r->count--;
    memset(s, 0, r->size);
    return s;
}

void vkg_recycle(vkg_recycler *r, void *p) {
    if (!p) return;
    if (!RECYCLE || r->count >= RECYCLE_CAP || !vkg_ctx.initialized) { /* none kept past vkg_shutdown */
        free(p);
        return;
    }
    spare *s = p;
    s->next = r->head;
    r->head = s;
    r->count++;
}

static void drain(vkg_recycler *r) {
    while (r->head) {
        spare *s = r->head;
        r->head = s->next;
        free(s);
    }
    r->count = 0;
}

void vkg_recyclers_drain(void) {
    drain(&vkg_spare_tensors);
    drain(&vkg_spare_storage);
    drain(&vkg_spare_nodes);
}
