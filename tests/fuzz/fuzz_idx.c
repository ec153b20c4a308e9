/* libFuzzer target for the IDX memory parser (plain and gzip images): it must refuse bad input
 * with a status, never crash, read out of bounds or leak. Every data byte is read so that ASan
 * checks the buffer really is count * item_size long. */
#include <stddef.h>
#include <stdint.h>

#include "idx.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vkg_idx idx;
    if (vkg_idx_parse(data, size, &idx) == VKG_OK) {
        const uint8_t *p = idx.data;
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < idx.count * idx.item_size; i++) sum ^= p[i];
        (void)sum;
    }
    vkg_idx_free(&idx);
    return 0;
}
