#!/usr/bin/python3
# Checks of vkgrad_bench_torch.py that keep it in step with vkgrad-bench: its inputs are
# cases.c's bit for bit, its case table is vkgrad-bench's, its reports validate and compare
# accepts them beside a vkgrad report with no case refused. Optional, like the script:
#   /usr/bin/python3 -m unittest discover -s bench/pytorch -v       (from the repository root)
# VKGRAD_BENCH names a vkgrad-bench binary (default build/bench/vkgrad-bench); the tests that need
# it, or PyTorch, skip without them. Tiny sizes and times: nothing here asserts on speed.
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "vkgrad_bench_torch.py")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import vkgrad_bench_torch as vbt  # noqa: E402

BENCH = os.environ.get("VKGRAD_BENCH", os.path.join(REPO, "build", "bench", "vkgrad-bench"))

try:
    import numpy
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True, cwd=REPO)


class Inputs(unittest.TestCase):
    @unittest.skipUnless(HAVE_TORCH, "needs python3-torch (and numpy)")
    def test_fill_is_cases_c_bit_for_bit(self):
        vbt.np = numpy
        # printed with %a by cases.c's fill() compiled on its own
        want = {(-1, 1, 1): "0x1.10a2ep-3 0x1.f75c7p-2 0x1.e24e8cp-1 -0x1.c7cf3p-4 -0x1.c8956p-4 0x1.0d343p-1",
                (-0.8, 2.0, 20): "-0x1.a9cb6p-3 -0x1.7dcadcp-1 -0x1.84481p-4 0x1.b1f1a8p-3 -0x1.06a9fp-1 -0x1.459d52p-2",
                (0, 256, 22): "0x1.901bc2p+7 0x1.df3308p+7 0x1.398b52p+4 0x1.584a94p+7 0x1.aa4b0ep+7 0x1.931d96p+7"}
        for (lo, hi, seed), text in want.items():
            got = vbt.fill(6, lo, hi, seed)
            self.assertEqual(got.dtype, numpy.float32)
            self.assertEqual([float(x) for x in got], [float.fromhex(t) for t in text.split()], (lo, hi, seed))


class CaseTable(unittest.TestCase):
    @unittest.skipUnless(os.access(BENCH, os.X_OK), "needs a vkgrad-bench binary (VKGRAD_BENCH)")
    def test_same_cases_as_vkgrad_bench(self):
        for suite in ("quick", "micro", "models"):
            v = subprocess.run([BENCH, "run", "--suite", suite, "--list"], capture_output=True, text=True, check=True)
            want = [line.replace("(not yet available)", "").strip() for line in v.stdout.splitlines() if line.strip()]
            got = run("run", "--suite", suite, "--list").stdout.split("\n")
            self.assertEqual([g for g in got if g], want, "%s: %s --list (rebuilt since cases.c changed?)" % (suite, BENCH))


class Validate(unittest.TestCase):
    def test_committed_reports_validate(self):
        res = os.path.join(REPO, "bench", "results")
        names = [n for n in os.listdir(res) if n.startswith(("pytorch-", "compare-pytorch-")) and n.endswith(".json")]
        self.assertTrue(names)
        for n in names:
            with open(os.path.join(res, n)) as f:
                self.assertEqual(vbt.validate_report(json.load(f)), [], n)

    def test_broken_reports_do_not(self):
        res = os.path.join(REPO, "bench", "results", "pytorch-models-1thread.json")
        with open(res) as f:
            good = json.load(f)
        k = next(i for i, c in enumerate(good["cases"]) if c["status"] == "ok")
        breaks = [
            lambda r: r["cases"][k].pop("unit"),
            lambda r: r["cases"][k].__setitem__("gpu_ms", None),              # ok without times
            lambda r: r["cases"][k].__setitem__("status", "fine"),
            lambda r: r["device"].__setitem__("device_uuid", "xyz"),
            lambda r: r["settings"].__setitem__("min_reps", "5"),
            lambda r: r.__setitem__("schema", "vkgrad-bench/2"),
            lambda r: r["cases"].append(dict(r["cases"][k])),                 # a name twice
            lambda r: r["cases"][k]["wall_ms"].__setitem__("median", float("nan")),
        ]
        for i, b in enumerate(breaks):
            r = json.loads(json.dumps(good))
            b(r)
            self.assertNotEqual(vbt.validate_report(r), [], "break %d" % i)


@unittest.skipUnless(HAVE_TORCH, "needs python3-torch")
class Run(unittest.TestCase):
    def test_a_small_run_validates_and_compares(self):
        with tempfile.TemporaryDirectory() as d:
            a, b, best = (os.path.join(d, n) for n in ("t1.json", "t2.json", "best.json"))
            for out, threads in ((a, "1"), (b, "2")):
                p = run("run", "--suite", "quick", "--filter", "mlp", "--min-time", "0.01", "--quiet",
                        "--threads", threads, "--out", out)
                self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(run("best", a, b, "--out", best).returncode, 0)
            p = run("validate", a, b, best)
            self.assertEqual(p.returncode, 0, p.stdout)
            with open(best) as f:
                r = json.load(f)
            names = [c["name"] for c in r["cases"]]
            self.assertEqual(names, ["matmul/mlp 128x784 @ 784x512", "matmul/mlp 128x512 @ 512x256",
                                     "matmul/mlp 128x256 @ 256x10", "model/mlp train step"])
            self.assertTrue(all(c["status"] == "ok" and c["note"].startswith("best of 1 thread") for c in r["cases"]))
            train = r["cases"][-1]
            self.assertEqual((train["settings"], train["unit"]), ("f32, batch 128", "samples/s"))
            vk = os.path.join(REPO, "bench", "results", "compare-pytorch-micro-vkgrad.json")
            if os.access(BENCH, os.X_OK) and os.path.exists(vk):
                c = subprocess.run([BENCH, "compare", vk, best], capture_output=True, text=True)
                self.assertEqual(c.returncode, 0, c.stderr)
                self.assertNotIn("settings differ", c.stderr + c.stdout)


if __name__ == "__main__":
    unittest.main()
