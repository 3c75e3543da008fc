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

The run prints the test accuracy and writes to ``--out``:

* ``lenet5.npz``: the weights (``state_dict`` keys as in PyTorch);
* ``filters.png``: the six first-layer 5x5 filters;
* ``feature_maps.png``: one test image and its feature maps after each
  convolution;
* ``metrics.json``: accuracy, loss, time and images per second.
"""
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["evaluate", "load_dataset", "train"]


def load_dataset(data=None, seed=0):
    """Images as float32 ``(N, 1, 32, 32)``, normalised, and int64 labels.

    Parameters
    ----------
    data : str or path-like or None
        An MNIST-format directory, or None for scikit-learn's digits.
    seed : int
        Seed of the digits' train/test split.

    Returns
    -------
    x_train, y_train, x_test, y_test, name
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
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``, in eval mode."""
    from pyxconv import nn

    model.eval()
    criterion = nn.SoftmaxCrossEntropy()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        loss += criterion(logits, yb) * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    model.train()
    return correct / len(y), loss / len(y)


def _save_pictures(model, image, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = model[0].weight.data[:, 0]
    fig, axes = plt.subplots(1, len(w), figsize=(1.6 * len(w), 1.9))
    for k, ax in enumerate(axes):
        ax.imshow(w[k], cmap="gray")
        ax.set_title(f"filter {k}", fontsize=8)
        ax.axis("off")
    fig.suptitle("LeNet-5 first-layer 5x5 filters")
    fig.savefig(out / "filters.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    model.eval()
    maps = []
    x = image[None]
    for layer in model:
        x = layer(x)
        if type(layer).__name__ == "ReLU" and x.ndim == 4:
            maps.append(x[0])
    model.train()
    rows = len(maps) + 1
    cols = max(m.shape[0] for m in maps)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.2 * rows))
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(image[0], cmap="gray")
    axes[0, 0].set_title("input", fontsize=7)
    for r, m in enumerate(maps, start=1):
        for k in range(m.shape[0]):
            axes[r, k].imshow(m[k], cmap="viridis")
            axes[r, k].set_title(f"conv{r} ch{k}", fontsize=6)
    fig.suptitle("feature maps (after ReLU) of one test image")
    fig.savefig(out / "feature_maps.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def train(data=None, epochs=None, batch_size=64, lr=0.05, momentum=0.9, seed=0,
          threads=None, out="pyxconv-train-output", progress=True, limit=None, save=True,
          augment=None, weight_decay=0.0, log=print):
    """Train LeNet-5 with SGD + momentum and report test accuracy.

    Parameters
    ----------
    data : path or None
        MNIST-format directory; None for scikit-learn's digits.
    epochs : int, optional
        Default 30 on the digits (1,437 training images), 1 on MNIST-size data.
    batch_size : int, default 64
    lr, momentum : float
        SGD hyper-parameters; the learning rate follows a cosine schedule to 0.
    seed : int
        Seeds initialisation, split and shuffling.
    threads : int, optional
        Threads of pyxconv's kernels during training (NumPy's BLAS, used by
        the fully connected layers, gets as many). Default: pyxconv's
        :func:`~pyxconv.get_num_threads`. Measured on 2 cores, 1 -> 2
        threads: 4.8 -> 2.8 s on the digits and 6.0 -> 3.7 s for an MNIST
        epoch, with the same weights to the bit.
    out : path
        Output directory (created).
    progress : bool
        Show the tqdm progress bar.
    limit : int, optional
        Use only the first ``limit`` training images (for quick runs).
    augment : int, optional
        Shift each training image by up to this many pixels (random, per
        image and epoch). Default 2 on the digits (1,437 images are few),
        0 on MNIST.
    weight_decay : float, default 0
    save : bool
        Write weights, pictures and metrics to ``out``.

    Returns
    -------
    dict
        ``test_accuracy``, ``test_loss``, ``train_seconds``, ``images_per_second``,
        ``epochs``, ``losses`` (per batch) and the ``model``.
    """
    from threadpoolctl import threadpool_limits

    import pyxconv

    threads = pyxconv.get_num_threads() if threads is None else threads
    with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
        return _train(data, epochs, batch_size, lr, momentum, seed, out, progress, limit,
                      save, augment, weight_decay, log)


def _train(data, epochs, batch_size, lr, momentum, seed, out, progress, limit, save, augment,
           weight_decay, log):
    import pyxconv
    from pyxconv import nn, optim
    from pyxconv.data import Batches
    from pyxconv.models import lenet5

    x_tr, y_tr, x_te, y_te, name = load_dataset(data, seed=seed)
    if limit is not None:
        x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    small = len(x_tr) < 10000
    if epochs is None:
        epochs = 30 if small else 1
    if augment is None:
        augment = 2 if data is None else 0
    aug_rng = np.random.default_rng(seed + 1)
    log(f"data: {name}; {len(x_tr)} training images, {len(x_te)} test images; "
        f"{pyxconv.get_num_threads()} thread(s)")

    nn.manual_seed(seed)
    model = lenet5()
    model[0].requires_input_grad = False  # nothing upstream of the first conv
    criterion = nn.SoftmaxCrossEntropy()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    batches = Batches(x_tr, y_tr, batch_size=batch_size, shuffle=True, seed=seed)
    schedule = optim.CosineAnnealingLR(optimizer, T_max=epochs * len(batches))

    from tqdm.auto import tqdm

    losses = []
    seen = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=epoch == epochs - 1 or epochs <= 3, unit="batch", dynamic_ncols=True)
        run_loss = run_correct = run_n = 0
        for i, (xb, yb) in enumerate(bar):
            if augment:
                xb = random_shift(xb, augment, aug_rng)
            logits = model(xb)
            loss = criterion(logits, yb)
            model.backward(criterion.backward())
            optimizer.step()
            model.zero_grad()
            schedule.step()
            losses.append(loss)
            n = len(yb)
            seen += n
            run_loss += loss * n
            run_correct += int((logits.argmax(axis=1) == yb).sum())
            run_n += n
            if progress and (i % 10 == 0 or i == len(batches) - 1):
                rate = seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}",
                                acc=f"{run_correct / run_n:.3f}", img_s=f"{rate:,.0f}",
                                refresh=False)
    seconds = time.perf_counter() - start
    accuracy, test_loss = evaluate(model, x_te, y_te)
    rate = seen / seconds
    log(f"test accuracy: {accuracy:.4f} ({round(accuracy * len(y_te))}/{len(y_te)}), "
        f"test loss {test_loss:.4f}; training {seconds:.1f} s, {rate:,.0f} images/s")
    result = dict(test_accuracy=accuracy, test_loss=test_loss, train_seconds=seconds,
                  images_per_second=rate, epochs=epochs, losses=losses, model=model,
                  data=name)
    if save:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "lenet5.npz")
        _save_pictures(model, x_te[0], out)
        metrics = {k: v for k, v in result.items() if k not in ("model", "losses")}
        metrics.update(batch_size=batch_size, lr=lr, momentum=momentum, seed=seed,
                       augment=augment, weight_decay=weight_decay,
                       threads=pyxconv.get_num_threads(), final_train_loss=losses[-1])
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        log(f"wrote {out / 'lenet5.npz'}, {out / 'filters.png'}, {out / 'feature_maps.png'}, "
            f"{out / 'metrics.json'}")
    return result


def add_arguments(parser):
    """The ``train`` subcommand's options."""
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="MNIST-format directory (default: scikit-learn's 8x8 digits)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: 30 on the digits, 1 on MNIST")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="kernel and BLAS threads (default: pyxconv's, OMP_NUM_THREADS "
                             "or the cores)")
    parser.add_argument("--augment", type=int, default=None, metavar="PIXELS",
                        help="random shifts of up to PIXELS (default: 2 on the digits, 0 on "
                             "MNIST)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--out", default="pyxconv-train-output", metavar="DIR",
                        help="where to write weights and pictures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main_from_args(args):
    train(data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
          momentum=args.momentum, seed=args.seed, threads=args.threads, out=args.out,
          progress=not args.no_progress, limit=args.limit, augment=args.augment)


def cli(argv=None):
    """Entry point of the ``pyxconv-train`` console script (same options as ``train``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="pyxconv-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    main_from_args(parser.parse_args(argv))
    return 0
