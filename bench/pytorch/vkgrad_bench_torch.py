#!/usr/bin/python3
# vkgrad-bench's cases in PyTorch: the same case names, settings and method (check, calibrate,
# warm up, repeat; median, min, p90, spread), written as a vkgrad-bench/1 report
# (bench/SCHEMA.md), so `vkgrad-bench compare vkgrad.json torch.json` puts vkgrad and PyTorch
# side by side on one device. Optional: nothing in the build or the tests needs it.
#
#   /usr/bin/python3 bench/pytorch/vkgrad_bench_torch.py run --suite micro --threads 1 --out t1.json
#   /usr/bin/python3 bench/pytorch/vkgrad_bench_torch.py best t1.json t2.json --out best.json
#   /usr/bin/python3 bench/pytorch/vkgrad_bench_torch.py validate best.json
#
# Debian's python3-torch lives in /usr/bin/python3 (a pyenv or venv python3 earlier on PATH does
# not see it). See bench/pytorch/README.md.
import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

SCHEMA = "vkgrad-bench/1"
SCHEMA_VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

QUICK, MICRO, MODELS = 1, 2, 4
SUITES = {"quick": QUICK, "micro": MICRO, "models": MODELS}
Q, M = QUICK, MICRO
ALL = -100  # reduce over all elements (VKG_REF_ALL)

# ---- the case table: bench/cases.c, row for row (names, groups, suites, sizes, repetition caps) --
# (name, group, suites, kind, op, params, max_reps); params per kind as in cases.c:
# matmul (batch or 0, M, K, N); unary (rows, cols); binary (a rows, a cols, b rows or 0, b cols);
# reduce (rows, cols, axis or ALL); copy (rows, cols); randn (n); copybw (MiB); dispatch (count).
CASES = [
    ("peak/fp32 fma", "peak", Q | M, "fma32", None, (), 0),
    ("peak/fp16 fma", "peak", Q | M, "fma16", None, (), 0),
    ("peak/copy 64MiB vec4", "peak", Q | M, "copybw", None, (64,), 0),
    ("launch/dispatch x500", "launch", Q | M, "dispatch", None, (500,), 0),
    ("launch/submit round trip", "launch", Q | M, "roundtrip", None, (), 0),
    ("host/eager chain 10000 adds vs raw Vulkan", "launch", M, "host", None, (10000, 0), 5),
    ("host/mlp replay vs eager step", "launch", M | MODELS, "host", None, (128, 1), 0),
    ("matmul/64", "matmul", Q | M, "matmul", None, (0, 64, 64, 64), 0),
    ("matmul/128", "matmul", M, "matmul", None, (0, 128, 128, 128), 0),
    ("matmul/256", "matmul", Q | M, "matmul", None, (0, 256, 256, 256), 0),
    ("matmul/512", "matmul", Q | M, "matmul", None, (0, 512, 512, 512), 0),
    ("matmul/1024", "matmul", Q | M, "matmul", None, (0, 1024, 1024, 1024), 0),
    ("matmul/2048", "matmul", M, "matmul", None, (0, 2048, 2048, 2048), 5),
    ("matmul/4096", "matmul", M, "matmul", None, (0, 4096, 4096, 4096), 2),
    ("matmul/f16 1024", "matmul", M, "matmul", None, (0, 1024, 1024, 1024, 1), 0),
    ("matmul/f16 4096", "matmul", M, "matmul", None, (0, 4096, 4096, 4096, 1), 2),
    ("matmul/mlp 128x784 @ 784x512", "matmul", Q | M, "matmul", None, (0, 128, 784, 512), 0),
    ("matmul/mlp 128x512 @ 512x256", "matmul", Q | M, "matmul", None, (0, 128, 512, 256), 0),
    ("matmul/mlp 128x256 @ 256x10", "matmul", Q | M, "matmul", None, (0, 128, 256, 10), 0),
    ("matmul/gpt qkv 2048x128 @ 128x384", "matmul", Q | M, "matmul", None, (0, 2048, 128, 384), 0),
    ("matmul/gpt scores 128x(64x32 @ 32x64)", "matmul", Q | M, "matmul", None, (128, 64, 32, 64), 0),
    ("matmul/gpt values 128x(64x64 @ 64x32)", "matmul", M, "matmul", None, (128, 64, 64, 32), 0),
    ("matmul/gpt proj 2048x128 @ 128x128", "matmul", M, "matmul", None, (0, 2048, 128, 128), 0),
    ("matmul/gpt mlp up 2048x128 @ 128x512", "matmul", M, "matmul", None, (0, 2048, 128, 512), 0),
    ("matmul/gpt mlp down 2048x512 @ 512x128", "matmul", M, "matmul", None, (0, 2048, 512, 128), 0),
    ("matmul/gpt logits 2048x128 @ 128x256", "matmul", Q | M, "matmul", None, (0, 2048, 128, 256), 0),
    ("elementwise/add bias 128x512 + 512", "elementwise", Q | M, "binary", "add", (128, 512, 0, 512), 0),
    ("elementwise/add 2048x128 + 2048x128", "elementwise", M, "binary", "add", (2048, 128, 2048, 128), 0),
    ("elementwise/mul 2048x512 * 2048x512", "elementwise", M, "binary", "mul", (2048, 512, 2048, 512), 0),
    ("elementwise/relu 128x512", "elementwise", Q | M, "unary", "relu", (128, 512), 0),
    ("elementwise/gelu 2048x512", "elementwise", Q | M, "unary", "gelu", (2048, 512), 0),
    ("elementwise/exp 2048x256", "elementwise", M, "unary", "exp", (2048, 256), 0),
    ("elementwise/tanh 32x512", "elementwise", M, "unary", "tanh", (32, 512), 0),
    ("elementwise/relu 4096x4096", "elementwise", M, "unary", "relu", (4096, 4096), 0),
    ("reduce/sum rows 2048x256", "reduce", Q | M, "reduce", "sum", (2048, 256, 1), 0),
    ("reduce/max rows 2048x256", "reduce", M, "reduce", "max", (2048, 256, 1), 0),
    ("reduce/sum cols 128x512", "reduce", M, "reduce", "sum", (128, 512, 0), 0),
    ("reduce/argmax rows 128x10", "reduce", Q | M, "reduce", "argmax", (128, 10, 1), 0),
    ("reduce/mean all 1024x1024", "reduce", Q | M, "reduce", "mean", (1024, 1024, ALL), 0),
    ("memory/transpose copy 2048x128", "memory", Q | M, "copy", None, (2048, 128), 0),
    ("memory/transpose copy 1024x1024", "memory", M, "copy", None, (1024, 1024), 0),
    ("random/randn 1M", "random", Q | M, "randn", None, (1 << 20,), 0),
    # nn ops and the optimizer at the reference models' sizes
    ("nn/conv2d cnn1 128x1x28x28 k3 c32", "nn", Q | M, "conv2d", None, (128, 1, 28, 28, 32, 3, 1), 0),
    ("nn/conv2d cnn2 128x32x14x14 k3 c64", "nn", M, "conv2d", None, (128, 32, 14, 14, 64, 3, 1), 0),
    ("nn/softmax 2048x256", "nn", Q | M, "softmax", None, (2048, 256), 0),
    ("nn/layer_norm 2048x128", "nn", Q | M, "layer_norm", None, (2048, 128), 0),
    ("nn/attention 32x4x64x32", "nn", Q | M, "attention", None, (32, 4, 64, 32, 1), 0),
    ("nn/cross_entropy 2048x256", "nn", Q | M, "cross_entropy", None, (2048, 256), 0),
    ("optim/adam step 1M params", "optim", Q | M, "adam", None, (1 << 20,), 0),
    # the reference models (models/*.c) at their default configurations, on synthetic data of
    # the real shapes: (model, train) and (batch,); the same repetition caps as vkgrad's rows
    ("model/mlp train step", "model", Q | MODELS, "model", ("mlp", True), (128,), 0),
    ("model/mlp inference", "model", MODELS, "model", ("mlp", False), (128,), 0),
    ("model/cnn train step", "model", MODELS, "model", ("cnn", True), (128,), 3),
    ("model/cnn inference", "model", MODELS, "model", ("cnn", False), (128,), 3),
    ("model/lstm train step", "model", MODELS, "model", ("lstm", True), (32,), 0),
    ("model/lstm inference", "model", MODELS, "model", ("lstm", False), (32,), 0),
    ("model/transformer train step", "model", MODELS, "model", ("gpt", True), (32,), 3),
    ("model/transformer inference", "model", MODELS, "model", ("gpt", False), (32,), 3),
]

torch = None  # imported in main(), after the thread variables are set
F = None
np = None


class CaseError(Exception):
    """A case that cannot run or whose check failed: status fail (or skipped), with the reason."""

    def __init__(self, reason, status="fail"):
        super().__init__(reason)
        self.status = status


# ---- inputs: cases.c's splitmix64 fill, so the op cases see vkgrad's exact inputs --------------
def fill(n, lo, hi, seed):
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = ((z >> np.uint64(11)).astype(np.float64) / 9007199254740992.0).astype(np.float32)
    return np.float32(lo) + np.float32(hi - lo) * u


def upload(shape, lo, hi, seed, dev):
    n = int(np.prod(shape)) if shape else 1
    host = fill(n, lo, hi, seed).reshape(shape)
    return host, torch.from_numpy(host.copy()).to(dev)


def shape_str(shape):  # vkg_shape_str: "(128, 512)", "(512,)"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_close(got, want, rtol, atol, what="element"):
    """cases.c's check: max |got - want| / (atol + rtol |want|) must be <= 1; returns that max."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want = np.asarray(want, dtype=np.float64).reshape(-1)
    tol = atol + rtol * np.abs(want)
    d = np.abs(got - want)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(tol > 0, d / np.where(tol > 0, tol, 1), np.where(d > 0, np.inf, 0.0))
    e = np.where(np.isnan(got) != np.isnan(want), np.inf, e)
    e = np.nan_to_num(e, nan=0.0, posinf=np.inf)
    i = int(np.argmax(e)) if e.size else 0
    worst = float(e[i]) if e.size else 0.0
    if worst > 1.0:
        raise CaseError("wrong result: %s %d is %.9g, the reference says %.9g (tolerance %.3g)"
                        % (what, i, got[i], want[i], tol[i]))
    return worst


# ---- one case's state: fn() runs one operation; check() compares its output with a reference --
class Inst:
    def __init__(self):
        self.fn = None          # one operation; returns its output
        self.check = None       # output -> max error as a fraction of the tolerance (raises if > 1)
        self.settings = ""      # exactly vkgrad-bench's settings text for the case
        self.variant = ""
        self.flops = 0.0
        self.bytes = 0.0
        self.note = ""
        self.ops_per_call = 0   # launch cases: fn() runs this many operations, one call a repetition
        self.verify = None      # model cases: runs and checks the case itself (instead of check(fn()))
        self.check_note = ""    # what the check saw, for the note
        self.items = 0.0        # model cases: samples or tokens per operation
        self.items_unit = ""
        self.train = False
        self.unit = None        # launch cases: us/dispatch, us/submit


def blas_name():
    """Which BLAS library this process loaded (Debian's libblas.so.3 alternative)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown BLAS"
    for p in sorted(libs):
        if "openblas" in p:
            return "OpenBLAS (" + os.path.basename(os.path.dirname(p)) + ")"
        if "blis" in p:
            return "BLIS"
        if "mkl" in p:
            return "MKL"
        if "atlas" in p:
            return "ATLAS"
    for p in sorted(libs):
        if "/blas/" in p:
            return "reference BLAS (netlib)"
    return "no BLAS mapped" if not libs else os.path.basename(sorted(libs)[0])


def setup_matmul(p, dev):
    B, m, k, n = p[:4]
    f16 = len(p) > 4 and p[4]
    if f16 and dev.type == "cpu":  # PyTorch 1.13 has no f16 matmul on the CPU
        raise CaseError("PyTorch %s has no float16 matmul on the CPU" % torch.__version__, status="skipped")
    a_shape, b_shape = ((B, m, k), (B, k, n)) if B else ((m, k), (k, n))
    a, ta = upload(a_shape, -1, 1, 1, dev)
    b, tb = upload(b_shape, -1, 1, 2, dev)
    if f16:  # the halves, and their values for the reference, as cases.c
        ta, tb = ta.half(), tb.half()
        a, b = ta.float().cpu().numpy(), tb.float().cpu().numpy()
    s = Inst()
    nb = B or 1
    s.flops = 2.0 * nb * m * n * k
    s.bytes = (2.0 if f16 else 4.0) * nb * (m * k + k * n) + 4.0 * nb * m * n
    dt = "f16" if f16 else "f32"
    if B:
        s.settings = "%s (%d,%d,%d) @ (%d,%d,%d)" % (dt, B, m, k, B, k, n)
    else:
        s.settings = "%s (%d,%d) @ (%d,%d)" % (dt, m, k, k, n)
    # f16 @ f16 in PyTorch is an f16 tensor (f32 sums on the GPU); the check widens it
    s.fn = lambda: torch.matmul(ta, tb)
    big = not B and float(m) * n * k > float(1 << 27)
    rows = [(m - 1) * r // 7 for r in range(8)] if big else None

    def check(y):
        y = y.float().cpu().numpy()  # an f16 product's rounding (2^-11 relative) is inside rtol
        if rows is not None:  # as cases.c: 8 spread rows of the largest products
            return check_close(y[rows], a[rows].astype(np.float64) @ b.astype(np.float64), 1e-3, 1e-5 * k)
        return check_close(y, np.matmul(a.astype(np.float64), b.astype(np.float64)), 1e-3, 1e-5 * k)

    s.check = check
    s.variant = "torch.matmul" + (" [%s]" % blas_name() if dev.type == "cpu" else "")
    return s


def gelu_ref(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


UNARY = {  # op: (PyTorch, float64 reference, variant)
    "relu": (lambda t: torch.relu(t), lambda x: np.maximum(x, 0.0), "torch.relu"),
    "gelu": (lambda t: F.gelu(t, approximate="tanh"), gelu_ref, "F.gelu(approximate='tanh')"),
    "exp": (lambda t: torch.exp(t), lambda x: np.exp(x), "torch.exp"),
    "tanh": (lambda t: torch.tanh(t), lambda x: np.tanh(x), "torch.tanh"),
}


def setup_unary(op, p, dev):
    x, tx = upload((p[0], p[1]), -4.0, 4.0, 3, dev)
    f, ref, name = UNARY[op]
    s = Inst()
    s.bytes = 8.0 * p[0] * p[1]
    s.settings = "f32 (%d,%d)" % (p[0], p[1])
    s.fn = lambda: f(tx)
    s.check = lambda y: check_close(y.cpu().numpy(), ref(x.astype(np.float64)), 1e-4, 1e-5)
    s.variant = name
    return s


def setup_binary(op, p, dev):
    a_shape = (p[0], p[1])
    b_shape = (p[2], p[3]) if p[2] else (p[3],)
    a, ta = upload(a_shape, -2, 2, 4, dev)
    b, tb = upload(b_shape, 0.5, 2, 5, dev)
    f = {"add": torch.add, "mul": torch.mul}[op]
    y_n = int(np.prod(np.broadcast_shapes(a_shape, b_shape)))
    s = Inst()
    s.bytes = 4.0 * (a.size + b.size + y_n)
    s.settings = "f32 %s, %s" % (shape_str(a_shape), shape_str(b_shape))
    s.fn = lambda: f(ta, tb)
    ref = (a.astype(np.float64) + b) if op == "add" else (a.astype(np.float64) * b)
    s.check = lambda y: check_close(y.cpu().numpy(), ref, 1e-5, 1e-6)
    s.variant = "torch." + op
    return s


def setup_reduce(op, p, dev):
    rows, cols, axis = p
    x, tx = upload((rows, cols), -1, 1, 6, dev)
    nout = 1 if axis == ALL else (rows if axis == 1 else cols)
    s = Inst()
    s.flops = float(rows * cols)
    s.bytes = 4.0 * (rows * cols + nout)
    s.settings = "f32 (%d,%d) axis %s" % (rows, cols, "all" if axis == ALL else str(axis))
    xd = x.astype(np.float64)
    if op == "sum":
        s.fn, ref = (lambda: tx.sum(axis)), xd.sum(axis)
    elif op == "max":
        s.fn, ref = (lambda: torch.amax(tx, axis)), xd.max(axis)
    elif op == "mean":
        s.fn, ref = (lambda: tx.mean()), xd.mean()
    elif op == "argmax":
        s.fn, ref = (lambda: torch.argmax(tx, axis)), x.argmax(axis)
    s.variant = {"sum": "torch.sum", "max": "torch.amax", "mean": "torch.mean", "argmax": "torch.argmax"}[op]
    if op == "argmax":
        def check(y):
            y = y.cpu().numpy()
            bad = np.nonzero(y != ref)[0]
            if bad.size:
                raise CaseError("wrong result: element %d is %d, the reference says %d" % (bad[0], y[bad[0]], ref[bad[0]]))
            return 0.0
        s.check = check
    else:
        s.check = lambda y: check_close(y.cpu().numpy(), ref, 1e-4, 1e-4)
    return s


def setup_copy(p, dev):
    x, tx = upload((p[0], p[1]), -1, 1, 7, dev)
    s = Inst()
    s.bytes = 8.0 * p[0] * p[1]
    s.settings = "f32 (%d,%d) transposed" % (p[0], p[1])
    s.fn = lambda: tx.t().contiguous()
    s.check = lambda y: check_close(y.cpu().numpy(), x.T, 0, 0)
    s.variant = "Tensor.t().contiguous()"
    return s


def setup_randn(p, dev):
    n = p[0]
    s = Inst()
    s.bytes = 4.0 * n
    s.settings = "f32 (%d,) seed 42" % n
    gen = torch.Generator(device=dev)

    def run():
        gen.manual_seed(42)
        return torch.randn(n, generator=gen, device=dev)

    s.fn = run

    def check(y):  # another generator than vkgrad's Philox: the check is statistical
        y = y.double().cpu()
        tol = 5.0 / math.sqrt(n)
        mean, std = float(y.mean()), float(y.std())
        e = max(abs(mean) / tol, abs(std - 1.0) / tol)
        if e > 1.0:
            raise CaseError("wrong result: mean %.4g, std %.4g of %d draws (tolerance %.3g)" % (mean, std, n, tol))
        return e

    s.check = check
    s.variant = "torch.randn"
    s.note = ("PyTorch's own generator (seeded with 42), not vkgrad's Philox: same size, other numbers; "
              "checked by mean and standard deviation")
    return s


def setup_launch(kind, p, dev):
    """Tiny copies: PyTorch's cost per eager op (vkgrad: per recorded dispatch), and one op plus a
    wait (vkgrad: a submit round trip; on the CPU PyTorch has nothing to wait for)."""
    count = p[0] if kind == "dispatch" else 1
    src = torch.full((4,), 3.0, device=dev)
    dst = [torch.zeros(4, device=dev) for _ in range(count)]
    s = Inst()
    s.ops_per_call = count
    if kind == "dispatch":
        s.settings = "%d dispatches of 16 bytes, one submit" % count
        s.unit = "us/dispatch"

        def run():
            for d in dst:
                d.copy_(src)
            return dst[-1]
        s.note = "PyTorch: dst[i].copy_(src) into %d distinct 4-float tensors, one Python call each" % count
    else:
        s.settings = "1 dispatch of 16 bytes + vkg_sync"
        s.unit = "us/submit"

        def run():
            dst[0].copy_(src)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return dst[0]
        s.note = ("PyTorch: dst.copy_(src) then torch.cuda.synchronize()" if dev.type == "cuda"
                  else "PyTorch on the CPU: dst.copy_(src); there is no queue to wait for")
    s.fn = run
    s.check = lambda y: check_close(y.cpu().numpy(), np.full(4, 3.0), 0, 0)
    s.variant = "Tensor.copy_"
    return s


# nn and optimizer cases: inputs, counts and settings text as bench/cases.c's runners (the
# settings must be equal, or compare refuses the row).
def setup_conv2d(p, dev):
    N, C, H, W, K, k, pad = p
    x, tx = upload((N, C, H, W), -1, 1, 8, dev)
    w, tw = upload((K, C, k, k), -0.5, 0.5, 9, dev)
    b, tb = upload((K,), -0.5, 0.5, 10, dev)
    OH, OW = H + 2 * pad - k + 1, W + 2 * pad - k + 1
    nout = N * K * OH * OW
    s = Inst()
    s.flops = 2.0 * nout * C * k * k  # the multiply-adds; the bias adds not counted
    s.bytes = 4.0 * (x.size + w.size + K + nout)
    s.settings = "f32 x (%d,%d,%d,%d) w (%d,%d,%d,%d) + bias, stride 1 pad %d" % (N, C, H, W, K, C, k, k, pad)
    s.fn = lambda: F.conv2d(tx, tw, tb, padding=pad)

    def check(y):
        ref = F.conv2d(tx.double(), tw.double(), tb.double(), padding=pad)
        return check_close(y.cpu().numpy(), ref.cpu().numpy(), 1e-4, 1e-5 * C * k * k)

    s.check = check
    s.variant = "F.conv2d"
    return s


def setup_rows(kind, p, dev):
    """softmax, layer norm and cross-entropy over the last dim of (rows, cols)."""
    R, D = p
    x, tx = upload((R, D), -4, 4, 11, dev)
    xd = x.astype(np.float64)
    s = Inst()
    if kind == "softmax":
        s.flops, s.bytes = 5.0 * R * D, 8.0 * R * D  # max, subtract, exp, sum, divide
        what = "softmax over dim 1"
        s.fn = lambda: torch.softmax(tx, 1)
        e = np.exp(xd - xd.max(1, keepdims=True))
        ref = e / e.sum(1, keepdims=True)
        s.variant = "torch.softmax"
    elif kind == "layer_norm":
        w, tw = upload((D,), 0.5, 1.5, 12, dev)
        b, tb = upload((D,), -0.5, 0.5, 13, dev)
        s.flops, s.bytes = 7.0 * R * D, 4.0 * (2 * R * D + 2 * D)
        what = "layer norm over dim 1, weight and bias, eps 1e-5"
        s.fn = lambda: F.layer_norm(tx, (D,), tw, tb, 1e-5)
        mu, var = xd.mean(1, keepdims=True), xd.var(1, keepdims=True)
        ref = (xd - mu) / np.sqrt(var + 1e-5) * w + b
        s.variant = "F.layer_norm"
    else:
        t = fill(R, 0, D, 14).astype(np.int64)  # (int32)u, clamped, as cases.c
        t = np.minimum(t, D - 1)
        tt = torch.from_numpy(t).to(dev)
        s.flops, s.bytes = 4.0 * R * D, 4.0 * (R * D + R + 1)  # max, subtract, exp, sum
        what = "cross-entropy with i32 targets, mean"
        s.fn = lambda: F.cross_entropy(tx, tt)
        mx = xd.max(1, keepdims=True)
        lse = (mx + np.log(np.exp(xd - mx).sum(1, keepdims=True)))[:, 0]
        ref = np.mean(lse - xd[np.arange(R), t])
        s.variant = "F.cross_entropy (int64 targets)"
    s.settings = "f32 (%d,%d), %s" % (R, D, what)
    s.check = lambda y: check_close(y.cpu().numpy(), ref, 1e-4, 1e-5)
    return s


def attention(q, k, v, causal):
    """softmax(q k^T / sqrt(Dh)) v, as nn.MultiheadAttention computes it in PyTorch 1.13 (which has
    no public fused attention)."""
    T, S, Dh = q.shape[-2], k.shape[-2], q.shape[-1]
    sc = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(Dh))
    if causal:
        sc = sc.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.matmul(torch.softmax(sc, -1), v)


def setup_attention(p, dev):
    B, H, T, Dh, causal = p
    shape = (B, H, T, Dh)
    _, tq = upload(shape, -1, 1, 15, dev)
    _, tk = upload(shape, -1, 1, 16, dev)
    _, tv = upload(shape, -1, 1, 17, dev)
    n = B * H * T * Dh
    pairs = B * H * (T * (T + 1) / 2 if causal else T * T)
    s = Inst()
    s.flops = 4.0 * Dh * pairs  # q k^T and p v over the pairs the mask lets through (as cases.c)
    s.bytes = 16.0 * n
    s.settings = "f32 q, k, v (%d,%d,%d,%d), %s, scale 1/sqrt(%d)" % (B, H, T, Dh, "causal" if causal else "no mask", Dh)
    s.fn = lambda: attention(tq, tk, tv, causal)
    s.check = lambda y: check_close(y.cpu().numpy(), attention(tq.double(), tk.double(), tv.double(), causal).cpu().numpy(),
                                    1e-4, 1e-5)
    s.variant = "matmul, mul, masked_fill, softmax, matmul"
    s.note = ("PyTorch 1.13 has no public fused attention: the unfused ops nn.MultiheadAttention runs; "
              "the FLOPs count only the unmasked pairs")
    return s


def setup_adam(p, dev):
    n = p[0]
    _, w0 = upload((n,), -1, 1, 18, dev)
    _, g = upload((n,), -1, 1, 19, dev)
    param = torch.nn.Parameter(w0.clone())
    param.grad = g.clone()  # a fixed gradient, reused by every step
    opt = torch.optim.Adam([param])  # torch.optim's defaults, as vkgrad's
    d = opt.defaults
    s = Inst()
    s.flops = 13.0 * n  # as cases.c counts its shader
    s.bytes = 28.0 * n  # p, g, m, v read; p, m, v written
    s.settings = "f32 (%d,), Adam lr %g betas (%g, %g) eps %g, one dispatch" % (n, d["lr"], d["betas"][0], d["betas"][1], d["eps"])

    def run():
        opt.step()
        return param

    s.fn = run

    def check(out):  # the first step from zero state, in double
        gd = g.double()
        m, v = (1 - d["betas"][0]) * gd, (1 - d["betas"][1]) * gd * gd
        mhat, vhat = m / (1 - d["betas"][0]), v / (1 - d["betas"][1])
        want = w0.double() - d["lr"] * mhat / (vhat.sqrt() + d["eps"])
        return check_close(out.detach().cpu().numpy(), want.cpu().numpy(), 1e-5, 1e-6)

    s.check = check
    s.variant = "torch.optim.Adam.step (foreach %s)" % d.get("foreach")
    s.note = ("PyTorch's Adam as constructed by default; the settings text is vkgrad's, whose step is one "
              "dispatch")
    return s


# ---- the reference models, layer for layer as models/*.c ---------------------------------------
def build_mlp():
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))


def build_cnn():
    # ReLU after the pool, as models/cnn.c has it: the same values and gradients as ReLU before
    # it (ReLU is monotone), on a quarter of the elements, so both sides compute the same ops
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def build_lstm():
    nn = torch.nn

    class LSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(256, 64)
            self.lstm = nn.LSTM(64, 256, batch_first=True)
            self.head = nn.Linear(256, 256)

        def forward(self, x):
            out, _ = self.lstm(self.embed(x))
            return self.head(out)

    return LSTM()


def build_gpt(vocab=256, context=64, width=128, layers=4, heads=4, mlp_mult=4):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.ln2 = nn.LayerNorm(width)
            self.fc = nn.Linear(width, mlp_mult * width)
            self.gelu = nn.GELU(approximate="tanh")
            self.proj = nn.Linear(mlp_mult * width, width)

        def forward(self, x, mask):
            a = self.ln1(x)
            x = x + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
            return x + self.proj(self.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, width)
            self.wpe = nn.Embedding(context, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab, bias=False)

        def forward(self, x):
            T = x.shape[1]
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # True: not allowed
            h = self.wte(x) + self.wpe.weight[:T]
            for b in self.blocks:
                h = b(h, mask)
            return self.head(self.ln_f(h))

    return GPT()


# Each model as models/*.c has it: builder, parameter count (models/README.md), optimizer
# (models/trainer.c), and whether it is a language model (B, 64) bytes -> (B, 64, 256).
MODEL_SPECS = {
    "mlp": dict(build=build_mlp, params=535818, optim=("Adam", 1e-3, None), lm=False, classes=10),
    "cnn": dict(build=build_cnn, params=421642, optim=("Adam", 1e-3, None), lm=False, classes=10),
    "lstm": dict(build=build_lstm, params=411904, optim=("AdamW", 2e-3, 0.0), lm=True, classes=256),
    "gpt": dict(build=build_gpt, params=867072, optim=("AdamW", 1e-3, 0.1), lm=True, classes=256),
}
MODEL_CHECK_STEPS = 3   # training steps on the batch that must lower its loss (as cases.c)
MODEL_INIT_TOL = 0.25   # |untrained loss - ln(classes)|, nats


def setup_model(spec, p, dev):
    """One synthetic batch of the real shapes, drawn as cases.c draws it: images in the normalised
    Fashion-MNIST pixel range with uniform labels, or random byte sequences whose targets are the
    next bytes. Train step: zero_grad, forward, cross-entropy, backward, optimizer step;
    inference: forward under torch.no_grad in eval mode."""
    kind, train = spec
    B = p[0]
    ms = MODEL_SPECS[kind]
    torch.manual_seed(42)
    model = ms["build"]().to(dev)
    nparams = sum(q.numel() for q in model.parameters())
    if nparams != ms["params"]:
        raise CaseError("the %s has %d parameters; models/README.md says %d" % (kind, nparams, ms["params"]))
    C, T = ms["classes"], 64
    if ms["lm"]:  # B sequences of T + 1 bytes: x the first T, y the last T
        u = (fill(B * (T + 1), 0, 256, 22).astype(np.int64) & 255).reshape(B, T + 1)
        x = torch.from_numpy(u[:, :T].copy()).to(dev)
        y = torch.from_numpy(u[:, 1:].copy()).to(dev)
        n, items_unit = B * T, "tokens/s"
    else:
        img = fill(B * 28 * 28, -0.8, 2.0, 20).reshape((B, 1, 28, 28) if kind == "cnn" else (B, 28, 28))
        x = torch.from_numpy(img).to(dev)
        y = torch.from_numpy(np.minimum(fill(B, 0, C, 21).astype(np.int64), C - 1)).to(dev)
        n, items_unit = B, "samples/s"

    def loss_now(logits_check=False):
        with torch.no_grad():
            logits = model(x).reshape(-1, C)
            loss = float(F.cross_entropy(logits, y.reshape(-1)))
        if logits_check:  # as cases.c: finite, not all equal, and the loss that of the logits in double
            lg = logits.double()
            if not bool(torch.isfinite(lg).all()) or float(lg.max() - lg.min()) <= 0:
                raise CaseError("wrong result: the untrained model's logits are %s"
                                % ("not all finite" if not bool(torch.isfinite(lg).all()) else "all equal"))
            ref = float(F.cross_entropy(lg, y.reshape(-1)))
            if not abs(loss - ref) <= 1e-4 * abs(ref) + 1e-5:
                raise CaseError("wrong result: the loss is %.7g, the float64 cross-entropy of its logits %.7g" % (loss, ref))
        return loss

    s = Inst()
    s.items, s.items_unit, s.train = float(n), items_unit, train
    s.settings = "f32, batch %d, seq %d" % (B, T) if ms["lm"] else "f32, batch %d" % B
    name, lr, wd = ms["optim"]
    if train:
        model.train()
        opt = (torch.optim.Adam(model.parameters(), lr=lr) if name == "Adam"
               else torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x).reshape(-1, C), y.reshape(-1))
            loss.backward()
            opt.step()
            return loss

        s.fn = step
        s.variant = "zero_grad, forward, cross_entropy, backward, %s(lr %g%s).step" % (
            name, lr, "" if wd is None else ", weight_decay %g" % wd)
    else:
        model.eval()

        def infer():
            with torch.no_grad():
                return model(x)

        s.fn = infer
        s.variant = "forward under torch.no_grad, eval mode"

    def verify():  # cases.c's model check: the untrained loss, and training lowers it
        model.eval()
        loss0 = loss1 = loss_now(logits_check=True)
        model.train(train)
        if train:
            for _ in range(MODEL_CHECK_STEPS):
                s.fn()
            loss1 = loss_now()
            s.check_note = "check: loss %.3f, %.3f after %d steps" % (loss0, loss1, MODEL_CHECK_STEPS)
        else:
            s.check_note = "check: loss %.3f" % loss0
        want = math.log(C)
        err = abs(loss0 - want) / MODEL_INIT_TOL if math.isfinite(loss0) else math.inf
        if err > 1.0:
            raise CaseError("wrong result: the untrained model's loss is %.6g, not ln(%d) = %.4g within %.2g"
                            % (loss0, C, want, MODEL_INIT_TOL))
        if train and not loss1 < loss0:
            raise CaseError("wrong result: %d training steps on one batch took its loss from %.6g to %.6g, not lower"
                            % (MODEL_CHECK_STEPS, loss0, loss1))
        return err

    s.verify = verify
    return s


SKIP_HOST = ("vkgrad's own host overhead as a ratio (its eager path against a raw-Vulkan loop, its graph "
             "replay against its eager step): PyTorch has no such pair")
SKIP_PEAK = ("a Vulkan shader probe (bench_fma.comp, bench_copy.comp): PyTorch runs no such kernel; "
             "the matmul cases show its compute rate")


def setup_case(case, dev, st):
    name, group, suites, kind, op, p, max_reps = case
    if kind in ("fma32", "fma16", "copybw"):
        s = Inst()
        if kind == "copybw":
            s.settings = "%d MiB vec4, wg 256" % p[0]
        else:
            s.settings = "%s x8 chains, wg 256, m=-1 a=1, target %.0f ms" % (
                "f16vec4" if kind == "fma16" else "vec4", st["peak_target_s"] * 1e3)
        e = CaseError(SKIP_PEAK, status="skipped")
        e.inst = s
        raise e
    if kind == "host":  # skipped, with host.c's settings text so that compare lists the row
        s = Inst()
        if p[1] == 0:
            s.settings = "%d dependent adds of 64 floats + 1 read-back" % p[0]
        else:
            s.settings = "MLP 784-512-256-10, batch %d, Adam; %d steps each" % (p[0], max(st["min_reps"], 60))
        e = CaseError(SKIP_HOST, status="skipped")
        e.inst = s
        raise e
    if kind in ("dispatch", "roundtrip"):
        return setup_launch(kind, p, dev)
    if kind == "matmul":
        return setup_matmul(p, dev)
    if kind == "unary":
        return setup_unary(op, p, dev)
    if kind == "binary":
        return setup_binary(op, p, dev)
    if kind == "reduce":
        return setup_reduce(op, p, dev)
    if kind == "copy":
        return setup_copy(p, dev)
    if kind == "randn":
        return setup_randn(p, dev)
    if kind == "conv2d":
        return setup_conv2d(p, dev)
    if kind in ("softmax", "layer_norm", "cross_entropy"):
        return setup_rows(kind, p, dev)
    if kind == "attention":
        return setup_attention(p, dev)
    if kind == "adam":
        return setup_adam(p, dev)
    if kind == "model":
        return setup_model(op, p, dev)
    raise CaseError("unknown case kind %s" % kind)


# ---- the method: measure.c ----------------------------------------------------------------------
def stats_of(x):
    x = sorted(x)
    n = len(x)
    med = x[n // 2] if n % 2 else 0.5 * (x[n // 2 - 1] + x[n // 2])
    r = 0.9 * (n - 1)
    lo = int(r)
    p90 = x[lo] + (r - lo) * (x[lo + 1] - x[lo]) if lo + 1 < n else x[lo]
    return {"median": med, "min": x[0], "p90": p90, "max": x[-1],
            "spread_pct": 100.0 * (p90 - x[0]) / med if med > 0 else 0.0}


class Timer:
    """One repetition: wall clock from the first call to the end of the wait; on CUDA also CUDA
    events around the repetition (the device's own timestamps)."""

    def __init__(self, dev):
        self.cuda = dev.type == "cuda"
        if self.cuda:
            self.e0 = torch.cuda.Event(enable_timing=True)
            self.e1 = torch.cuda.Event(enable_timing=True)

    def run(self, fn, inner):
        if self.cuda:
            torch.cuda.synchronize()  # nothing earlier runs inside the bracket
            t0 = time.perf_counter()
            self.e0.record()
            for _ in range(inner):
                fn()
            self.e1.record()
            torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            return self.e0.elapsed_time(self.e1) * 1e-3, wall
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        wall = time.perf_counter() - t0
        return wall, wall


def run_case(case, dev, st):
    name, group, suites, kind, op, p, max_reps = case
    r = {"name": name, "group": group, "status": "ok", "reason": "", "variant": "", "settings": "",
         "flops": None, "bytes": None, "reps": 0, "inner": 0,
         "timer": "gpu_timestamps" if dev.type == "cuda" else "wall_clock",
         "gpu_ms": None, "wall_ms": None, "value": None, "unit": "", "gflops": None, "gbps": None,
         "pct_roofline": None, "bound": None, "check_max_err": None, "note": ""}
    try:
        s = setup_case(case, dev, st)
    except CaseError as e:
        r["status"], r["reason"] = e.status, str(e)
        if hasattr(e, "inst"):
            r["settings"] = e.inst.settings
        return r
    except Exception as e:  # an error of PyTorch itself: the case fails, the run goes on
        r["status"], r["reason"] = "fail", "setting up: %s: %s" % (type(e).__name__, e)
        return r
    r["settings"], r["variant"], r["note"] = s.settings, s.variant, s.note
    r["flops"] = s.flops or None
    r["bytes"] = s.bytes or None
    timer = Timer(dev)
    try:
        # 1. check: the result against the reference, before any timing
        r["check_max_err"] = s.verify() if s.verify else s.check(s.fn())
        # 2. calibrate: operations per repetition until one lasts rep_target (also the warm-up)
        inner, per_rep = 1, s.ops_per_call or 1
        if not s.ops_per_call:
            while True:
                g, w = timer.run(s.fn, inner)
                if g >= st["rep_target_s"] or inner >= 256:
                    break
                k = int(math.ceil(st["rep_target_s"] / g * inner)) if g > 0 else 2 * inner
                inner = 2 * inner if k > 2 * inner else (k if k > inner else inner + 1)
                inner = min(inner, 256)
        else:
            timer.run(s.fn, inner)
        for _ in range(st["warmup"]):
            timer.run(s.fn, inner)
        # 3. time: until min_time and min_reps, at most max_reps (or the case's cap)
        cap = max_reps if 0 < max_reps < st["max_reps"] else st["max_reps"]
        gpu, wall = [], []
        t_start = time.perf_counter()
        while len(gpu) < cap and (len(gpu) < st["min_reps"] or time.perf_counter() - t_start < st["min_time_s"]):
            g, w = timer.run(s.fn, inner)
            gpu.append(g * 1e3 / (inner * per_rep))
            wall.append(w * 1e3 / (inner * per_rep))
    except CaseError as e:
        r["status"], r["reason"], r["check_max_err"] = e.status, str(e), None
        return r
    except Exception as e:
        r["status"], r["reason"], r["check_max_err"] = "fail", "running: %s: %s" % (type(e).__name__, e), None
        return r
    r["reps"], r["inner"] = len(gpu), inner * per_rep
    r["gpu_ms"], r["wall_ms"] = stats_of(gpu), stats_of(wall)
    if max_reps and r["reps"] >= max_reps:
        cap_note = "repetitions capped at %d (a repetition takes %.1f s)" % (max_reps, r["wall_ms"]["median"] * 1e-3 * inner)
        r["note"] = cap_note + ("; " + r["note"] if r["note"] else "")
    if s.check_note:
        r["note"] = s.check_note + ("; " + r["note"] if r["note"] else "")
    if s.unit:
        r["unit"], r["value"] = s.unit, r["wall_ms"]["median"] * 1e3
        return r
    if s.items:  # model cases, as measure.c: from the wall clock per step, host work included
        ms = r["wall_ms"]["median"]
        per_s = 1e3 / ms if ms > 0 else 0.0
        r["unit"] = s.items_unit if s.train else "ms/batch"
        r["value"] = s.items * per_s if s.train else ms
        r["note"] += "%s%.1f ms/%s = %.2f %s/s = %.0f %s (wall clock)" % (
            "; " if r["note"] else "", ms, "step" if s.train else "batch", per_s, "steps" if s.train else "batches",
            s.items * per_s, s.items_unit)
        return r
    sec = r["gpu_ms"]["median"] * 1e-3
    if sec > 0:
        if s.flops:
            r["gflops"] = s.flops / sec * 1e-9
        if s.bytes:
            r["gbps"] = s.bytes / sec * 1e-9
        r["unit"] = "GFLOP/s" if s.flops else "GB/s"
        r["value"] = r["gflops"] if s.flops else r["gbps"]
    return r


# ---- the report's header: bench/report.c's fields for a PyTorch "device" -------------------------
def read_first(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    v = re.split(r"[:=]", line[len(key):], 1)[1] if re.search(r"[:=]", line[len(key):]) else ""
                    return v.strip().strip('"')
    except OSError:
        pass
    return ""


def git_commit():
    try:
        c = subprocess.run(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
        if c.returncode != 0:
            return ""
        # "+dirty": this script or the case table it mirrors had uncommitted changes
        d = subprocess.run(["git", "-C", REPO, "diff", "--quiet", "HEAD", "--", "bench/pytorch", "bench/cases.c"],
                           capture_output=True)
        return c.stdout.strip() + ("+dirty" if d.returncode == 1 else "")
    except OSError:
        return ""


def vkgrad_version():
    try:
        with open(os.path.join(REPO, "CMakeLists.txt")) as f:
            m = re.search(r"project\(vkgrad VERSION ([0-9.]+)", f.read())
            return m.group(1) if m else ""
    except OSError:
        return ""


def debian_torch_version():
    try:
        c = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"], capture_output=True, text=True)
        return c.stdout.strip() if c.returncode == 0 else ""
    except OSError:
        return ""


def version_word(v):  # "1.13.0a0" -> Vulkan-style major << 22 | minor << 12 | patch
    n = [int(x) for x in re.findall(r"\d+", v)[:3]] + [0, 0, 0]
    return "0x%08x" % ((n[0] << 22) | (n[1] << 12) | n[2])


def config_label(threads, policy):
    """How PyTorch ran: "1 thread", "2 threads", "2 threads with OMP_WAIT_POLICY=passive"."""
    return "%s thread%s%s" % (threads, "" if threads == 1 else "s", " with OMP_WAIT_POLICY=%s" % policy if policy else "")


def device_json(dev, threads, policy):
    cpu = read_first("/proc/cpuinfo", "model name")
    deb = debian_torch_version()
    tv = torch.__version__ + (" (Debian %s)" % deb if deb else "")
    if dev.type == "cuda":
        prop = torch.cuda.get_device_properties(dev)
        uuid = str(getattr(prop, "uuid", "") or "").replace("-", "").replace("GPU", "")
        return {
            "name": prop.name, "type": "discrete GPU" if not getattr(prop, "is_integrated", False) else "integrated GPU",
            "vendor": "NVIDIA" if torch.version.hip is None else "AMD",
            "vendor_id": "0x10de" if torch.version.hip is None else "0x1002", "device_id": "0x0000",
            "driver_name": "pytorch",
            "driver_info": "%s, CUDA %s, cuDNN %s, %d CPU threads" % (tv, torch.version.cuda,
                                                                    torch.backends.cudnn.version(), threads),
            "driver_version": version_word(torch.__version__),
            "api_version": ".".join((re.findall(r"\d+", torch.version.cuda or "0") + ["0", "0", "0"])[:3]),
            "device_uuid": uuid if re.fullmatch(r"[0-9a-f]{32}", uuid) else "0" * 32,
            "pipeline_cache_uuid": "0" * 32, "subgroup_size": 32, "fp16": True, "unified_memory": False,
            "timestamp_period_ns": 500,  # CUDA events: about 0.5 us resolution (cudaEventElapsedTime)
        }
    vendor = read_first("/proc/cpuinfo", "vendor_id")
    return {
        "name": cpu, "type": "CPU",
        "vendor": {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or platform.machine()),
        "vendor_id": "0x0000", "device_id": "0x0000",
        "driver_name": "pytorch",
        "driver_info": "%s, CPU, %s, %s" % (tv, config_label(threads, policy), blas_name()),
        "driver_version": version_word(torch.__version__), "api_version": "0.0.0",
        "device_uuid": "0" * 32, "pipeline_cache_uuid": "0" * 32,
        "subgroup_size": 1, "fp16": False, "unified_memory": True,
        "timestamp_period_ns": 0,  # no device timestamps: every time is the wall clock
    }


def host_json():
    u = os.uname()
    env = {}
    for v in ("VKG_DEVICE", "LP_NUM_THREADS", "VK_DRIVER_FILES", "VK_ICD_FILENAMES", "VKG_BATCH",
              "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES"):
        if v in os.environ:
            env[v] = os.environ[v]
    return {"cpu": read_first("/proc/cpuinfo", "model name"), "cores": os.sysconf("SC_NPROCESSORS_ONLN"),
            "os": read_first("/etc/os-release", "PRETTY_NAME"), "kernel": "%s %s %s" % (u.sysname, u.release, u.machine),
            "env": env}


def selected(case, suite_bit, flt):
    return bool(case[2] & suite_bit) and (not flt or flt in case[0])


def print_table(report, out):
    d = report["device"]
    out.write("device: %s (%s %s)\n" % (d["name"], d["driver_name"], d["driver_info"]))
    out.write("suite %s: %d cases; times per operation, %s\n\n" % (
        report["settings"]["suite"], len(report["cases"]),
        "CUDA events" if report["cases"] and report["cases"][0]["timer"] == "gpu_timestamps" else "wall clock"))
    out.write("%-40s %-7s %10s %10s %7s %10s %11s %-11s\n" % ("case", "status", "median ms", "p90 ms", "spread", "wall ms",
                                                            "throughput", "unit"))
    for c in report["cases"]:
        if c["status"] != "ok":
            out.write("%-40s %-7s %s\n" % (c["name"], c["status"], c["reason"]))
            continue
        out.write("%-40s %-7s %10.4f %10.4f %6.1f%% %10.4f %11.2f %-11s\n" % (
            c["name"], "ok", c["gpu_ms"]["median"], c["gpu_ms"]["p90"], c["gpu_ms"]["spread_pct"],
            c["wall_ms"]["median"], c["value"], c["unit"]))
    for c in report["cases"]:
        if c["note"]:
            out.write("note: %s: %s\n" % (c["name"], c["note"]))


def write_json(report, path):
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


def cmd_run(a):
    suite_bit = SUITES[a.suite]
    if a.out:  # a bad path fails before minutes of measuring
        open(a.out, "a").close()
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("vkgrad_bench_torch: --device cuda, but this PyTorch sees no CUDA device", file=sys.stderr)
        return 1
    torch.set_num_threads(a.threads)
    if dev.type == "cuda":  # f32 as vkgrad computes it: no TF32 in matmuls or cuDNN convolutions
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    st = {"suite": a.suite, "filter": a.filter or "", "min_time_s": a.min_time, "min_reps": 5, "max_reps": 1000,
          "warmup": 1, "rep_target_s": 0.005, "peak_target_s": 0.05 if a.suite == "quick" else 0.1,
          "threads": a.threads, "omp_wait_policy": a.omp_wait_policy or "", "device": a.device}
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases = [c for c in CASES if selected(c, suite_bit, a.filter)]
    results = []
    t0 = time.perf_counter()
    for i, c in enumerate(cases):
        if not a.quiet:
            el = time.perf_counter() - t0
            left = (el / i if i else a.min_time + 0.5) * (len(cases) - i)
            print("[%d/%d] %-44s elapsed %5.1f s, about %.0f s left" % (i + 1, len(cases), c[0], el, left),
                  file=sys.stderr, flush=True)
        r = run_case(c, dev, st)
        if r["status"] == "fail" and not a.quiet:
            print("       FAILED: %s" % r["reason"], file=sys.stderr)
        results.append(r)
    report = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": created,
        "vkgrad": {"version": vkgrad_version(), "git_commit": git_commit()},
        "device": device_json(dev, a.threads, a.omp_wait_policy), "host": host_json(), "settings": st,
        "peak": {"fp32_gflops": None, "fp16_gflops": None, "copy_gbps": None},
        "shaders": [],
        "cases": results,
        "pytorch": {"version": torch.__version__, "debian_package": debian_torch_version(),
                    "device": a.device, "threads": a.threads, "omp_wait_policy": a.omp_wait_policy or "", "blas": blas_name() if dev.type == "cpu" else "",
                    "python": platform.python_version(), "tf32": False,
                    "script": "bench/pytorch/vkgrad_bench_torch.py"},
    }
    print_table(report, sys.stdout)
    status = 1 if any(r["status"] == "fail" for r in results) else 0
    if a.out:
        write_json(report, a.out)
        print("report: %s" % a.out)
    if status:
        print("vkgrad_bench_torch: some cases failed their check (see the table)", file=sys.stderr)
    return status


# ---- best: per case, the faster of several reports (the "better of 1 and 2 threads") ---
def cmd_best(a):
    reps = []
    for p in a.reports:
        with open(p) as f:
            reps.append(json.load(f))
    for p, r in zip(a.reports, reps):
        if r.get("schema") != SCHEMA:
            print("vkgrad_bench_torch best: %s: not a %s report" % (p, SCHEMA), file=sys.stderr)
            return 1
    base = json.loads(json.dumps(reps[0]))
    label = lambda r: config_label(r["settings"].get("threads", "?"), r["settings"].get("omp_wait_policy"))
    out_cases = []
    for c0 in base["cases"]:
        cands = []
        for r in reps:
            c = next((x for x in r["cases"] if x["name"] == c0["name"]), None)
            if c is None:
                continue
            if c["settings"] != c0["settings"]:
                print("vkgrad_bench_torch best: \"%s\": settings differ between reports" % c0["name"], file=sys.stderr)
                return 1
            cands.append((r, c))
        ok = [(r, c) for r, c in cands if c["status"] == "ok"]
        if not ok:
            out_cases.append(c0)
            continue
        # the time the case's value comes from: the wall clock for models and launch costs
        key = "wall_ms" if c0["group"] in ("model", "launch") else "gpu_ms"
        r, c = min(ok, key=lambda rc: rc[1][key]["median"])
        c = json.loads(json.dumps(c))
        if len(ok) > 1:
            alts = ", ".join("%s (%.4g ms)" % (label(x), y[key]["median"]) for x, y in ok)
            c["note"] = ("best of %s: %s" % (alts, label(r))) + ("; " + c["note"] if c["note"] else "")
        out_cases.append(c)
    base["cases"] = out_cases
    threads = [r["settings"].get("threads") for r in reps]
    policies = [r["settings"].get("omp_wait_policy", "") for r in reps]
    base["settings"]["threads"], base["settings"]["omp_wait_policy"] = threads, policies
    base["device"]["driver_info"] = re.sub(r"\d+ threads?( with OMP_WAIT_POLICY=\w+)?",
                                           "best per case of " + " / ".join(label(r) for r in reps),
                                           base["device"]["driver_info"], count=1)
    base["pytorch"]["threads"], base["pytorch"]["omp_wait_policy"] = threads, policies
    # the environment the reports share (each one's thread variables are in its own report)
    base["host"]["env"] = {k: v for k, v in base["host"]["env"].items() if all(r["host"]["env"].get(k) == v for r in reps)}
    base["pytorch"]["best_of"] = list(a.reports)
    write_json(base, a.out)
    print("report: %s (best of %s per case)" % (a.out, ", ".join(a.reports)))
    return 0


# ---- validate: bench/SCHEMA.md field by field, as tests/test_bench.c checks vkgrad's reports ----
FIELDS = {
    "report": [("schema", "s"), ("schema_version", "n"), ("created", "s"), ("vkgrad", "o"), ("device", "o"),
               ("host", "o"), ("settings", "o"), ("peak", "o"), ("shaders", "a"), ("cases", "a")],
    "vkgrad": [("version", "s"), ("git_commit", "s")],
    "device": [("name", "s"), ("type", "s"), ("vendor", "s"), ("vendor_id", "s"), ("device_id", "s"),
               ("driver_name", "s"), ("driver_info", "s"), ("driver_version", "s"), ("api_version", "s"),
               ("device_uuid", "s"), ("pipeline_cache_uuid", "s"), ("subgroup_size", "n"), ("fp16", "b"),
               ("unified_memory", "b"), ("timestamp_period_ns", "n")],
    "host": [("cpu", "s"), ("cores", "n"), ("os", "s"), ("kernel", "s"), ("env", "o")],
    "settings": [("suite", "s"), ("filter", "s"), ("min_time_s", "n"), ("min_reps", "n"), ("max_reps", "n"),
                 ("warmup", "n"), ("rep_target_s", "n"), ("peak_target_s", "n")],
    "peak": [("fp32_gflops", "n0"), ("fp16_gflops", "n0"), ("copy_gbps", "n0")],
    "shaders[]": [("name", "s"), ("bytes", "n"), ("fnv1a64", "s")],
    "cases[]": [("name", "s"), ("group", "s"), ("status", "s"), ("reason", "s"), ("variant", "s"), ("settings", "s"),
                ("flops", "n0"), ("bytes", "n0"), ("reps", "n"), ("inner", "n"), ("timer", "s"), ("gpu_ms", "o0"),
                ("wall_ms", "o0"), ("value", "n0"), ("unit", "s"), ("gflops", "n0"), ("gbps", "n0"),
                ("pct_roofline", "n0"), ("bound", "s0"), ("check_max_err", "n0"), ("note", "s")],
    "stats": [("median", "n"), ("min", "n"), ("p90", "n"), ("max", "n"), ("spread_pct", "n")],
}


def is_type(v, t):
    if t == "s":
        return isinstance(v, str)
    if t == "n":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if t == "b":
        return isinstance(v, bool)
    if t == "o":
        return isinstance(v, dict)
    if t == "a":
        return isinstance(v, list)
    if t == "0":
        return v is None
    return False


def validate_report(r):
    """The list of problems (empty: valid); the checks of tests/test_bench.c's validate_report."""
    errs = []

    def fields(o, kind, where):
        if not isinstance(o, dict):
            errs.append("%s is not an object" % where)
            return
        for name, types in FIELDS[kind]:
            if name not in o:
                errs.append("%s.%s is missing" % (where, name))
            elif not any(is_type(o[name], t) for t in types):
                errs.append("%s.%s has the wrong type (want one of \"%s\")" % (where, name, types))

    fields(r, "report", "report")
    if errs:
        return errs
    if r["schema"] != SCHEMA or r["schema_version"] != SCHEMA_VERSION:
        errs.append("schema is %r version %r, not %s version %d" % (r["schema"], r["schema_version"], SCHEMA, SCHEMA_VERSION))
    for k in ("vkgrad", "device", "host", "settings", "peak"):
        fields(r[k], k, k)
    hexre = lambda s, n: isinstance(s, str) and re.fullmatch("[0-9a-f]{%d}" % n, s) is not None
    if isinstance(r["device"], dict) and not hexre(r["device"].get("device_uuid"), 32):
        errs.append("device.device_uuid is not 32 hex digits")
    for x in r["shaders"]:
        fields(x, "shaders[]", "shaders[]")
        if isinstance(x, dict) and not hexre(x.get("fnv1a64"), 16):
            errs.append("shaders[].fnv1a64 is not 16 hex digits")
    # vkgrad's reports list every embedded shader (test_bench.c wants more than 5); a PyTorch
    # report runs no SPIR-V and lists none
    if "pytorch" not in r and len(r["shaders"]) <= 5:
        errs.append("shaders: every embedded shader is listed (more than 5)")
    names = set()
    for x in r["cases"]:
        fields(x, "cases[]", "cases[]")
        if not isinstance(x, dict) or not all(k in x for k, _ in FIELDS["cases[]"]):
            continue
        where = "cases[%s]" % x["name"]
        if x["name"] in names:
            errs.append("%s: the name is not unique" % where)
        names.add(x["name"])
        ok = x["status"] == "ok"
        if x["status"] not in ("ok", "fail", "skipped", "unavailable"):
            errs.append("%s: status %s" % (where, x["status"]))
        if x["timer"] not in ("gpu_timestamps", "wall_clock"):
            errs.append("%s: timer %s" % (where, x["timer"]))
        if isinstance(x["gpu_ms"], dict) != ok:
            errs.append("%s: times must be there exactly when the status is ok" % where)
        if ok:
            fields(x["gpu_ms"], "stats", where + ".gpu_ms")
            fields(x["wall_ms"], "stats", where + ".wall_ms")
            if not is_type(x["value"], "n"):
                errs.append("%s: value is not a number" % where)
            if not x["reps"] > 0:
                errs.append("%s: reps is not positive" % where)
    return errs


def cmd_validate(a):
    status = 0
    for p in a.reports:
        try:
            with open(p) as f:
                r = json.load(f)
        except (OSError, ValueError) as e:
            print("%s: cannot read: %s" % (p, e))
            status = 1
            continue
        errs = validate_report(r)
        ok = [c for c in r.get("cases", []) if isinstance(c, dict) and c.get("status") == "ok"]
        print("%s: %s (%d cases, %d ok)" % (p, "valid %s report" % SCHEMA if not errs else "INVALID",
                                            len(r.get("cases", [])), len(ok)))
        for e in errs:
            print("  " + e)
        status |= bool(errs)
    return status


def main(argv):
    ap = argparse.ArgumentParser(prog="vkgrad_bench_torch.py",
                                 description="vkgrad-bench's cases in PyTorch, as a vkgrad-bench/1 JSON report")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="check and time the cases; print a table; write the report")
    r.add_argument("--suite", choices=sorted(SUITES), default="quick")
    r.add_argument("--out", help="the JSON report")
    r.add_argument("--filter", default="", help="only cases whose name contains this")
    r.add_argument("--min-time", type=float, default=1.0, help="seconds of timed repetitions per case (default 1)")
    r.add_argument("--threads", type=int, default=1, help="CPU threads: torch.set_num_threads, OMP_NUM_THREADS, "
                                                          "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS (default 1)")
    r.add_argument("--omp-wait-policy", choices=("passive", "active"),
                   help="OMP_WAIT_POLICY for PyTorch's OpenMP threads (default: libgomp's, which spins a while); "
                        "passive threads sleep at once, which matters when other processes share the cores")
    r.add_argument("--device", default="cpu", help="cpu (default) or cuda (cuda:N)")
    r.add_argument("--list", action="store_true", help="list the suite's cases and stop")
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    b = sub.add_parser("best", help="per case, the faster of several reports (e.g. 1 and 2 threads)")
    b.add_argument("reports", nargs="+")
    b.add_argument("--out", required=True)
    v = sub.add_parser("validate", help="check reports against bench/SCHEMA.md")
    v.add_argument("reports", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "best":
        return cmd_best(a)
    if a.cmd == "validate":
        return cmd_validate(a)
    if a.list:  # no PyTorch needed
        for c in CASES:
            if selected(c, SUITES[a.suite], a.filter):
                print(c[0])
        return 0
    if a.threads < 1:
        ap.error("--threads must be at least 1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)  # before the libraries start their thread pools
    if a.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = a.omp_wait_policy
    global torch, F, np
    try:
        import numpy
        import torch as _torch
        import torch.nn.functional as _F
    except ImportError as e:
        print("vkgrad_bench_torch: %s. Install Debian's PyTorch (apt-get install python3-torch libopenblas0) and "
              "run this with /usr/bin/python3 (see bench/pytorch/README.md)" % e, file=sys.stderr)
        return 1
    torch, F, np = _torch, _F, numpy
    return cmd_run(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
