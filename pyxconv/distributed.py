"""Data-parallel training over MPI ranks, with mpi4py.

Each rank (process) holds a whole copy of the model, computes the gradient
of its slice of every global batch, and the ranks average their gradients
with an in-place buffer ``Allreduce`` before the optimizer steps, as PyTorch
DDP and Horovod do. Then every rank takes the same step and the copies stay
equal. What is synchronised:

* the parameters and buffers once at the start (:func:`broadcast_module`,
  rank 0's values win);
* the gradients at every step (:class:`GradientAverager`), summed in a few
  flat fused buckets and divided by the number of ranks;
* BatchNorm running statistics when asked (:func:`average_buffers`, e.g.
  before evaluating or saving: each rank's running mean and variance have
  seen only its own slices);
* evaluation results (:func:`evaluate_sharded` sums losses and counts).

The optimizer state needs no traffic: every rank applies the same averaged
gradient to the same weights, so its momentum and moments are equal too.

mpi4py is imported only when first needed. Without it, or under one rank,
every function here is the single-process identity, so the same script runs
with ``python`` and with ``mpiexec -n R python``.

Examples
--------
In one process the helpers change nothing:

>>> import numpy as np
>>> from pyxconv import distributed as dist
>>> from pyxconv.models import lenet5
>>> dist.world_size(), dist.rank(), dist.is_main()
(1, 0, True)
>>> model = lenet5()
>>> dist.broadcast_module(model)
>>> dist.shard(np.arange(10), rank=1, world=2)
array([1, 3, 5, 7, 9])
"""
import os
import sys
import threading
import time
import traceback

import numpy as np

__all__ = ["GradientAverager", "allreduce_sum", "average_buffers", "broadcast_module",
           "contiguous_shard",
           "default_threads", "evaluate_sharded", "install_excepthook", "is_main",
           "local_size", "main_print", "rank", "ring_allreduce_efficiency", "shard",
           "world_size"]

_MPI = None
_TRIED = False
#: Seconds between writing a failing rank's message and aborting the job.
_ABORT_GRACE_SECONDS = 0.25


def _mpi():
    """mpi4py's ``MPI`` module, or None when mpi4py cannot be imported."""
    global _MPI, _TRIED
    if not _TRIED:
        _TRIED = True
        if os.environ.get("PYXCONV_NO_MPI"):
            return None
        try:
            from mpi4py import MPI
        except ImportError:
            MPI = None
        _MPI = MPI
    return _MPI


def _comm():
    MPI = _mpi()
    return None if MPI is None else MPI.COMM_WORLD


def world_size():
    """The number of ranks (1 without mpi4py)."""
    comm = _comm()
    return 1 if comm is None else comm.Get_size()


def rank():
    """This process's rank, 0 .. world_size() - 1 (0 without mpi4py)."""
    comm = _comm()
    return 0 if comm is None else comm.Get_rank()


def is_main():
    """True on rank 0, the rank that prints, shows progress bars and writes files."""
    return rank() == 0


def local_size():
    """The number of ranks on this node (an ``MPI.COMM_TYPE_SHARED`` split)."""
    MPI = _mpi()
    if MPI is None or MPI.COMM_WORLD.Get_size() == 1:
        return 1
    local = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def default_threads():
    """OpenMP threads per rank: the node's usable cores divided among its ranks, at least 1.

    This is what torchrun does with ``OMP_NUM_THREADS``: R ranks of T threads
    on C cores should have R * T <= C, or the ranks' threads fight for cores.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    if world_size() == 1:
        return cores
    # the affinity of a rank may already be a subset; the node's core count is the budget
    cores = max(cores, os.cpu_count() or 1)
    return max(1, cores // local_size())


def main_print(*args, **kwargs):
    """``print`` on rank 0 only (flushed, so lines from mpiexec appear in order)."""
    if is_main():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


# -- failures ------------------------------------------------------------------------

_HOOK_INSTALLED = False


def install_excepthook():
    """End the whole job when a Python exception escapes on any rank.

    Without this, a rank that dies of an exception leaves the others blocked
    forever in their next collective call. The hook prints the traceback with
    the rank's number to stderr and calls ``MPI.COMM_WORLD.Abort(1)``, which
    makes ``mpiexec`` kill every rank and exit non-zero. Exceptions in other
    threads abort as well. Under one rank it does nothing.
    """
    global _HOOK_INSTALLED
    if _HOOK_INSTALLED or world_size() == 1:
        return
    _HOOK_INSTALLED = True
    previous = sys.excepthook
    me = rank()

    def hook(kind, value, tb):
        try:
            text = "".join(traceback.format_exception(kind, value, tb))
            sys.stderr.write(f"pyxconv.distributed: rank {me} failed with "
                             f"{kind.__name__}: {value}; aborting all ranks\n{text}")
            sys.stderr.flush()
            # mpiexec forwards each rank's stderr through its proxy process, which
            # the abort kills: without a moment's grace the message was sometimes
            # lost (1 run in about 20 of the suite's test here)
            time.sleep(_ABORT_GRACE_SECONDS)
        finally:
            if issubclass(kind, KeyboardInterrupt):
                previous(kind, value, tb)
            _mpi().COMM_WORLD.Abort(1)

    def thread_hook(args):
        hook(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook


# -- data ----------------------------------------------------------------------------

def shard(indices, rank=None, world=None):
    """This rank's part of ``indices``: every ``world``-th element from position ``rank``.

    Use it on the indices of one global batch (so that R ranks together
    see exactly that batch) or on a whole data set for sharded evaluation.

    Parameters
    ----------
    indices : 1-D array-like
    rank, world : int, optional
        Default: this process's rank and the world size.

    Examples
    --------
    >>> from pyxconv.distributed import shard
    >>> shard([0, 1, 2, 3, 4, 5, 6], rank=0, world=3)
    array([0, 3, 6])
    """
    rank = globals()["rank"]() if rank is None else int(rank)
    world = world_size() if world is None else int(world)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard needs 0 <= rank < world, got rank={rank}, world={world}")
    return np.asarray(indices)[rank::world]


def contiguous_shard(n, rank=None, world=None):
    """The ``slice`` of ``range(n)`` of this rank when ``n`` splits into equal contiguous parts.

    Raises ``ValueError`` when ``n`` is not a multiple of ``world``.

    Examples
    --------
    >>> from pyxconv.distributed import contiguous_shard
    >>> contiguous_shard(8, rank=1, world=2)
    slice(4, 8, None)
    """
    rank = globals()["rank"]() if rank is None else int(rank)
    world = world_size() if world is None else int(world)
    if n % world:
        raise ValueError(f"{n} samples do not split evenly over {world} ranks")
    part = n // world
    return slice(rank * part, (rank + 1) * part)


# -- collectives ---------------------------------------------------------------------

def ring_allreduce_efficiency(step_seconds, gradient_bytes, ranks, gbit_per_second,
                              latency_seconds=20e-6):
    """Predicted scaling efficiency of data-parallel training with a ring allreduce.

    A ring allreduce of ``B`` gradient bytes over ``R`` ranks sends each byte
    ``2 (R - 1) / R`` times and pays ``2 (R - 1)`` latencies. With the global
    batch split over the ranks, each rank computes ``step_seconds / R`` (the
    one-process step time over R); without overlap the efficiency is
    ``compute / (compute + communication)``.

    Parameters
    ----------
    step_seconds : float
        One process's time for one step of the global batch.
    gradient_bytes : int
        Bytes of gradients averaged per step.
    ranks : int
        R >= 1.
    gbit_per_second, latency_seconds : float
        The network's bandwidth and per-message latency.

    Examples
    --------
    >>> from pyxconv.distributed import ring_allreduce_efficiency
    >>> round(ring_allreduce_efficiency(7e-3, 4 * 61706, 8, 10), 2)   # LeNet-5, 8 ranks
    0.58
    >>> ring_allreduce_efficiency(7e-3, 4 * 61706, 1, 10)
    1.0
    """
    if ranks < 1 or step_seconds <= 0 or gradient_bytes < 0 or gbit_per_second <= 0:
        raise ValueError(f"need ranks >= 1, step_seconds > 0, gradient_bytes >= 0 and "
                         f"gbit_per_second > 0; got {ranks}, {step_seconds}, "
                         f"{gradient_bytes}, {gbit_per_second}")
    compute = step_seconds / ranks
    bandwidth = gbit_per_second * 1e9 / 8
    comm = (2 * (ranks - 1) / ranks * gradient_bytes / bandwidth
            + 2 * (ranks - 1) * latency_seconds)
    return compute / (compute + comm)


def allreduce_sum(array):
    """Sum ``array`` over the ranks, in place (a contiguous NumPy array); returns it."""
    comm = _comm()
    if comm is not None and comm.Get_size() > 1:
        if not array.flags.c_contiguous:
            raise ValueError("allreduce_sum needs a C-contiguous array")
        comm.Allreduce(_mpi().IN_PLACE, array, op=_mpi().SUM)
    return array


def broadcast_module(model, root=0):
    """Copy every parameter and buffer of ``model`` from rank ``root`` to all ranks, in place."""
    comm = _comm()
    if comm is None or comm.Get_size() == 1:
        return
    for _, (module, name, is_param) in model._state_entries().items():
        arr = module._params[name].data if is_param else module._buffers[name]
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
            if is_param:
                module._params[name].data = arr
            else:
                module._buffer(name, arr)
        comm.Bcast(arr, root=root)


def average_buffers(model):
    """Average the floating buffers (BatchNorm running mean and variance) over the ranks.

    Integer buffers (``num_batches_tracked``) are equal on every rank already
    and are left alone.
    """
    comm = _comm()
    if comm is None or comm.Get_size() == 1:
        return
    R = comm.Get_size()
    for _, module in model.named_modules():
        for name, b in list(module._buffers.items()):
            if b.dtype.kind == "f":
                b = np.ascontiguousarray(b)
                allreduce_sum(b)
                b /= R
                module._buffer(name, b)


def evaluate_sharded(model, x, y, loss_fn, batch_size=256):
    """Loss and accuracy of ``model`` on ``(x, y)``, each rank scoring every R-th batch.

    Returns ``(mean_loss, accuracy, predictions)`` on every rank; the sums
    are reduced with one Allreduce. ``loss_fn(logits, labels)`` must return the
    mean loss of a batch. ``predictions`` holds this rank's predictions in
    the order of ``x`` and -1 where another rank scored the sample (use it
    only in one process, or gather it yourself).
    """
    from pyxconv import no_grad

    n = len(x)
    was_training = model.training
    model.eval()
    totals = np.zeros(3)  # loss sum, correct, count
    pred = np.full(n, -1, dtype=np.int64)
    starts = shard(np.arange(0, n, batch_size))
    try:
        with no_grad():
            for s in starts:
                xb, yb = x[s:s + batch_size], y[s:s + batch_size]
                logits = model(xb)
                p = np.argmax(logits, axis=1)
                pred[s:s + len(xb)] = p
                totals += (float(loss_fn(logits, yb)) * len(xb), float((p == yb).sum()), len(xb))
    finally:
        model.train(was_training)
    allreduce_sum(totals)
    return totals[0] / max(totals[2], 1), totals[1] / max(totals[2], 1), pred


class GradientAverager:
    """Average the gradients of ``model`` over the ranks, in a few flat fused buckets.

    The gradients of consecutive parameters (taken from the last layer back,
    the order in which backward produces them) are views into one flat
    buffer per bucket of at most ``bucket_bytes``. :meth:`reduce` sums each
    bucket in place with ``Allreduce(IN_PLACE, ...)`` and divides by the
    number of ranks: a few large messages instead of one per parameter.

    With ``overlap=True``, :meth:`backward` runs a :class:`~pyxconv.nn.Sequential`
    model's backward layer by layer and starts a nonblocking ``Iallreduce`` on
    each bucket as soon as all its gradients are final, as DDP's buckets do;
    :meth:`reduce` then waits for them.

    Parameters
    ----------
    model : pyxconv.nn.Module
    bucket_bytes : int, default 1 MiB
    overlap : bool, default False

    Notes
    -----
    ``Module.astype`` replaces the gradient arrays; build the averager after
    it. If a gradient array is replaced anyway, :meth:`reduce` copies it back
    into its bucket first.
    """

    def __init__(self, model, bucket_bytes=1 << 20, overlap=False):
        bucket_bytes = int(bucket_bytes)
        if bucket_bytes < 1:
            raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}")
        self.model = model
        self.overlap = bool(overlap)
        self.world = world_size()
        params = list(reversed(model.parameters()))
        groups, current, size = [], [], 0
        for p in params:
            nbytes = p.grad.nbytes
            if current and (size + nbytes > bucket_bytes or p.grad.dtype != current[0].grad.dtype):
                groups.append(current)
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            groups.append(current)
        self.buckets, self._views = [], []
        for group in groups:
            flat = np.zeros(sum(p.grad.size for p in group), dtype=group[0].grad.dtype)
            views, offset = [], 0
            for p in group:
                v = flat[offset:offset + p.grad.size].reshape(p.grad.shape)
                v[...] = p.grad
                p.grad = v
                views.append((p, v))
                offset += p.grad.size
            self.buckets.append(flat)
            self._views.append(views)
        self._requests = []

    def _sync_views(self, i):
        for p, v in self._views[i]:
            if p.grad is not v:
                v[...] = p.grad
                p.grad = v

    def _start(self, i):
        self._sync_views(i)
        MPI = _mpi()
        req = _comm().Iallreduce(MPI.IN_PLACE, self.buckets[i], op=MPI.SUM)
        self._requests.append(req)

    def backward(self, grad_out):
        """``model.backward(grad_out)``, starting each bucket's Iallreduce when it is ready."""
        from pyxconv import nn

        model = self.model
        if not (self.overlap and self.world > 1 and isinstance(model, nn.Sequential)
                and model.training):
            return model.backward(grad_out)
        owner = {}
        for i, views in enumerate(self._views):
            for p, _ in views:
                owner[id(p)] = i
        remaining = [len(v) for v in self._views]
        started = set()
        MPI = _mpi()
        for layer in reversed(model.layers):
            if self._requests:
                # MPICH progresses nonblocking collectives only inside MPI calls
                MPI.Request.Testall(self._requests)
            grad_out = layer.backward(grad_out)
            for p in layer.parameters():
                i = owner.get(id(p))
                if i is not None:
                    remaining[i] -= 1
                    if remaining[i] == 0 and i not in started:
                        started.add(i)
                        self._start(i)
        for i in range(len(self.buckets)):
            if i not in started:
                self._start(i)
        return grad_out

    def reduce(self):
        """Finish the sums (start any bucket not started yet) and divide by the rank count."""
        if self.world == 1:
            return
        MPI = _mpi()
        if self._requests:
            MPI.Request.Waitall(self._requests)
            self._requests = []
        else:
            for i, flat in enumerate(self.buckets):
                self._sync_views(i)
                _comm().Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        for flat in self.buckets:
            flat /= self.world
