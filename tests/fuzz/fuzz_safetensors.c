/* libFuzzer target for the safetensors memory parser: bad input must give a status, never a
 * crash, an out-of-bounds read or a leak. Every accepted tensor is looked up by name and its
 * bytes are read, so ASan checks that each one lies inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vkgrad/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    vkg_set_error_handler(vkg_error_handler_silent, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vkg_safetensors st;
    if (vkg_safetensors_parse(data, size, &st) == VKG_OK) {
        volatile uint8_t sum = 0;
        for (int i = 0; i < st.count; i++) {
            const vkg_st_tensor *t = vkg_safetensors_find(&st, st.tensors[i].name);
            if (!t) __builtin_trap();
            const uint8_t *p = t->data;
            for (size_t k = 0; k < t->nbytes; k++) sum ^= p[k];
        }
        for (int i = 0; i < st.metadata_count; i++)
            sum ^= (uint8_t)strlen(st.metadata_keys[i]) ^ (uint8_t)strlen(st.metadata_values[i]);
        (void)sum;
    }
    vkg_safetensors_free(&st);
    return 0;
}
