// Push constants of the conv group's convolution and pooling shaders (conv2d*.comp,
// pool2d*.comp). Mirrors vkg_conv_push in lib/ops/conv.c: change both.
#include "common.glsl"

layout(push_constant) uniform Push {
    uint N, C, H, W;      // input x (N, C, H, W)
    uint K, OH, OW, G;    // output channels (pooling: C), output size, groups
    uint kh, kw, sh, sw;  // kernel, stride
    uint ph, pw, dh, dw;  // padding, dilation
    ivec4 xs;             // strides of the strided input x (N, C, H, W), in elements
    uvec4 off;            // offset of binding 0, 1, 2, 3, in elements
    uint flags;           // bit 0: conv2d has a bias; bit 1: pool2d_backward by windows (tiles);
                          // bit 2: pooling by pairs of columns (PAIRS in pool2d*.comp);
                          // bit 3: max pooling with relu (RELU in pool2d.comp)
    uint items;           // work items of this dispatch (grid-stride)
    uint per, base;       // conv2d_backward_weight: (n, oh) rows per chunk, items per chunk;
                          // the run kernels (RUNS below): per = items per run
} pc;

// The run kernels (im2col, col2im, pooling) walk runs of pc.per consecutive items, the j-th run
// being items [j per, min(items, (j + 1) per)): the divisions that split an item index into
// (n, c, h, w) happen once per run, and a run's later items step counters. lavapipe runs each
// integer division lane by lane (x86 has no vector divide), so per-item division dominated
// these kernels. GPUs get runs of 1 item (lib/ops/conv.c), the coalesced grid-stride loop.
#define RUNS (pc.items + pc.per - 1u) / pc.per

// Element index of x[n, c, h, w] through the strides.
uint x_index(uint n, uint c, int h, int w) {
    return uint(int(pc.off.y) + int(n) * pc.xs.x + int(c) * pc.xs.y + h * pc.xs.z + w * pc.xs.w);
}
