"""Run under ``mpiexec -n 2`` by tests/test_distributed.py; prints one JSON line on rank 0.

``equivalence``: LeNet-5 in float64, every rank starting from different random
weights; after broadcast_module each rank trains on its shard of the same
global batches with averaged gradients, and also trains a private copy on the
whole batches in one process. The distributed weights are compared with that
one-process reference (computed by the same code, plain single-process path).
``raise``: rank 1 raises; the job must end non-zero with the message.
"""
import json
import sys
import time

import numpy as np

from pyxconv import distributed as dist
from pyxconv import nn
from pyxconv.models import lenet5, small_resnet
from pyxconv.optim import SGD


def train_steps(model, x, y, batches, averager=None):
    loss_fn = nn.SoftmaxCrossEntropy()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    for idx in batches:
        mine = dist.shard(idx) if averager is not None else idx
        model.zero_grad()
        loss_fn(model(x[mine]), y[mine])
        g = loss_fn.backward()
        if averager is not None:
            averager.backward(g)
            averager.reduce()
        else:
            model.backward(g)
        opt.step()


def equivalence(make, overlap):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 1, 32, 32))
    y = rng.integers(0, 10, size=256)
    batches = [np.random.default_rng(1).permutation(256)[i:i + 32] for i in range(0, 256, 32)]
    np.random.seed(100 + dist.rank())            # different initial weights on each rank
    model = make().astype(np.float64)
    dist.broadcast_module(model)
    start = model.state_dict()
    gathered = dist._comm().allgather(start)
    same_start = all(np.array_equal(gathered[0][k], gathered[1][k]) for k in start)
    reference = make().astype(np.float64)
    reference.load_state_dict(start)
    train_steps(reference, x, y, batches)
    averager = dist.GradientAverager(model, bucket_bytes=64 * 1024, overlap=overlap)
    train_steps(model, x, y, batches, averager)
    dist.average_buffers(model)
    got, ref = model.state_dict(), reference.state_dict()
    rel = max(float(np.max(np.abs(got[k] - ref[k])) / max(np.max(np.abs(ref[k])), 1e-300))
              for k in ref if ref[k].dtype.kind == "f")
    moved = max(float(np.max(np.abs(ref[k] - start[k]))) for k in ref if ref[k].dtype.kind == "f")
    final = dist._comm().allgather(got)
    ranks_equal = all(np.array_equal(final[0][k], final[1][k]) for k in got)
    loss, acc, _ = dist.evaluate_sharded(model, x, y, nn.SoftmaxCrossEntropy(), batch_size=50)
    return {"same_start": same_start, "rel": rel, "moved": moved, "ranks_equal": ranks_equal,
            "buckets": len(averager.buckets), "eval_loss": loss, "eval_acc": acc}


def main():
    dist.install_excepthook()
    what = sys.argv[1]
    if what == "equivalence":
        out = {}
        for name, make in (("lenet5", lenet5), ("small_resnet", lambda: small_resnet(width=4))):
            for overlap in (False, True):
                out[f"{name}/{'overlap' if overlap else 'end'}"] = equivalence(make, overlap)
        out["world"] = dist.world_size()
        out["threads"] = dist.default_threads()
        dist.main_print(json.dumps(out))
    elif what == "raise":
        if dist.rank() == 1:
            raise RuntimeError("deliberate failure on rank 1")
        dist._comm().Barrier()                   # rank 0 would wait here forever
        time.sleep(60)
    elif what == "kill":
        import os
        import signal
        if dist.rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        dist._comm().Barrier()
        time.sleep(60)


if __name__ == "__main__":
    main()
