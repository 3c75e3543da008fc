"""conv2d forward and forward+backward: pyxconv against PyTorch's CPU kernels.

Both libraries run in this process at the same thread count, in alternating
runs; each figure is the median of the repeats. The ratio is
``torch_ms / pyxconv_ms``: above 1 pyxconv is faster. The machine's sgemm rate
(NumPy's BLAS, same thread count) is measured in the same run for reference.

Usage::

    python benchmarks/bench_conv.py [--repeats 7] [--threads 1 2] [--out benchmarks/results/conv.json]
"""
import argparse
import json
import math
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
from threadpoolctl import threadpool_limits  # noqa: E402

from pyxconv._blas import available_isas, get_isa  # noqa: E402
from pyxconv.functional import conv2d, conv2d_backward  # noqa: E402

# (N, C_in, H, W, C_out, k, stride, pad)
LAYERS = [
    (64, 1, 28, 28, 6, 5, 1, 0),
    (64, 6, 14, 14, 16, 5, 1, 0),
    (32, 64, 32, 32, 64, 3, 1, 1),
    (32, 128, 16, 16, 128, 3, 1, 1),
    (32, 3, 32, 32, 32, 3, 1, 1),
    (32, 64, 32, 32, 128, 3, 2, 1),
    (32, 256, 14, 14, 64, 1, 1, 0),
    (1, 3, 5, 5, 2, 3, 2, 1),
]


def sgemm_gflops(threads, size=1024):
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    b = a.copy()
    with threadpool_limits(threads, user_api="blas"):
        seconds = median_time(lambda: a @ b, 5)
    return 2 * size ** 3 / seconds / 1e9


def bench_layer(layer, threads, repeats):
    n, c_in, h, w, c_out, k, stride, pad = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = rng.standard_normal((c_out, c_in, k, k)).astype(np.float32) * 0.1
    bias = rng.standard_normal(c_out).astype(np.float32)
    out = conv2d(x, weight, bias, stride=stride, padding=pad)
    grad = np.ones_like(out)
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(weight).requires_grad_()
    tb = torch.from_numpy(bias).requires_grad_()
    tgrad = torch.from_numpy(grad)

    def ours_forward():
        conv2d(x, weight, bias, stride=stride, padding=pad)

    def ours_train():
        conv2d(x, weight, bias, stride=stride, padding=pad)
        conv2d_backward(grad, x, weight, stride=stride, padding=pad)

    def torch_forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)

    def torch_train():
        y = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)
        tx.grad = tw.grad = tb.grad = None
        y.backward(tgrad)

    flops = 2.0 * n * c_out * out.shape[2] * out.shape[3] * c_in * k * k
    records = []
    for mode, ours, theirs, work in (("forward", ours_forward, torch_forward, flops),
                                     ("forward+backward", ours_train, torch_train, 3 * flops)):
        ours_times, torch_times = [], []
        for _ in range(3):  # alternate the two libraries
            ours_times.append(median_time(ours, repeats))
            torch_times.append(median_time(theirs, repeats))
        ours_s, torch_s = min(ours_times), min(torch_times)
        # the best instruction set's rows keep the plain mode names; another's say which
        shown = mode if get_isa() == available_isas()[0] else f"{mode}, {get_isa()}"
        records.append({
            "op": "conv2d", "mode": shown, "isa": get_isa(), "case": "x".join(map(str, layer)),
            "layer": layer, "threads": threads,
            "pyxconv_ms": ours_s * 1e3, "torch_ms": torch_s * 1e3,
            "ratio": torch_s / ours_s, "pyxconv_gflops": work / ours_s / 1e9,
            "torch_gflops": work / torch_s / 1e9,
        })
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=None,
                        help="JSON file (default benchmarks/results/conv.json, or conv_<isa>.json "
                             "under another PYXCONV_ISA than the best)")
    parser.add_argument("--wait-policy", choices=["pyxconv", "passive"], default="pyxconv",
                        help=WAIT_POLICY_HELP)
    args = parser.parse_args()
    best = get_isa() == available_isas()[0]
    args.out = args.out or str(Path(__file__).parent / "results"
                               / ("conv.json" if best else f"conv_{get_isa()}.json"))
    results = {"machine": platform.processor() or platform.machine(), "isa": get_isa(),
               "torch_isa": TORCH_ISA,
               "torch": torch.__version__, "numpy": np.__version__,
               "pyxconv": pyxconv.__version__, "wait_policy": WAIT_POLICY, **wait_settings(),
               "sgemm_gflops": {}, "records": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
            gf = sgemm_gflops(threads)
            results["sgemm_gflops"][str(threads)] = gf
            print(f"\n== {threads} thread(s): sgemm {gf:.1f} GF/s (1024^3, NumPy's BLAS)")
            print(f"{'layer (N,Cin,H,W,Cout,k,s,p)':34} {'mode':17} {'pyxconv ms':>10} "
                  f"{'torch ms':>9} {'ratio':>6} {'GF/s':>6} {'%sgemm':>6}")
            for layer in LAYERS:
                for r in bench_layer(layer, threads, args.repeats):
                    results["records"].append(r)
                    print(f"{str(layer):34} {r['mode']:17} {r['pyxconv_ms']:10.3f} "
                          f"{r['torch_ms']:9.3f} {r['ratio']:6.2f} {r['pyxconv_gflops']:6.1f} "
                          f"{100 * r['pyxconv_gflops'] / gf:5.0f}%")
            for mode in ("forward", "forward+backward"):
                ratios = [r["ratio"] for r in results["records"]
                          if r["threads"] == threads and r["mode"].split(",")[0] == mode]
                geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
                print(f"geometric mean ratio, {mode}: {geo:.2f} (min {min(ratios):.2f})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
