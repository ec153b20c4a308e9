/* The install check's program: built against an installed vkgrad (find_package or pkg-config),
 * it runs the header's example, sum(relu(x - 2)) over x = 1..6, and compares with the known
 * answer 0+0+1+2+3+4 = 10. Prints "install check: ok 10" and exits 0, or says what failed. */
#include <math.h>
#include <stdio.h>

#include <vkgrad.h>

int main(void) {
    if (vkg_init(&(vkg_init_desc){ 0 }) != VKG_OK) {
        fprintf(stderr, "install check: vkg_init: %s\n", vkg_last_error());
        return 1;
    }
    vkg_scope_begin();
    vkg_tensor *x = vkg_from_data(VKG_SHAPE(2, 3), (float[]){ 1, 2, 3, 4, 5, 6 });
    vkg_tensor *rows = vkg_sum(vkg_relu(vkg_sub_scalar(x, 2.0f)), 1, false); /* (2,): 1, 9 */
    vkg_tensor *total = vkg_sum_all(rows);
    float value = total ? vkg_item(total) : NAN;
    int ok = total && value == 10.0f;
    if (!total || isnan(value)) fprintf(stderr, "install check: %s\n", vkg_last_error());
    vkg_scope_end();
    vkg_shutdown();
    if (!ok) {
        fprintf(stderr, "install check: got %g, want 10\n", (double)value);
        return 1;
    }
    printf("install check: ok %g\n", (double)value);
    return 0;
}
