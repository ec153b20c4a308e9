/* Backward rules of the nn group's ops (VKG_KIND_NN), as ops, like lib/autograd/backward.c. */
#include "autograd/autograd.h"

vkg_status vkg_backward_nn(vkg_tensor *t, vkg_tensor *g) {
    (void)g;
    return vkg_fail(VKG_ERR_INVALID, "autograd: %s has no backward rule", vkg_node_name(t->node->op));
}
