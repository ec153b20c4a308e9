/* Tutorial 04: autograd from scratch. A scalar reverse-mode engine in a page of C (after
 * micrograd), the same expression through vkgrad's tensors, the gradients compared, and both
 * checked against finite differences. README.md walks through it. */
#include <math.h>
#include <stdio.h>

#include "vkgrad.h"

/* ---- a scalar engine: every value remembers how it was made --------------------------------- */
typedef enum { LEAF, ADD, MUL, TANH } kind;

typedef struct value {
    double data, grad;
    kind op;
    struct value *in[2]; /* the values it was made from */
    int visited;
} value;

static value pool[64]; /* enough for this page: no malloc, no free */
static int used;

static value *leaf(double x) {
    value *v = &pool[used++];
    *v = (value){ .data = x, .op = LEAF };
    return v;
}

static value *make(kind op, value *a, value *b, double data) {
    value *v = leaf(data);
    v->op = op;
    v->in[0] = a;
    v->in[1] = b;
    return v;
}

static value *add(value *a, value *b) { return make(ADD, a, b, a->data + b->data); }
static value *mul(value *a, value *b) { return make(MUL, a, b, a->data * b->data); }
static value *tanh_v(value *a) { return make(TANH, a, NULL, tanh(a->data)); }

/* The chain rule for one value: pass its gradient to the values it was made from. */
static void backward_one(value *v) {
    switch (v->op) {
    case ADD: v->in[0]->grad += v->grad; v->in[1]->grad += v->grad; break;
    case MUL: v->in[0]->grad += v->in[1]->data * v->grad; v->in[1]->grad += v->in[0]->data * v->grad; break;
    case TANH: v->in[0]->grad += (1 - v->data * v->data) * v->grad; break;
    case LEAF: break;
    }
}

/* Topological order: every value after the values it was made from. */
static void topo(value *v, value **order, int *n) {
    if (v->visited) return;
    v->visited = 1;
    for (int i = 0; i < 2; i++)
        if (v->in[i]) topo(v->in[i], order, n);
    order[(*n)++] = v;
}

static void backward(value *out) {
    value *order[64];
    int n = 0;
    topo(out, order, &n);
    out->grad = 1.0;                                    /* d out / d out */
    for (int i = n - 1; i >= 0; i--) backward_one(order[i]); /* from the output back */
}

/* ---- the expression: one neuron, o = tanh(x1 w1 + x2 w2 + b) -------------------------------- */
static double neuron(double x1, double x2, double w1, double w2, double b) { return tanh(x1 * w1 + x2 * w2 + b); }

int main(void) {
    const double X1 = 2.0, X2 = 0.0, W1 = -3.0, W2 = 1.0, B = 6.8813735870195432;

    value *x1 = leaf(X1), *x2 = leaf(X2), *w1 = leaf(W1), *w2 = leaf(W2), *b = leaf(B);
    value *o = tanh_v(add(add(mul(x1, w1), mul(x2, w2)), b));
    backward(o);
    printf("scalar engine: o = %.4f\n", o->data);
    printf("  grad x1 %.4f  w1 %.4f  x2 %.4f  w2 %.4f  b %.4f\n", x1->grad, w1->grad, x2->grad, w2->grad, b->grad);

    /* The same through vkgrad: x and w as 2-vectors, the graph recorded by the ops themselves. */
    if (vkg_init(NULL) != VKG_OK) return 1;
    vkg_scope_begin();
    vkg_tensor *x = vkg_requires_grad(vkg_from_data(VKG_SHAPE(2), (float[]){ (float)X1, (float)X2 }), true);
    vkg_tensor *w = vkg_requires_grad(vkg_from_data(VKG_SHAPE(2), (float[]){ (float)W1, (float)W2 }), true);
    vkg_tensor *bt = vkg_requires_grad(vkg_scalar((float)B), true);
    vkg_tensor *ot = vkg_tanh(vkg_add(vkg_sum_all(vkg_mul(x, w)), bt));
    vkg_backward(ot);
    float gx[2], gw[2], gb;
    vkg_tensor_read(vkg_grad(x), gx, sizeof gx);
    vkg_tensor_read(vkg_grad(w), gw, sizeof gw);
    vkg_tensor_read(vkg_grad(bt), &gb, sizeof gb);
    printf("vkgrad:        o = %.4f\n", vkg_item(ot));
    printf("  grad x1 %.4f  w1 %.4f  x2 %.4f  w2 %.4f  b %.4f\n", gx[0], gw[0], gx[1], gw[1], gb);
    double worst = fmax(fmax(fabs(gx[0] - x1->grad), fabs(gw[0] - w1->grad)),
                        fmax(fmax(fabs(gx[1] - x2->grad), fabs(gw[1] - w2->grad)), fabs(gb - b->grad)));
    printf("the two agree to 1e-5: %s\n", worst < 1e-5 ? "yes" : "no");
    vkg_scope_end();
    vkg_shutdown();

    /* Finite differences: nudge one input both ways and watch the output. */
    double h = 1e-6;
    double dw1 = (neuron(X1, X2, W1 + h, W2, B) - neuron(X1, X2, W1 - h, W2, B)) / (2 * h);
    double dx1 = (neuron(X1 + h, X2, W1, W2, B) - neuron(X1 - h, X2, W1, W2, B)) / (2 * h);
    printf("finite differences: d o/d w1 = %.4f, d o/d x1 = %.4f\n", dw1, dx1);
    return 0;
}
