"""Predicted data-parallel scaling efficiency for R = 2..64 ranks over 10, 25 and 100 Gbit/s.

For each model (LeNet-5, small_resnet) it measures, on this machine, the
one-process step time of the trainer's step (global batch 64, float32,
forward, backward, SGD with momentum) at ``--threads`` threads, and counts
the gradient bytes; then it prints the ring-allreduce cost model's
efficiency (:func:`pyxconv.distributed.ring_allreduce_efficiency`, no
overlap, ``--latency`` per message) for R = 2, 4, ..., 64. The docs chapter
"Data-parallel training" explains the model.

Usage::

    python benchmarks/predict_scaling.py [--steps 20] [--threads 1] [--latency 20e-6]
"""
import argparse
import time

import numpy as np

import pyxconv
from pyxconv import models, nn, optim
from pyxconv.distributed import ring_allreduce_efficiency

RANKS = (2, 4, 8, 16, 32, 64)
GBIT = (10, 25, 100)
BATCH = 64


def step_seconds(model_name, steps, threads):
    """Median time of one training step on random 32x32 digits-shaped data."""
    nn.manual_seed(0)
    model = getattr(models, model_name)()
    model[0].requires_input_grad = False
    crit = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    times = []
    with pyxconv.num_threads(threads):
        for k in range(steps + 3):
            start = time.perf_counter()
            model.zero_grad()
            crit(model(x), y)
            model.backward(crit.backward())
            opt.step()
            if k >= 3:  # warm-up steps plan and allocate
                times.append(time.perf_counter() - start)
    gradient_bytes = sum(p.data.nbytes for p in model.parameters())
    return float(np.median(times)), gradient_bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latency", type=float, default=20e-6)
    parser.add_argument("--models", nargs="+", default=["lenet5", "small_resnet"])
    args = parser.parse_args()
    print(f"scaling efficiency, global batch {BATCH}, ring allreduce, "
          f"{args.latency * 1e6:.0f} us latency; R = {', '.join(map(str, RANKS))}")
    for name in args.models:
        seconds, nbytes = step_seconds(name, args.steps, args.threads)
        print(f"{name}: step {seconds * 1e3:.1f} ms at {args.threads} thread(s), "
              f"{nbytes / 1e3:.0f} KB of gradients")
        for gbit in GBIT:
            row = [f"{ring_allreduce_efficiency(seconds, nbytes, r, gbit, args.latency):4.2f}"
                   for r in RANKS]
            print(f"  {gbit:3d} Gbit/s", *row)


if __name__ == "__main__":
    main()
