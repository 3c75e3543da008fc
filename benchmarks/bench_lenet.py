"""One epoch of LeNet-5 on MNIST: pyxconv against PyTorch eager, time and peak memory.

Same model (LeNet-5 with ReLU and max-pooling on 32x32 zero-padded digits),
same batch size (64), same optimiser (SGD, lr 0.01, momentum 0.9), same data
order. Each (library, thread count) runs in its own child process so that
its peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
is its own; the child loads MNIST, trains one epoch, evaluates on the test
set and reports the epoch's wall time (data loading excluded).

Threads: pyxconv's kernels via ``pyxconv.set_num_threads(n)`` and NumPy's
BLAS via threadpoolctl, against ``torch.set_num_threads(n)``.

Timings are noisy when other processes share the machine: run it on an
idle machine, and compare ratios from the same run.

``--omp-wait-policy`` sets ``OMP_WAIT_POLICY`` in both children; by
default each library runs with its own settings: pyxconv's import sets
``GOMP_SPINCOUNT=100000`` (idle OpenMP threads spin ~1.7 ms, then sleep),
torch keeps libgomp's default (they spin longer). With PASSIVE, every
parallel loop pays ~0.1 ms to wake a thread, and pyxconv's 2-thread epoch
was ~35% longer in our runs.

Usage::

    python benchmarks/bench_lenet.py [--data DIR] [--threads 1 2] [--limit N]
                                     [--out benchmarks/results/lenet.json]
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"


def _load(data, limit):
    import numpy as np

    from pyxconv.train import load_dataset

    x_tr, y_tr, x_te, y_te, _ = load_dataset(data)
    if limit:
        x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    order = np.random.default_rng(0).permutation(len(x_tr))
    return x_tr, y_tr, x_te, y_te, order


def run_pyxconv(data, threads, limit, batch_size):
    from threadpoolctl import threadpool_limits

    import pyxconv
    from pyxconv import nn, optim
    from pyxconv.models import lenet5

    x_tr, y_tr, x_te, y_te, order = _load(data, limit)
    pyxconv.set_num_threads(threads)
    with threadpool_limits(threads, user_api="blas"):
        nn.manual_seed(0)
        model = lenet5()
        model[0].requires_input_grad = False
        criterion = nn.SoftmaxCrossEntropy()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        start = time.perf_counter()
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = criterion(model(x_tr[idx]), y_tr[idx])
            model.backward(criterion.backward())
            opt.step()
            model.zero_grad()
        seconds = time.perf_counter() - start
        model.eval()
        correct = sum(int((model(x_te[i:i + 1000]).argmax(1) == y_te[i:i + 1000]).sum())
                      for i in range(0, len(x_te), 1000))
    return seconds, correct / len(x_te), float(loss)


def run_torch(data, threads, limit, batch_size):
    import torch

    torch.set_num_threads(threads)
    x_tr, y_tr, x_te, y_te, order = _load(data, limit)
    t = torch.nn
    torch.manual_seed(0)
    model = t.Sequential(t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2), t.Conv2d(6, 16, 5),
                         t.ReLU(), t.MaxPool2d(2), t.Flatten(), t.Linear(400, 120), t.ReLU(),
                         t.Linear(120, 84), t.ReLU(), t.Linear(84, 10))
    criterion = t.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    order_t = torch.from_numpy(order)
    start = time.perf_counter()
    for i in range(0, len(order), batch_size):
        idx = order_t[i:i + batch_size]
        opt.zero_grad()
        loss = criterion(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():  # batches of 1000, as for pyxconv
        for i in range(0, len(x_te), 1000):
            pred = model(torch.from_numpy(x_te[i:i + 1000])).argmax(1).numpy()
            correct += int((pred == y_te[i:i + 1000]).sum())
    return seconds, correct / len(x_te), float(loss)


def child(args):
    fn = run_pyxconv if args.child == "pyxconv" else run_torch
    seconds, accuracy, loss = fn(args.data, args.child_threads, args.limit, args.batch_size)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(seconds=seconds, accuracy=accuracy, final_loss=loss,
                          peak_rss_mib=peak_kib / 1024)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=None, help="first N training images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lenet.json"))
    parser.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                        help="set OMP_WAIT_POLICY in both children (default: inherit)")
    parser.add_argument("--child", choices=["pyxconv", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    results = []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy
    for threads in args.threads:
        row = {"threads": threads}
        for lib in ("pyxconv", "torch"):
            cmd = [sys.executable, __file__, "--child", lib, "--child-threads", str(threads),
                   "--data", args.data, "--batch-size", str(args.batch_size)]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                sys.exit(f"{lib} child at {threads} thread(s) failed:\n{out.stderr}")
            row[lib] = json.loads(out.stdout.strip().splitlines()[-1])
        row["time_ratio_torch_over_pyxconv"] = row["torch"]["seconds"] / row["pyxconv"]["seconds"]
        row["rss_ratio_torch_over_pyxconv"] = (row["torch"]["peak_rss_mib"]
                                               / row["pyxconv"]["peak_rss_mib"])
        results.append(row)
        p, t = row["pyxconv"], row["torch"]
        print(f"{threads} thread(s): pyxconv {p['seconds']:.1f} s, {p['peak_rss_mib']:.0f} MiB, "
              f"acc {p['accuracy']:.4f} | torch {t['seconds']:.1f} s, {t['peak_rss_mib']:.0f} "
              f"MiB, acc {t['accuracy']:.4f} | time ratio torch/pyxconv "
              f"{row['time_ratio_torch_over_pyxconv']:.2f}, RSS ratio "
              f"{row['rss_ratio_torch_over_pyxconv']:.2f}", flush=True)
    import torch

    import pyxconv
    report = dict(
        benchmark="LeNet-5, one epoch of MNIST, batch %d, SGD(lr=0.01, momentum=0.9)"
        % args.batch_size,
        training_images=args.limit or 60000,
        omp_wait_policy=env.get("OMP_WAIT_POLICY",
                                "(not set here; each library's own default)"),
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpu_count=os.cpu_count(), python=platform.python_version()),
        versions=dict(pyxconv=pyxconv.__version__, torch=torch.__version__),
        note="ratios above 1 mean pyxconv is faster / smaller; timings are noisy when other "
             "processes share the machine",
        results=results,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
