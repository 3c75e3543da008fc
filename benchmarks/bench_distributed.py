"""Data-parallel training throughput: 1 process x 1 thread, 1 x 2 threads, 2 ranks x 1 thread.

Each configuration runs as whole processes (``mpiexec -n 2`` for the ranks)
doing the trainer's step: the global batch of 64 split over the ranks, its
forward and backward, gradient averaging (:class:`pyxconv.distributed.GradientAverager`),
an SGD step. The timed part is ``--steps`` steps after 3 warm-up steps; data
loading and process start are excluded. Every configuration sees the same
batches. Gradients go in 64 KiB buckets. For 2 ranks the gradient averaging runs twice, with one Allreduce
per bucket after backward ("end") and with each bucket's Iallreduce started
during backward ("overlap"), to measure whether overlapping pays.

Models: LeNet-5 and small_resnet (width 16), float32, on scikit-learn's
digits scaled to 32x32 (``--data DIR`` for MNIST-format data).

The goal (issue 17): on 2 cores, 2 ranks x 1 thread >= 1.7x the samples/s of
1 process x 1 thread, and not slower than 1 process x 2 threads. Timings are
noisy when other processes share the machine; compare ratios from one run.

Usage::

    python benchmarks/bench_distributed.py [--steps 60] [--data DIR]
                                           [--out benchmarks/results/distributed.json]
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# 64 KiB buckets: LeNet-5's 247 KB of float32 gradients in 5 buckets, so that there is
# something to overlap (one 1 MiB bucket would hold them all)
BUCKET = 64 * 1024


def worker(model_name, threads, overlap, steps, batch, data):
    import numpy as np

    import pyxconv
    from pyxconv import distributed as dist
    from pyxconv import models, nn, optim
    from pyxconv.train import load_dataset
    from threadpoolctl import threadpool_limits

    dist.install_excepthook()
    x, y = load_dataset(data)[:2]
    world, me = dist.world_size(), dist.rank()
    part = batch // world
    nn.manual_seed(0)
    model = getattr(models, model_name)()
    model[0].requires_input_grad = False
    dist.broadcast_module(model)
    avg = dist.GradientAverager(model, bucket_bytes=BUCKET, overlap=overlap)
    crit = nn.SoftmaxCrossEntropy()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    order = np.random.default_rng(0).permutation(len(x))
    comm_time = 0.0

    def step(k):
        nonlocal comm_time
        i = (k * batch) % (len(x) - batch)
        idx = order[i:i + batch][me * part:(me + 1) * part]
        model.zero_grad()
        crit(model(x[idx]), y[idx])
        avg.backward(crit.backward())
        t = time.perf_counter()
        avg.reduce()
        comm_time += time.perf_counter() - t
        opt.step()

    with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
        for k in range(3):
            step(k)
        if world > 1:
            dist._comm().Barrier()
        comm_time = 0.0
        start = time.perf_counter()
        for k in range(3, 3 + steps):
            step(k)
        if world > 1:
            dist._comm().Barrier()
        seconds = time.perf_counter() - start
    if dist.is_main():
        print(json.dumps(dict(samples_per_second=steps * batch / seconds, seconds=seconds,
                              wait_in_reduce_seconds=comm_time, steps=steps, batch=batch,
                              buckets=len(avg.buckets),
                              gradient_bytes=int(sum(b.nbytes for b in avg.buckets)))))


def run(model_name, ranks, threads, overlap, steps, data):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model_name, str(threads),
           str(int(overlap)), str(steps)] + (["--data", data] if data else [])
    if ranks > 1:
        exe = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
        cmd = [exe, "-n", str(ranks)] + cmd
    else:
        env["PYXCONV_NO_MPI"] = "1"  # one plain process: no MPI initialisation at all
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode:
        raise RuntimeError(f"{cmd} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("MODEL", "THREADS", "OVERLAP", "STEPS"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--data", default=None)
    parser.add_argument("--models", nargs="+", default=["lenet5", "small_resnet"])
    parser.add_argument("--out", default=str(HERE / "results" / "distributed.json"))
    args = parser.parse_args()
    if args.worker:
        m, t, o, s = args.worker
        return worker(m, int(t), bool(int(o)), int(s), 64, args.data)
    results = []
    for model_name in args.models:
        steps = args.steps if model_name == "lenet5" else max(5, args.steps // 4)
        row = {"model": model_name, "steps": steps}
        row["1 process x 1 thread"] = run(model_name, 1, 1, False, steps, args.data)
        row["1 process x 2 threads"] = run(model_name, 1, 2, False, steps, args.data)
        row["2 ranks x 1 thread, allreduce at end"] = run(model_name, 2, 1, False, steps,
                                                          args.data)
        row["2 ranks x 1 thread, overlapped iallreduce"] = run(model_name, 2, 1, True, steps,
                                                               args.data)
        base = row["1 process x 1 thread"]["samples_per_second"]
        two_t = row["1 process x 2 threads"]["samples_per_second"]
        for key in ("2 ranks x 1 thread, allreduce at end",
                    "2 ranks x 1 thread, overlapped iallreduce"):
            r = row[key]["samples_per_second"]
            row[key]["speedup_vs_1x1"] = r / base
            row[key]["vs_1x2"] = r / two_t
        row["1 process x 2 threads"]["speedup_vs_1x1"] = two_t / base
        results.append(row)
        print(json.dumps(row, indent=1), flush=True)
    report = {
        "benchmark": "training steps/s, global batch 64, SGD momentum 0.9, float32",
        "data": args.data or "scikit-learn digits scaled to 32x32",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version()},
        "goal": "2 ranks x 1 thread >= 1.7x 1 process x 1 thread; >= 1 process x 2 threads",
        "note": "noisy when other processes share the machine; compare ratios of one run",
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
