"""pyxconv.distributed: single-process identities, and 2-rank runs under an mpiexec
that each test starts itself (skipped, with the reason, only without mpi4py)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pyxconv import distributed as dist
from pyxconv.models import lenet5

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_mpi_worker.py")


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py cannot be imported (pip install -e '.[mpi]')")
    exe = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    if not os.path.exists(exe):
        pytest.skip("mpi4py is installed but no mpiexec is on PATH")
    return exe


def _run(what, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(WORKER), what],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    return proc, time.monotonic() - start


def test_single_process_helpers_are_identities():
    assert (dist.world_size(), dist.rank(), dist.is_main()) == (1, 0, True)
    model = lenet5()
    before = model.state_dict()
    dist.broadcast_module(model)
    dist.average_buffers(model)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    averager = dist.GradientAverager(model, bucket_bytes=1000)
    grads = [np.random.default_rng(i).normal(size=p.grad.shape).astype(p.grad.dtype)
             for i, p in enumerate(model.parameters())]
    for p, g in zip(model.parameters(), grads):
        p.grad[...] = g
    averager.reduce()
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)
    assert dist.default_threads() >= 1


def test_buckets_are_flat_views_in_backward_order():
    model = lenet5()
    averager = dist.GradientAverager(model, bucket_bytes=64 * 1024)
    params = list(reversed(model.parameters()))
    flat_params = [p for views in averager._views for p, _ in views]
    assert [id(p) for p in flat_params] == [id(p) for p in params]
    assert sum(b.size for b in averager.buckets) == sum(p.grad.size for p in params)
    assert 1 < len(averager.buckets) < len(params)
    for bucket, views in zip(averager.buckets, averager._views):
        assert bucket.nbytes <= 64 * 1024 or len(views) == 1
        for p, _ in views:
            assert np.shares_memory(p.grad, bucket)
    with pytest.raises(ValueError, match="bucket_bytes must be >= 1, got 0"):
        dist.GradientAverager(model, bucket_bytes=0)


def test_shard_splits_a_batch_into_disjoint_parts():
    idx = np.random.default_rng(0).permutation(13)
    parts = [dist.shard(idx, r, 3) for r in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(13))
    assert dist.contiguous_shard(12, 2, 3) == slice(8, 12)
    with pytest.raises(ValueError, match="rank=3, world=3"):
        dist.shard(idx, 3, 3)
    with pytest.raises(ValueError, match="13 samples do not split evenly over 2 ranks"):
        dist.contiguous_shard(13, 0, 2)


def test_two_ranks_train_lenet_to_the_one_process_weights():
    proc, _ = _run("equivalence")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["world"] == 2 and out["threads"] >= 1
    for key, r in out.items():
        if not isinstance(r, dict):
            continue
        assert r["same_start"] and r["ranks_equal"], key
        assert r["moved"] > 1e-3, key  # training moved the weights: the comparison means something
    # float64, 8 steps of SGD with momentum: the one difference from one process is the
    # order of the sums (each rank's mean over 16 samples, then the mean of the two means,
    # against one mean over 32), a few ulps per step; 1e-12 leaves room for their growth.
    for key in ("lenet5/end", "lenet5/overlap"):
        assert out[key]["rel"] <= 1e-12, (key, out[key]["rel"])
    # small_resnet's BatchNorm normalises each rank's 16 samples by their own statistics
    # (as DDP without SyncBatchNorm): not the one-process trajectory, but equal on both ranks.
    assert out["small_resnet/end"]["rel"] > 1e-6


def test_an_exception_on_one_rank_ends_the_job():
    proc, seconds = _run("raise", timeout=60)
    assert proc.returncode != 0
    assert seconds < 30, seconds
    assert "rank 1 failed with RuntimeError: deliberate failure on rank 1" in proc.stderr


def test_without_mpi4py_everything_is_one_process():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from pyxconv import distributed as d\n"
            "assert d._mpi() is None\n"
            "print(d.world_size(), d.rank(), d.local_size())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0", "1"]


def test_a_rank_killed_with_sigkill_ends_the_job():
    proc, seconds = _run("kill", timeout=60)
    assert proc.returncode != 0
    assert seconds < 30, seconds


def test_ring_allreduce_efficiency_follows_the_cost_model():
    # by hand: 2 ranks, 1 ms steps, 1.25e6 bytes over 10 Gbit/s (1.25e9 B/s), no latency:
    # compute 0.5 ms, communication 2 * 1/2 * 1 ms = 1 ms, efficiency 1/3
    assert dist.ring_allreduce_efficiency(1e-3, 1.25e6, 2, 10, 0.0) == pytest.approx(1 / 3)
    assert dist.ring_allreduce_efficiency(1e-3, 1.25e6, 1, 10) == 1.0
    efficiencies = [dist.ring_allreduce_efficiency(7e-3, 246824, r, 10) for r in (2, 4, 8, 64)]
    assert efficiencies == sorted(efficiencies, reverse=True)
    with pytest.raises(ValueError, match="ranks >= 1"):
        dist.ring_allreduce_efficiency(1e-3, 10, 0, 10)


def test_the_scaling_prediction_script_prints_a_row_per_bandwidth():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "predict_scaling.py"),
                           "--steps", "2", "--models", "lenet5"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if "Gbit/s" in line]
    assert [row[0] for row in rows] == ["10", "25", "100"]
    values = [[float(v) for v in row[2:]] for row in rows]
    assert all(len(v) == 6 and all(0 < e <= 1 for e in v) for v in values)
    assert "247 KB of gradients" in proc.stdout
