"""conv_transpose2d forward and forward+backward: pyxconv against PyTorch's CPU kernels.

Both libraries run in this process at the same thread count (pyxconv's OpenMP
loops, NumPy's BLAS and torch's intra-op pool all limited to it), in
alternating runs; each figure is the best of three medians of the repeats.
The ratio is ``torch_ms / pyxconv_ms``: above 1 pyxconv is faster.

The machine is shared with other developers while this runs, so the figures
are noisy: rerun before reading much into a difference of 10-20 %.

Wait policy: torch and pyxconv share one OpenMP runtime here (libgomp,
same soname), which reads its settings once. pyxconv is imported first, so
both run with what ``import pyxconv`` sets (idle threads spin ~1.7 ms, see
``pyxconv._threads``); ``--wait-policy passive`` sets
``OMP_WAIT_POLICY=PASSIVE`` for both instead. Before pyxconv kept NumPy's
BLAS on one thread inside its parallel sections, spinning pools starved
each other here (7.4 ms at 1 thread, 145 ms at 2).

Usage::

    python benchmarks/bench_conv_transpose.py [--repeats 7] [--threads 1 2]
        [--out benchmarks/results/conv_transpose.json] [--wait-policy pyxconv|passive]
"""
import argparse
import json
import platform
import sys
from pathlib import Path

from _timing import WAIT_POLICY_HELP, median_time, wait_policy_from_argv, wait_settings

WAIT_POLICY = wait_policy_from_argv(sys.argv) if __name__ == "__main__" else "pyxconv"
import pyxconv  # noqa: E402  (first: its OpenMP settings hold for torch too)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from pyxconv.functional import conv_transpose2d, conv_transpose2d_backward  # noqa: E402

# (N, C_in, H, W, C_out, k, stride, pad, output_padding), from the issue
LAYERS = [
    (32, 64, 16, 16, 32, 4, 2, 1, 0),  # DCGAN-style 2x upsampling
    (32, 16, 8, 8, 8, 3, 2, 1, 1),
]


def bench_layer(layer, threads, repeats):
    n, c_in, h, w, c_out, k, stride, pad, out_pad = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = (rng.standard_normal((c_in, c_out, k, k)) * 0.1).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    kw = dict(stride=stride, padding=pad, output_padding=out_pad)
    out = conv_transpose2d(x, weight, bias, **kw)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(weight).requires_grad_()
    tb = torch.from_numpy(bias).requires_grad_()
    tgrad = torch.from_numpy(grad)

    # same answer before timing anything
    ref = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-3, atol=1e-3)

    def ours_forward():
        conv_transpose2d(x, weight, bias, **kw)

    def ours_train():
        conv_transpose2d(x, weight, bias, **kw)
        conv_transpose2d_backward(grad, x, weight, **kw)

    def torch_forward():
        with torch.no_grad():
            torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)

    def torch_train():
        y = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
        tx.grad = tw.grad = tb.grad = None
        y.backward(tgrad)

    records = []
    for mode, ours, theirs in (("forward", ours_forward, torch_forward),
                               ("forward+backward", ours_train, torch_train)):
        ours_times, torch_times = [], []
        for _ in range(3):  # alternate the two libraries
            ours_times.append(median_time(ours, repeats))
            torch_times.append(median_time(theirs, repeats))
        ours_s, torch_s = min(ours_times), min(torch_times)
        records.append({
            "op": "conv_transpose2d", "mode": mode, "case": "x".join(map(str, layer)),
            "layer": list(layer), "threads": threads,
            "pyxconv_ms": ours_s * 1e3, "torch_ms": torch_s * 1e3, "ratio": torch_s / ours_s,
        })
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "conv_transpose.json"))
    parser.add_argument("--wait-policy", choices=["pyxconv", "passive"], default="pyxconv",
                        help=WAIT_POLICY_HELP)
    args = parser.parse_args()
    results = {"machine": platform.processor() or platform.machine(),
               "torch": torch.__version__, "numpy": np.__version__,
               "pyxconv": pyxconv.__version__,
               "note": "shared 2-core machine, other developers compiling and testing: noisy",
               "wait_policy": WAIT_POLICY, **wait_settings(),
               "records": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
            print(f"\n== {threads} thread(s)")
            print(f"{'layer (N,Cin,H,W,Cout,k,s,p,op)':36} {'mode':17} {'pyxconv ms':>10} "
                  f"{'torch ms':>9} {'ratio':>6}")
            for layer in LAYERS:
                for r in bench_layer(layer, threads, args.repeats):
                    results["records"].append(r)
                    print(f"{str(layer):36} {r['mode']:17} {r['pyxconv_ms']:10.3f} "
                          f"{r['torch_ms']:9.3f} {r['ratio']:6.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
