/* Runtime tests: init and device choice, validation layer really active, batched submits,
 * the on-disk pipeline cache, statistics. */
#include <stdlib.h>

#include "support.h"

VKG_TEST(runtime, init_and_device_line) {
    const vkg_device_info *d = vkg_device();
    cr_assert_not_null(d);
    cr_assert_gt(d->max_storage_buffer_range, 0);
    cr_assert_gt(d->subgroup_size, 0);
}
