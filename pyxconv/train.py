"""Train LeNet-5 on handwritten digits: ``python -m pyxconv train``.

Default data: scikit-learn's 1,797 8x8 digits (installed with the
``examples`` extra; nothing is downloaded), split 80/20 per class and scaled
to 32x32 bilinearly so that LeNet-5's 32x32 input and 5x5 filters apply as
in the paper; each training image is shifted at random by up to 2 pixels
(of 32) per epoch, since 1,437 images are few (30 epochs, about 43,000
images, reach 98-99% test accuracy). With ``--data DIR`` any MNIST-format
directory is used instead (MNIST, Fashion-MNIST); its 28x28 images are
zero-padded to 32x32, as LeCun et al. did, and one epoch is the default.

Optimiser: SGD with momentum 0.9, learning rate 0.05 decayed to 0 by a
cosine schedule, batches of 64. The kernels use pyxconv's thread count
(``OMP_NUM_THREADS`` or the cores) unless ``--threads`` says otherwise; the
results are the same to the bit at any count.

``--model small_resnet`` trains the small ResNet instead, ``--dtype float64``
in double precision. Under ``mpiexec -n R`` (with the ``[mpi]`` extra) the
training is data-parallel over R ranks on the same global batches
(``--batch-size`` is global); see the "Data-parallel training" chapter.
``--checkpoint PATH --checkpoint-every N`` writes resumable checkpoints
atomically; ``--resume`` continues from one, to the same final weights.

Each epoch prints a line with train loss, test loss and test accuracy.
The run writes to ``--out`` (refusing a directory that holds a previous
run's output unless ``--resume`` or ``--overwrite``):

* ``<model>.npz``: the weights (``state_dict`` keys as in PyTorch) and the
  input normalisation; ``pyxconv.models.load(path)`` returns a model that
  classifies raw images;
* ``history.png``: loss and accuracy per epoch;
* ``filters.png``: the first-layer filters on one shared symmetric scale;
* ``feature_maps.png``: a correctly classified test digit, its label and
  prediction, and its feature maps after each ReLU, with colour bars;
* ``metrics.json``: accuracy, loss, time, images per second and the data
  sizes actually used.
"""
import json
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["evaluate", "load_checkpoint", "load_dataset", "save_checkpoint", "train"]


def load_dataset(data=None, seed=0, return_stats=False):
    """Images as float32 ``(N, 1, 32, 32)``, normalised, and int64 labels.

    Parameters
    ----------
    data : str or path-like or None
        An MNIST-format directory, or None for scikit-learn's digits.
    seed : int
        Seed of the digits' train/test split.
    return_stats : bool, default False
        Also return the ``(mean, std)`` of the raw training images, which
        the images were normalised with: ``x = (raw - mean) / std``.

    Returns
    -------
    x_train, y_train, x_test, y_test, name[, (mean, std)]
    """
    from pyxconv import data as pdata

    if data is None:
        x_tr, y_tr, x_te, y_te = pdata.load_digits(seed=seed, size=32)
        x_tr, x_te = x_tr[:, None], x_te[:, None]
        name = "scikit-learn digits (8x8 scaled to 32x32)"
    else:
        raw_tr, y_tr = pdata.load_mnist(data, "train")
        raw_te, y_te = pdata.load_mnist(data, "test")
        x_tr, x_te = (_to_32x32(raw) for raw in (raw_tr, raw_te))
        del raw_tr, raw_te
        name = f"{Path(data).name} ({len(x_tr)} train, {len(x_te)} test, padded to 32x32)"
    # one float32 array per split, normalised in place with the training statistics
    mean, std = _mean_std(x_tr)
    for x in (x_tr, x_te):
        x -= np.float32(mean)
        x *= np.float32(1 / std)
    if return_stats:
        return x_tr, y_tr, x_te, y_te, name, (float(mean), float(std))
    return x_tr, y_tr, x_te, y_te, name


def _mean_std(x, chunk=4096):
    """Mean and standard deviation of all of ``x``, in float64, without a float64 copy."""
    total = sq = 0.0
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk].astype(np.float64)
        total += part.sum()
        sq += np.square(part).sum()
    n = x.size
    mean = total / n
    return mean, max(sq / n - mean * mean, 1e-12) ** 0.5


def _to_32x32(raw):
    """uint8 images (N, H, W) -> float32 (N, 1, 32, 32) in [0, 1], zero-padded and centred."""
    n, h, w = raw.shape
    if h > 32 or w > 32:
        raise ValueError(f"LeNet-5 needs images of at most 32x32, got {h}x{w}")
    out = np.zeros((n, 1, 32, 32), dtype=np.float32)
    top, left = (32 - h) // 2, (32 - w) // 2
    np.multiply(raw, np.float32(1 / 255), out=out[:, 0, top:top + h, left:left + w],
                casting="unsafe")
    return out


def random_shift(x, max_shift, rng):
    """Translate each image of ``x`` (N, C, H, W) by up to ``max_shift`` pixels, zero-filled.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.train import random_shift
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> y = random_shift(x, 1, np.random.default_rng(0))
    >>> y.shape, sorted(set(y.ravel()) - set(x.ravel()) - {0.0})
    ((1, 1, 3, 3), [])
    """
    n, _, h, w = x.shape
    m = max_shift
    padded = np.zeros(x.shape[:2] + (h + 2 * m, w + 2 * m), dtype=x.dtype)
    padded[:, :, m:m + h, m:m + w] = x
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def evaluate(model, x, y, batch_size=1000):
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``, in eval mode.

    Under several MPI ranks each rank scores every R-th batch and the sums
    are reduced (:func:`pyxconv.distributed.evaluate_sharded`); every rank
    gets the same result.
    """
    from pyxconv import distributed as dist
    from pyxconv import nn

    loss, acc, _ = dist.evaluate_sharded(model, x, y, nn.SoftmaxCrossEntropy(), batch_size)
    return acc, loss


# -- checkpoints ---------------------------------------------------------------------

CHECKPOINT_VERSION = 1


def _rng_state(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def _set_rng_state(rng, text):
    rng.bit_generator.state = json.loads(str(text))


def save_checkpoint(path, arrays):
    """Write ``{name: array}`` to ``path`` atomically (see :func:`pyxconv._io.atomic_write`).

    A crash or kill mid-write leaves the previous checkpoint whole.
    """
    from pyxconv._io import atomic_write

    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint` into a dict of arrays.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable pyxconv training checkpoint (truncated,
        corrupt, or of another version).
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            state = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint ({exc})") from None
    if "meta/version" not in state:
        raise ValueError(f"checkpoint {path} is not a pyxconv training checkpoint "
                         f"(no meta/version entry)")
    if int(state["meta/version"]) != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} has version {int(state['meta/version'])}, "
                         f"this pyxconv reads version {CHECKPOINT_VERSION}")
    return state


def _sub(state, prefix):
    n = len(prefix)
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix)}


# -- pictures ------------------------------------------------------------------------

def _first_conv(model):
    from pyxconv.nn._layers import _ConvNd

    return next(m for _, m in model.named_modules() if isinstance(m, _ConvNd))


def _save_pictures(model, x_te, y_te, out, model_name, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pyxconv import no_grad

    # filters on one symmetric scale, so that tiles compare and 0 is the middle colour
    w = np.asarray(_first_conv(model).weight.data[:, 0], dtype=np.float64)
    vmax = float(np.abs(w).max()) or 1.0
    cols = min(len(w), 8)
    rows = -(-len(w) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols + 1, 1.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, ax in enumerate(axes.ravel()[:len(w)]):
        im = ax.imshow(w[k], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"filter {k}", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    fig.suptitle(f"{model_name} first-layer filters (one shared scale)")
    fig.savefig(out / "filters.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    # feature maps of the first correctly classified test digit
    model.eval()
    with no_grad():
        pred = model(x_te[:200]).argmax(axis=1)
    good = np.flatnonzero(pred == y_te[:200])
    i = int(good[0]) if len(good) else 0
    maps = []
    x = x_te[i:i + 1]
    with no_grad():
        for layer in model:
            x = layer(x)
            if type(layer).__name__ == "ReLU" and x.ndim == 4:
                maps.append(x[0])
    model.train()
    maps = maps[:3]
    cols = min(max(m.shape[0] for m in maps), 8)
    fig, axes = plt.subplots(len(maps) + 1, cols, figsize=(1.5 * cols, 1.5 * (len(maps) + 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    im = axes[0, 0].imshow(x_te[i, 0], cmap="gray")
    fig.colorbar(im, ax=axes[0, 0], fraction=0.046)
    axes[0, 0].set_title(f"input: label {y_te[i]}, predicted {pred[i]}", fontsize=7, loc="left")
    for r, m in enumerate(maps, start=1):
        vmax = float(m[:cols].max()) or 1.0
        for k in range(min(m.shape[0], cols)):
            im = axes[r, k].imshow(m[k], cmap="viridis", vmin=0, vmax=vmax)
            axes[r, k].set_title(f"ReLU {r} ch {k}", fontsize=6)
        fig.colorbar(im, ax=axes[r].tolist(), fraction=0.02, pad=0.01)
    status = "correctly classified" if pred[i] == y_te[i] else "no correct prediction found"
    fig.suptitle(f"feature maps after ReLU of a {status} test digit "
                 f"(label {y_te[i]}, predicted {pred[i]})", fontsize=9)
    fig.savefig(out / "feature_maps.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(epochs, history["train_loss"], "o-", label="train")
    a.plot(epochs, history["test_loss"], "s-", label="test")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    a.legend()
    b.plot(epochs, history["test_accuracy"], "s-", color="C1")
    b.set_xlabel("epoch")
    b.set_ylabel("test accuracy")
    fig.suptitle(f"{model_name} training history")
    fig.tight_layout()
    fig.savefig(out / "history.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


# -- training ------------------------------------------------------------------------

MODELS = ("lenet5", "small_resnet")
DTYPES = ("float32", "float64")
_OUTPUTS = ("metrics.json", "history.png", "filters.png", "feature_maps.png")


def _check_options(epochs, batch_size, lr, momentum, threads, limit, augment, weight_decay,
                   model, dtype, checkpoint, checkpoint_every, resume, overwrite, out, save,
                   world):
    def positive(value, name):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    positive(epochs, "epochs")
    positive(batch_size, "batch_size")
    positive(threads, "threads")
    positive(limit, "limit")
    positive(checkpoint_every, "checkpoint_every")
    for value, name in ((lr, "lr"), (momentum, "momentum"), (weight_decay, "weight_decay")):
        if not float(value) >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    if augment is not None and augment < 0:
        raise ValueError(f"augment must be >= 0, got {augment!r}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if str(np.dtype(dtype)) not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if batch_size < world:
        raise ValueError(f"batch_size {batch_size} is the global batch; it must be at least "
                         f"the number of ranks, {world}")
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} (global) does not split evenly over "
                         f"{world} ranks")
    if (checkpoint_every is not None or resume) and checkpoint is None:
        raise ValueError("checkpoint_every and resume need a checkpoint path (--checkpoint)")
    if resume and overwrite:
        raise ValueError("give either resume or overwrite, not both")
    if resume and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--resume: checkpoint {checkpoint} does not exist")
    if save and not (resume or overwrite):
        out = Path(out)
        taken = [name for name in _OUTPUTS + (f"{model}.npz",) if (out / name).exists()]
        if taken:
            raise FileExistsError(
                f"{out} already holds the output of a run ({', '.join(taken)}); "
                "give --overwrite to replace it, --resume to continue it, or another --out")


def train(data=None, epochs=None, batch_size=64, lr=0.05, momentum=0.9, seed=0,
          threads=None, out="pyxconv-train-output", progress=True, limit=None, save=True,
          augment=None, weight_decay=0.0, log=print, model="lenet5", dtype="float32",
          checkpoint=None, checkpoint_every=None, resume=False, overwrite=False,
          _kill_after_steps=None):
    """Train LeNet-5 (or a small ResNet) with SGD + momentum and report test accuracy.

    Runs data-parallel when started under ``mpiexec -n R`` with mpi4py
    installed (see :mod:`pyxconv.distributed`): ``batch_size`` is the global
    batch, each rank takes its contiguous part of the same shuffled batch,
    the gradients are averaged, and only rank 0 prints and writes.

    Parameters
    ----------
    data : path or None
        MNIST-format directory; None for scikit-learn's digits.
    epochs : int, optional
        Default 30 on the digits (1,437 training images), 1 on MNIST-size data.
    batch_size : int, default 64
        The global batch, split evenly over the ranks.
    lr, momentum : float
        SGD hyper-parameters; the learning rate follows a cosine schedule to 0.
    seed : int
        Seeds initialisation, split, shuffling and augmentation.
    threads : int, optional
        Threads of pyxconv's kernels (and NumPy's BLAS). Default: pyxconv's
        :func:`~pyxconv.get_num_threads` in one process; under R ranks,
        ``OMP_NUM_THREADS`` if set, else the node's cores divided by its ranks. The weights are the same to the
        bit at any count.
    out : path
        Output directory (created). A directory that holds a previous run's
        output is refused unless ``resume`` or ``overwrite``.
    progress : bool
        Show one tqdm bar per epoch (rank 0).
    limit : int, optional
        Use only the first ``limit`` training images (for quick runs).
    augment : int, optional
        Shift each training image by up to this many pixels. Default 2 on
        the digits, 0 on MNIST.
    weight_decay : float, default 0
    model : {"lenet5", "small_resnet"}
    dtype : {"float32", "float64"}
    checkpoint : path, optional
        Checkpoint file: model, optimizer and schedule state, every random
        generator's state and the data position, written atomically every
        ``checkpoint_every`` optimizer steps and at each epoch's end.
    checkpoint_every : int, optional
    resume : bool
        Continue from ``checkpoint``; the final weights equal those of an
        uninterrupted run, bit for bit, at the same thread count.
    overwrite : bool
        Replace a previous run's output in ``out``.
    save : bool
        Write weights, pictures and metrics to ``out``.

    Returns
    -------
    dict
        ``test_accuracy``, ``test_loss``, ``train_seconds``, ``images_per_second``,
        ``epochs``, ``losses`` (per batch), ``history`` (per epoch) and the ``model``.
    """
    from threadpoolctl import threadpool_limits

    import pyxconv
    from pyxconv import distributed as dist

    world = dist.world_size()
    _check_options(epochs, batch_size, lr, momentum, threads, limit, augment, weight_decay,
                   model, dtype, checkpoint, checkpoint_every, resume, overwrite, out, save,
                   world)
    dist.install_excepthook()
    if threads is None:
        # under several ranks the node's cores are shared out, unless OMP_NUM_THREADS says
        explicit = world == 1 or "OMP_NUM_THREADS" in os.environ
        threads = pyxconv.get_num_threads() if explicit else dist.default_threads()
    if not dist.is_main():
        log, progress = (lambda *a, **k: None), False
    with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
        return _train(data, epochs, batch_size, lr, momentum, seed, out, progress, limit,
                      save, augment, weight_decay, log, model, np.dtype(dtype), checkpoint,
                      checkpoint_every, resume, _kill_after_steps)


def _train(data, epochs, batch_size, lr, momentum, seed, out, progress, limit, save, augment,
           weight_decay, log, model_name, dtype, checkpoint, checkpoint_every, resume,
           kill_after):
    import pyxconv
    from pyxconv import distributed as dist
    from pyxconv import models, nn, optim
    from pyxconv.nn import _layers

    world, me = dist.world_size(), dist.rank()
    x_tr, y_tr, x_te, y_te, name, (mean, std) = load_dataset(data, seed=seed, return_stats=True)
    if limit is not None:
        x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    if dtype != x_tr.dtype:
        x_tr, x_te = x_tr.astype(dtype), x_te.astype(dtype)
    small = len(x_tr) < 10000
    if epochs is None:
        epochs = 30 if small else 1
    if augment is None:
        augment = 2 if data is None else 0
    n_batches = -(-len(x_tr) // batch_size)
    log(f"data: {name}; {len(x_tr)} training images, {len(x_te)} test images; "
        f"{world} rank(s) x {pyxconv.get_num_threads()} thread(s); {model_name}, {dtype}")

    nn.manual_seed(seed)
    model = getattr(models, model_name)().astype(dtype)
    _first_conv(model).requires_input_grad = False  # nothing upstream of the first conv
    dist.broadcast_module(model)
    averager = dist.GradientAverager(model)
    criterion = nn.SoftmaxCrossEntropy()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    schedule = optim.CosineAnnealingLR(optimizer, T_max=epochs * n_batches)
    shuffle_rng = np.random.default_rng(seed)
    aug_rng = np.random.default_rng(seed + 1)
    config = json.dumps(dict(data=str(data), limit=limit, epochs=epochs, batch_size=batch_size,
                             lr=lr, momentum=momentum, seed=seed, augment=augment,
                             weight_decay=weight_decay, model=model_name, dtype=str(dtype)),
                        sort_keys=True)
    history = {"train_loss": [], "test_loss": [], "test_accuracy": []}
    losses = []
    epoch, batch, order, step = 0, 0, None, 0
    if resume:
        state = load_checkpoint(checkpoint)
        saved = str(state["meta/config"])
        if saved != config:
            raise ValueError(f"checkpoint {checkpoint} is of another run: it was written with "
                             f"{saved}, this run has {config}")
        model.load_state_dict(_sub(state, "model/"))
        optimizer.load_state_dict(_sub(state, "optimizer/"))
        schedule.load_state_dict(_sub(state, "schedule/"))
        _set_rng_state(shuffle_rng, state["rng/shuffle"])
        _set_rng_state(aug_rng, state["rng/augment"])
        _set_rng_state(_layers._rng, state["rng/nn"])
        epoch, batch, step = (int(state[f"pos/{k}"]) for k in ("epoch", "batch", "step"))
        order = state["pos/order"] if batch else None
        losses = list(state["log/losses"])
        history = {k: list(state[f"log/{k}"]) for k in history}
        log(f"resumed from {checkpoint}: epoch {epoch + 1}, batch {batch}, step {step}")

    def write_checkpoint(epoch, batch):
        if not dist.is_main():
            return
        arrays = {"meta/version": np.array(CHECKPOINT_VERSION), "meta/config": np.array(config),
                  "rng/shuffle": _rng_state(shuffle_rng), "rng/augment": _rng_state(aug_rng),
                  "rng/nn": _rng_state(_layers._rng),
                  "pos/epoch": np.array(epoch), "pos/batch": np.array(batch),
                  "pos/step": np.array(step),
                  "pos/order": order if order is not None else np.zeros(0, np.int64),
                  "log/losses": np.array(losses, dtype=np.float64)}
        arrays.update({f"log/{k}": np.array(v, dtype=np.float64) for k, v in history.items()})
        arrays.update({f"model/{k}": v for k, v in model.state_dict().items()})
        arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
        arrays.update({f"schedule/{k}": v for k, v in schedule.state_dict().items()})
        save_checkpoint(checkpoint, arrays)

    from tqdm.auto import tqdm

    part = batch_size // world
    seen = 0
    start = time.perf_counter()
    while epoch < epochs:
        if order is None:
            order = shuffle_rng.permutation(len(x_tr))
        bar = tqdm(total=n_batches, initial=batch, desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=True, unit="batch", dynamic_ncols=True)
        while batch < n_batches:
            idx = order[batch * batch_size:(batch + 1) * batch_size]
            n = len(idx)
            # this rank's contiguous part of the global batch (the last batch may be short)
            if n == batch_size:
                lo, hi = me * part, (me + 1) * part
            else:
                lo, hi = me * n // world, (me + 1) * n // world
            xb = x_tr[idx[lo:hi]]
            yb = y_tr[idx[lo:hi]]
            if augment:
                # shifts drawn for the whole global batch on every rank, as one process does
                dy_dx = aug_rng.integers(0, 2 * augment + 1, size=(2, n))
                xb = _shift(xb, augment, dy_dx[:, lo:hi])
            model.zero_grad()
            totals = np.zeros(2)
            if len(yb):
                logits = model(xb)
                loss = criterion(logits, yb)
                # weight n_local / n * R: the averaged gradient is the global batch's mean
                averager.backward(criterion.backward(len(yb) * world / n))
                totals[:] = loss * len(yb), (logits.argmax(axis=1) == yb).sum()
            averager.reduce()
            dist.allreduce_sum(totals)
            optimizer.step()
            schedule.step()
            loss = totals[0] / n
            losses.append(loss)
            seen += n
            batch += 1
            step += 1
            bar.update(1)
            if progress and (batch % 10 == 0 or batch == n_batches):
                bar.set_postfix(loss=f"{loss:.3f}",
                                img_s=f"{seen / (time.perf_counter() - start):,.0f}",
                                refresh=False)
            if checkpoint and checkpoint_every and step % checkpoint_every == 0 \
                    and batch < n_batches:
                write_checkpoint(epoch, batch)
            if kill_after is not None and step == kill_after:
                import signal
                os.kill(os.getpid(), signal.SIGKILL)
        bar.close()
        ep_losses = losses[-n_batches:]
        dist.average_buffers(model)
        accuracy, test_loss = evaluate(model, x_te, y_te)
        history["train_loss"].append(float(np.mean(ep_losses)))
        history["test_loss"].append(float(test_loss))
        history["test_accuracy"].append(float(accuracy))
        log(f"epoch {epoch + 1}/{epochs}: train loss {history['train_loss'][-1]:.4f}, "
            f"test loss {test_loss:.4f}, test accuracy {accuracy:.4f}")
        epoch, batch, order = epoch + 1, 0, None
        if checkpoint:
            write_checkpoint(epoch, batch)
    seconds = time.perf_counter() - start
    accuracy, test_loss = history["test_accuracy"][-1], history["test_loss"][-1]
    rate = seen / seconds if seconds > 0 else float("nan")
    log(f"test accuracy: {accuracy:.4f} ({round(accuracy * len(y_te))}/{len(y_te)}), "
        f"test loss {test_loss:.4f}; training {seconds:.1f} s, {rate:,.0f} images/s")
    result = dict(test_accuracy=accuracy, test_loss=test_loss, train_seconds=seconds,
                  images_per_second=rate, epochs=epochs, losses=losses, model=model,
                  data=name, history=history)
    if save and dist.is_main():
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        weights = out / f"{model_name}.npz"
        models.save(model, weights, model_name, mean, std)
        _save_pictures(model, x_te, y_te, out, model_name, history)
        metrics = {k: v for k, v in result.items() if k not in ("model", "losses")}
        metrics.update(batch_size=batch_size, lr=lr, momentum=momentum, seed=seed,
                       augment=augment, weight_decay=weight_decay, model=model_name,
                       dtype=str(dtype), ranks=world, threads=pyxconv.get_num_threads(),
                       train_size=len(x_tr), test_size=len(x_te), limit=limit,
                       final_train_loss=losses[-1], normalization=dict(mean=mean, std=std))
        from pyxconv._io import atomic_write

        with atomic_write(out / "metrics.json", "w") as f:
            f.write(json.dumps(metrics, indent=2))
        log(f"wrote {weights}, " + ", ".join(str(out / n) for n in _OUTPUTS))
    return result


def _shift(x, m, dy_dx):
    """:func:`random_shift` with the offsets given (``dy_dx`` of shape (2, N))."""
    n, _, h, w = x.shape
    padded = np.zeros(x.shape[:2] + (h + 2 * m, w + 2 * m), dtype=x.dtype)
    padded[:, :, m:m + h, m:m + w] = x
    out = np.empty_like(x)
    for i in range(n):
        dy, dx = dy_dx[0, i], dy_dx[1, i]
        out[i] = padded[i, :, dy:dy + h, dx:dx + w]
    return out


def add_arguments(parser):
    """The ``train`` subcommand's options."""
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="MNIST-format directory (default: scikit-learn's 8x8 digits)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: 30 on the digits, 1 on MNIST")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="global batch, split evenly over MPI ranks (default 64)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="kernel and BLAS threads per rank (default: OMP_NUM_THREADS or "
                             "the cores, divided among the ranks of a node)")
    parser.add_argument("--augment", type=int, default=None, metavar="PIXELS",
                        help="random shifts of up to PIXELS (default: 2 on the digits, 0 on "
                             "MNIST)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--model", default="lenet5", choices=MODELS)
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="checkpoint file, written atomically at each epoch's end")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                        help="also write the checkpoint every N optimizer steps")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous run's output in --out")
    parser.add_argument("--out", default="pyxconv-train-output", metavar="DIR",
                        help="where to write weights and pictures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    import argparse

    parser.add_argument("--kill-after-steps", type=int, default=None, help=argparse.SUPPRESS)


def main_from_args(args):
    train(data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
          momentum=args.momentum, seed=args.seed, threads=args.threads, out=args.out,
          progress=not args.no_progress, limit=args.limit, augment=args.augment,
          model=args.model, dtype=args.dtype, checkpoint=args.checkpoint,
          checkpoint_every=args.checkpoint_every, resume=args.resume,
          overwrite=args.overwrite, _kill_after_steps=args.kill_after_steps)


def cli(argv=None):
    """Entry point of the ``pyxconv-train`` console script (same options as ``train``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="pyxconv-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    main_from_args(parser.parse_args(argv))
    return 0
