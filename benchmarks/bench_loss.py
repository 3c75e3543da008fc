"""Softmax cross-entropy, forward+backward: pyxconv against PyTorch.

pyxconv's ``softmax_cross_entropy(logits, target)`` returns the mean loss and
its gradient in one call; PyTorch's equivalent is
``torch.nn.functional.cross_entropy`` followed by ``backward()`` on a leaf
tensor (its gradient set to None before each call). Both get float32 logits
and int64 class indices, run in this process at the same thread count
(``pyxconv.num_threads(n)`` and ``torch.set_num_threads(n)``), in alternating
runs with a short pause between them (see PAUSE); each figure is the median
of the per-round medians. The ratio is
``torch_ms / pyxconv_ms``: above 1 pyxconv is faster. The forward pass alone
(``cross_entropy``, torch under ``no_grad``) is timed too, for information.

Timings are noisy on a machine that others use at the same time; the JSON
keeps every figure, with the load average at the time, so runs can be
compared. At 2 threads a loaded machine mostly measures how long OpenMP's
team waits for a descheduled thread, for both libraries.

Usage::

    python benchmarks/bench_loss.py [--repeats 7] [--threads 1 2]
                                    [--out benchmarks/results/loss.json]
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from _timing import WAIT_POLICY_HELP, wait_policy_from_argv, wait_settings

WAIT_POLICY = wait_policy_from_argv(sys.argv) if __name__ == "__main__" else "pyxconv"
import pyxconv  # noqa: E402  (first: its OpenMP settings hold for torch too)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from pyxconv.functional import cross_entropy, softmax_cross_entropy  # noqa: E402

SHAPES = [(256, 10), (4096, 10), (1024, 1000)]
# Seconds of rest before each timed batch. PyTorch and pyxconv each bring an
# OpenMP runtime, whose idle threads spin for a while after a parallel region;
# on 2 cores, one library's spinning threads would otherwise slow down the
# other library's next batch at 2 threads (by milliseconds, either way).
PAUSE = 0.1


def median_time(fn, min_time=0.05):
    """Median seconds per call over 5 batches, each batch lasting >= min_time."""
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    inner = max(1, int(min_time / 5 / max(once, 1e-7)))
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return float(np.median(samples))


def _load():
    """The 1-minute load average (None where the OS has none): how busy the machine was."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def functions(shape):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(shape).astype(np.float32)
    target = rng.integers(0, shape[1], shape[0])
    tx = torch.from_numpy(logits).requires_grad_()
    tt = torch.from_numpy(target)

    loss, grad = softmax_cross_entropy(logits, target)
    t_loss = torch.nn.functional.cross_entropy(tx, tt)
    t_loss.backward()
    if not (np.isclose(float(loss), t_loss.item(), rtol=1e-5)
            and np.allclose(grad, tx.grad.numpy(), rtol=1e-4, atol=1e-7)):
        raise AssertionError(f"pyxconv and torch disagree on {shape}")

    def ours_train():
        softmax_cross_entropy(logits, target)

    def torch_train():
        tx.grad = None
        torch.nn.functional.cross_entropy(tx, tt).backward()

    def ours_forward():
        cross_entropy(logits, target)

    def torch_forward():
        with torch.no_grad():
            torch.nn.functional.cross_entropy(tx, tt)

    return (("cross_entropy forward+backward", ours_train, torch_train),
            ("cross_entropy forward", ours_forward, torch_forward))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "loss.json"))
    parser.add_argument("--wait-policy", choices=["pyxconv", "passive"], default="pyxconv",
                        help=WAIT_POLICY_HELP)
    args = parser.parse_args()

    records = []
    print(f"{'op':32s} {'shape':>12s} {'thr':>3s} {'pyxconv ms':>11s} {'torch ms':>9s} "
          f"{'ratio':>6s}")
    for shape in SHAPES:
        modes = functions(shape)
        for threads in args.threads:
            torch.set_num_threads(threads)
            with pyxconv.num_threads(threads):
                for op, ours, theirs in modes:
                    ours_t, theirs_t = [], []
                    for _ in range(args.repeats):  # alternate the two libraries
                        time.sleep(PAUSE)
                        ours_t.append(median_time(ours))
                        time.sleep(PAUSE)
                        theirs_t.append(median_time(theirs))
                    ours_ms = 1e3 * float(np.median(ours_t))
                    theirs_ms = 1e3 * float(np.median(theirs_t))
                    ratio = theirs_ms / ours_ms
                    records.append(dict(op=op, shape=list(shape), threads=threads,
                                        pyxconv_ms=round(ours_ms, 5),
                                        torch_ms=round(theirs_ms, 5), ratio=round(ratio, 3),
                                        dtype="float32", load_average=_load(),
                                        wait_policy=WAIT_POLICY, **wait_settings()))
                    print(f"{op:32s} {str(shape):>12s} {threads:3d} {ours_ms:11.4f} "
                          f"{theirs_ms:9.4f} {ratio:6.2f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"\nwritten to {out}  ({platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, pyxconv {pyxconv.__version__}); timings are noisy "
          "while other work runs on this machine")


if __name__ == "__main__":
    main()
