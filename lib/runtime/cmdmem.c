/* The host allocator vkgrad gives its command pool (VkAllocationCallbacks).
 *
 * Why: lavapipe records every command into host memory taken from the pool's allocator, ~14
 * small allocations a dispatch (counted through these callbacks), and frees them all when the
 * command buffer begins again. Through glibc's malloc that pattern (tens of thousands of blocks
 * allocated, then all freed) misses the thread cache and walks the bins: ~4,000 of the ~5,700
 * instructions a recorded dispatch costs the calling thread, 70% of the driver's recording work
 * (bench/README.md, "Eleventh session").
 * Here a block is a pop from a free list of its size class, and a free is a push: the same
 * recording costs about a third of the time.
 *
 * Blocks of up to CLASS_MAX bytes (alignment up to 16) are carved from slabs and kept on one
 * free list per 16-byte size class; larger or more aligned requests go to the C library. Every
 * block carries a 16-byte header naming its class, so a free needs no size. Memory is held at
 * the high-water mark of the commands recorded at once and returned when the pool is destroyed.
 *
 * Out of host memory: one slab is kept in reserve and served when malloc fails, and the
 * allocator reports itself low until a new reserve can be had. vkg_dispatch asks before it
 * records (vkg_cmdmem_ready) and fails the op with a message instead: lavapipe 22.3 checks most
 * of its command allocations, but its vkCmdPushDescriptorSetKHR copies into a failed one and
 * crashes (found by failing this allocator after N blocks).
 *
 * Threads: drivers take a pool's command memory inside the calls that record into, reset or
 * free its command buffers, and the application must synchronize those (a command pool is
 * externally synchronized); vkgrad is called from one thread at a time (vkgrad.h), so the
 * lists need no lock. A driver that used the pool's allocator from threads of its own would
 * need one here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

#define HEADER 16               /* keeps blocks 16-byte aligned: slabs come from malloc         */
#define CLASS_MAX 1024          /* bytes: lavapipe's per-command blocks are 16-272               */
#define CLASSES (CLASS_MAX / 16 + 1)
#define SLAB (256u * 1024u)     /* bytes carved at a time                                       */
#define BIG UINT32_MAX          /* class of a block from the C library                          */

typedef struct header {
    uint32_t cls;               /* size class (bytes / 16), or BIG                              */
    uint32_t lead;              /* BIG: bytes from the C library's pointer to the block          */
    uint64_t size;              /* bytes asked for: what a reallocation copies                  */
} header;

typedef struct slab {
    struct slab *next;
} slab;

struct vkg_cmdmem {
    void *free[CLASSES];        /* per class: blocks given back, linked through their first word */
    slab *slabs;
    slab *reserve;              /* served when malloc fails; NULL: taken, the allocator is low    */
    int fail_slabs;             /* tests: slab requests that fail as if the host were out of memory */
    uint8_t *bump, *end;        /* the current slab's unused part                                */
    size_t held;                /* bytes in slabs                                                */
    VkAllocationCallbacks cb;
};

static inline header *header_of(void *p) { return (header *)((uint8_t *)p - HEADER); }

static slab *slab_new(vkg_cmdmem *m) {
    if (m->fail_slabs > 0) {
        m->fail_slabs--;
        return NULL;
    }
    return malloc(SLAB);
}

static void *big_alloc(size_t size, size_t align) {
    size_t lead = align > HEADER ? align : HEADER;
    if (lead > UINT32_MAX || size > SIZE_MAX - 2 * lead) return NULL;
    /* aligned_alloc wants a multiple of the alignment */
    uint8_t *raw = aligned_alloc(lead, (size + lead + lead - 1) / lead * lead);
    if (!raw) return NULL;
    uint8_t *p = raw + lead;
    *header_of(p) = (header){ .cls = BIG, .lead = (uint32_t)lead, .size = size };
    return p;
}

static void *VKAPI_PTR cmdmem_alloc(void *user, size_t size, size_t align, VkSystemAllocationScope scope) {
    (void)scope;
    vkg_cmdmem *m = user;
    if (size > CLASS_MAX || align > HEADER) return big_alloc(size, align);
    size_t cls = size ? (size + 15) / 16 : 1;
    uint8_t *p = m->free[cls];
    if (p) {
        memcpy(&m->free[cls], p, sizeof(void *));
    } else {
        size_t need = HEADER + cls * 16;
        if ((size_t)(m->end - m->bump) < need) {
            slab *s = slab_new(m);
            if (!s) {
                if (!m->reserve) return NULL;
                s = m->reserve;
                m->reserve = NULL;
            }
            s->next = m->slabs;
            m->slabs = s;
            m->held += SLAB;
            m->bump = (uint8_t *)s + HEADER; /* the slab's link takes the first 16 bytes */
            m->end = (uint8_t *)s + SLAB;
        }
        p = m->bump + HEADER;
        m->bump += need;
    }
    *header_of(p) = (header){ .cls = (uint32_t)cls, .size = size };
    return p;
}

static void VKAPI_PTR cmdmem_free(void *user, void *p) {
    if (!p) return;
    vkg_cmdmem *m = user;
    header *h = header_of(p);
    if (h->cls == BIG) {
        free((uint8_t *)p - h->lead);
        return;
    }
    memcpy(p, &m->free[h->cls], sizeof(void *));
    m->free[h->cls] = p;
}

static void *VKAPI_PTR cmdmem_realloc(void *user, void *p, size_t size, size_t align, VkSystemAllocationScope scope) {
    if (!p) return cmdmem_alloc(user, size, align, scope);
    if (size == 0) {
        cmdmem_free(user, p);
        return NULL;
    }
    header *h = header_of(p);
    if (h->cls != BIG && size <= (size_t)h->cls * 16 && align <= HEADER) {
        h->size = size; /* still fits its class */
        return p;
    }
    void *q = cmdmem_alloc(user, size, align, scope);
    if (!q) return NULL; /* the spec: the original stays valid */
    memcpy(q, p, h->size < size ? h->size : size);
    cmdmem_free(user, p);
    return q;
}

vkg_cmdmem *vkg_cmdmem_new(void) {
    vkg_cmdmem *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (!(m->reserve = malloc(SLAB))) {
        free(m);
        return NULL;
    }
    m->cb = (VkAllocationCallbacks){ .pUserData = m, .pfnAllocation = cmdmem_alloc,
                                     .pfnReallocation = cmdmem_realloc, .pfnFree = cmdmem_free };
    return m;
}

const VkAllocationCallbacks *vkg_cmdmem_callbacks(const vkg_cmdmem *m) { return m ? &m->cb : NULL; }

size_t vkg_cmdmem_held(const vkg_cmdmem *m) { return m ? m->held : 0; }

bool vkg_cmdmem_ready(vkg_cmdmem *m) {
    if (!m || m->reserve) return true;
    m->reserve = slab_new(m);
    return m->reserve != NULL;
}

void vkg_cmdmem_fail_slabs(vkg_cmdmem *m, int n) {
    if (m) m->fail_slabs = n;
}

void vkg_cmdmem_free(vkg_cmdmem *m) {
    if (!m) return;
    while (m->slabs) {
        slab *s = m->slabs;
        m->slabs = s->next;
        free(s);
    }
    free(m->reserve);
    free(m);
}
