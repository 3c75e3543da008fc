"""max_pool2d with switches, forward and forward+backward: pyxconv against PyTorch's CPU kernels.

PyTorch is called as ``torch.nn.functional.max_pool2d(..., return_indices=True)``
on a contiguous NCHW float32 tensor, the call that gives switches (the
deconvnet's unpooling needs them). Both libraries run in this process at the
same thread count, in alternating runs; each figure is the best of three
medians. The ratio is ``torch_ms / pyxconv_ms``: above 1 pyxconv is faster.
Throughput is in millions of input elements per second. Average pooling is
timed too, for information.

``PYXCONV_ISA=avx2`` in the environment times pyxconv's AVX2 row loops and
restricts torch to its AVX2 kernels too (``ATEN_CPU_CAPABILITY``), so that an
AVX-512 machine measures what an AVX2 machine would.

Wait policy: torch and pyxconv share one OpenMP runtime here (libgomp,
same soname), which reads its settings once. pyxconv is imported first, so
both run with what ``import pyxconv`` sets (idle threads spin ~1.7 ms, see
``pyxconv._threads``); ``--wait-policy passive`` sets
``OMP_WAIT_POLICY=PASSIVE`` for both instead, which costs every 2-thread
call ~0.1 ms to wake the second thread. The load average is recorded: other
jobs on the machine distort the 2-thread rows most.

Usage::

    [PYXCONV_ISA=avx2] python benchmarks/bench_pool.py [--repeats 7] [--threads 1 2]
        [--out benchmarks/results/pool.json] [--wait-policy pyxconv|passive]
"""
import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

from _timing import (WAIT_POLICY_HELP, median_time, restrict_torch_isa, wait_policy_from_argv,
                     wait_settings)

WAIT_POLICY = wait_policy_from_argv(sys.argv) if __name__ == "__main__" else "pyxconv"
TORCH_ISA = restrict_torch_isa()
import pyxconv  # noqa: E402  (first: its OpenMP settings hold for torch too)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pyxconv._blas import available_isas, get_isa  # noqa: E402
from pyxconv.functional import (  # noqa: E402
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)

# (N, C, H, W, kernel, stride, padding)
CASES = [
    (64, 6, 28, 28, 2, 2, 0),     # LeNet-5's first pooling
    (32, 64, 32, 32, 2, 2, 0),
    (32, 128, 16, 16, 2, 2, 0),
    (32, 64, 56, 56, 3, 2, 1),    # ResNet's stem pooling: overlapping windows
]
AVG_CASES = [
    (32, 64, 32, 32, 2, 2, 0),
    (32, 1024, 7, 7, 7, 7, 0),    # GoogLeNet's global 7x7 average pool
]


def max_pool_functions(case):
    n, c, h, w, k, s, p = case
    x = np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32)
    out, idx = max_pool2d(x, k, s, p, return_indices=True)
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tgrad = torch.from_numpy(grad)
    t_out, t_idx = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
    if not (np.array_equal(out, t_out.detach().numpy())
            and np.array_equal(idx, t_idx.numpy())):
        raise AssertionError(f"pyxconv and torch disagree on {case}")

    def ours_forward():
        max_pool2d(x, k, s, p, return_indices=True)

    def ours_train():
        _, switches = max_pool2d(x, k, s, p, return_indices=True)
        max_pool2d_backward(grad, switches, x.shape)

    def torch_forward():
        with torch.no_grad():
            torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)

    def torch_train():
        y, _ = torch.nn.functional.max_pool2d(tx, k, s, p, return_indices=True)
        tx.grad = None
        y.backward(tgrad)

    return x.size, (("forward", ours_forward, torch_forward),
                    ("forward+backward", ours_train, torch_train))


def avg_pool_functions(case):
    n, c, h, w, k, s, p = case
    x = np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32)
    out = avg_pool2d(x, k, s, p)
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tgrad = torch.from_numpy(grad)

    def ours_forward():
        avg_pool2d(x, k, s, p)

    def ours_train():
        avg_pool2d(x, k, s, p)
        avg_pool2d_backward(grad, x.shape, k, s, p)

    def torch_forward():
        with torch.no_grad():
            torch.nn.functional.avg_pool2d(tx, k, s, p)

    def torch_train():
        y = torch.nn.functional.avg_pool2d(tx, k, s, p)
        tx.grad = None
        y.backward(tgrad)

    return x.size, (("forward", ours_forward, torch_forward),
                    ("forward+backward", ours_train, torch_train))


def bench_case(op, case, threads, repeats):
    make = max_pool_functions if op == "max_pool2d" else avg_pool_functions
    elements, modes = make(case)
    records = []
    for mode, ours, theirs in modes:
        ours_times, torch_times = [], []
        for _ in range(3):  # alternate the two libraries
            ours_times.append(median_time(ours, repeats))
            torch_times.append(median_time(theirs, repeats))
        ours_s, torch_s = min(ours_times), min(torch_times)
        # rows timed on another instruction set than the best get tables of their own
        shown = mode if get_isa() == available_isas()[0] else f"{mode}, {get_isa()}"
        records.append({
            "op": op, "mode": shown, "isa": get_isa(), "case": "x".join(map(str, case)), "layer": case,
            "threads": threads, "pyxconv_ms": ours_s * 1e3, "torch_ms": torch_s * 1e3,
            "ratio": torch_s / ours_s, "pyxconv_melem_s": elements / ours_s / 1e6,
            "torch_melem_s": elements / torch_s / 1e6,
        })
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=None,
                        help="results file (default: benchmarks/results/pool.json, or "
                             "pool_avx2.json under PYXCONV_ISA=avx2)")
    parser.add_argument("--wait-policy", choices=["pyxconv", "passive"], default="pyxconv",
                        help=WAIT_POLICY_HELP)
    args = parser.parse_args()
    if args.out is None:
        name = "pool_avx2.json" if os.environ.get("PYXCONV_ISA") == "avx2" else "pool.json"
        args.out = str(Path(__file__).parent / "results" / name)
    results = {"machine": platform.processor() or platform.machine(),
               "torch": torch.__version__, "numpy": np.__version__,
               "pyxconv": pyxconv.__version__, "isa": get_isa(),
               "torch_isa": TORCH_ISA,
               "note": "shared 2-core machine, other developers compiling and testing: noisy",
               "wait_policy": WAIT_POLICY, **wait_settings(),
               # other jobs on the machine distort the 2-thread figures most
               "loadavg_before": os.getloadavg(), "records": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with pyxconv.num_threads(threads):
            print(f"\n== {threads} thread(s)")
            print(f"{'op':11} {'case (N,C,H,W,k,s,p)':28} {'mode':17} {'pyxconv ms':>10} "
                  f"{'torch ms':>9} {'ratio':>6} {'Mel/s':>7} {'torch':>6}")
            for op, cases in (("max_pool2d", CASES), ("avg_pool2d", AVG_CASES)):
                for case in cases:
                    for r in bench_case(op, case, threads, args.repeats):
                        results["records"].append(r)
                        print(f"{op:11} {str(case):28} {r['mode']:17} {r['pyxconv_ms']:10.3f} "
                              f"{r['torch_ms']:9.3f} {r['ratio']:6.2f} "
                              f"{r['pyxconv_melem_s']:7.0f} {r['torch_melem_s']:6.0f}")
            for mode in ("forward", "forward+backward"):
                ratios = [r["ratio"] for r in results["records"] if r["threads"] == threads
                          and r["mode"].split(",")[0] == mode and r["op"] == "max_pool2d"]
                geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
                print(f"max_pool2d geometric mean ratio, {mode}: {geo:.2f} "
                      f"(min {min(ratios):.2f})")
    results["loadavg_after"] = os.getloadavg()
    print(f"load average before {results['loadavg_before'][0]:.1f}, "
          f"after {results['loadavg_after'][0]:.1f} (on {os.cpu_count()} CPUs)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
