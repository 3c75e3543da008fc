"""Ready-made architectures from lecture 002: LeNet-5, GoogLeNet's inception module, a small ResNet.

Each function returns a :class:`pyxconv.nn.Sequential` whose children and
parameter names are those of the same model written with ``torch.nn``, so
weights move between the two with ``state_dict``.
"""
import numpy as np

from pyxconv import nn

__all__ = ["Normalized", "googlenet", "inception", "lenet5", "load", "resnet_block", "save",
           "small_resnet"]


def lenet5(num_classes=10, in_channels=1):
    """LeNet-5 (LeCun et al., 1998) for 32x32 images, with ReLU and max-pooling.

    ====  ===========================  ===========
    #     layer                        output
    ====  ===========================  ===========
    0     Conv2d(1, 6, 5)              6x28x28
    1-2   ReLU, MaxPool2d(2)           6x14x14
    3     Conv2d(6, 16, 5)             16x10x10
    4-5   ReLU, MaxPool2d(2)           16x5x5
    6     Flatten                      400
    7-8   Linear(400, 120), ReLU       120
    9-10  Linear(120, 84), ReLU        84
    11    Linear(84, num_classes)      10
    ====  ===========================  ===========

    The 1998 network used tanh-like squashing and trainable subsampling;
    ReLU and max-pooling are the modern reading. MNIST's 28x28 digits are
    zero-padded to 32x32, as in the paper.

    Examples
    --------
    >>> from pyxconv.models import lenet5
    >>> from pyxconv.teach import summary
    >>> summary(lenet5(), (1, 32, 32)).total_params
    61706
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def _conv_relu(c_in, c_out, k, **kwargs):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, **kwargs), nn.ReLU())


def inception(c_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, naive=False):
    """A GoogLeNet inception module: 1x1, 3x3, 5x5 and pooled branches, concatenated.

    With ``naive=True`` the 3x3 and 5x5 branches see the input directly and
    the pooling branch has no 1x1 projection (lecture 002's "naive" module,
    whose cost is WE-19's 854M multiply-adds at 28x28x256).
    """
    if naive:
        return nn.Concat(
            _conv_relu(c_in, c1, 1),
            _conv_relu(c_in, c3, 3, padding=1),
            _conv_relu(c_in, c5, 5, padding=2),
            nn.MaxPool2d(3, stride=1, padding=1),
        )
    return nn.Concat(
        _conv_relu(c_in, c1, 1),
        nn.Sequential(_conv_relu(c_in, c3_reduce, 1), _conv_relu(c3_reduce, c3, 3, padding=1)),
        nn.Sequential(_conv_relu(c_in, c5_reduce, 1), _conv_relu(c5_reduce, c5, 5, padding=2)),
        nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_relu(c_in, pool_proj, 1)),
    )


def googlenet(num_classes=1000):
    """GoogLeNet (Szegedy et al., 2014) as in lecture 002's table, for 224x224x3 input.

    No local response normalisation and no auxiliary classifiers; max-pools
    use ``ceil_mode=True`` so that 112 -> 56 -> 28 -> 14 -> 7 as in the table.
    """
    pool = lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        _conv_relu(3, 64, 7, stride=2, padding=3),
        pool(),
        nn.Sequential(_conv_relu(64, 64, 1), _conv_relu(64, 192, 3, padding=1)),
        pool(),
        inception(192, 64, 96, 128, 16, 32, 32),        # 3a
        inception(256, 128, 128, 192, 32, 96, 64),      # 3b
        pool(),
        inception(480, 192, 96, 208, 16, 48, 64),       # 4a
        inception(512, 160, 112, 224, 24, 64, 64),      # 4b
        inception(512, 128, 128, 256, 24, 64, 64),      # 4c
        inception(512, 112, 144, 288, 32, 64, 64),      # 4d
        inception(528, 256, 160, 320, 32, 128, 128),    # 4e
        pool(),
        inception(832, 256, 160, 320, 32, 128, 128),    # 5a
        inception(832, 384, 192, 384, 48, 128, 128),    # 5b
        nn.AvgPool2d(7, stride=1),
        nn.Dropout(0.4),
        nn.Flatten(),
        nn.Linear(1024, num_classes),
    )


def resnet_block(c_in, c_out, stride=1):
    """A basic residual block, H(x) = F(x) + x: conv-BN-ReLU-conv-BN, then ReLU after the sum
    is left to the caller. A strided 1x1 conv + BN shortcut is used when the shape changes."""
    body = nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
    )
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(c_out))
    return nn.Residual(body, shortcut)


def small_resnet(num_classes=10, in_channels=1, width=16):
    """A small ResNet for 28x28 or 32x32 images: stem, three residual stages, global pooling."""
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        resnet_block(w, w), nn.ReLU(),
        resnet_block(w, 2 * w, stride=2), nn.ReLU(),
        resnet_block(2 * w, 4 * w, stride=2), nn.ReLU(),
        nn.GlobalAvgPool2d(), nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )


class Normalized(nn.Module):
    """A model that normalises its input first: ``net((x - mean) / std)``.

    What :func:`load` returns, so that the saved model classifies raw images
    (the trainer's 32x32 images before normalisation). Its ``state_dict``
    keys are the inner model's, prefixed with ``net.``.
    """

    def __init__(self, net, mean, std):
        super().__init__()
        self.net = self._child("net", net)
        self.mean, self.std = float(mean), float(std)
        if not self.std > 0:
            raise ValueError(f"std must be > 0, got {std}")

    def forward(self, x):
        x = np.asarray(x)
        dtype = self.net.parameters()[0].data.dtype
        return self.net.forward(((x - self.mean) / self.std).astype(dtype, copy=False))

    def backward(self, grad_out):
        return self.net.backward(grad_out) / self.std

    def extra_repr(self):
        return f"mean={self.mean:.6g}, std={self.std:.6g}"


def save(model, path, name, mean=0.0, std=1.0):
    """Write ``model``'s weights and its input normalisation to one ``.npz``, atomically.

    Besides the ``state_dict`` entries (PyTorch's keys) the file holds
    ``pyxconv/model`` (the architecture's name in this module),
    ``pyxconv/mean`` and ``pyxconv/std``; :meth:`pyxconv.nn.Module.load`
    skips those, :func:`load` uses them.
    """
    from pyxconv._io import atomic_write

    if name not in ("lenet5", "small_resnet"):
        raise ValueError(f"name must be 'lenet5' or 'small_resnet', got {name!r}")
    arrays = dict(model.state_dict())
    arrays.update({"pyxconv/model": np.array(name), "pyxconv/mean": np.array(float(mean)),
                   "pyxconv/std": np.array(float(std))})
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load(path):
    """The model saved by :func:`save` (or by ``python -m pyxconv train``), ready for raw images.

    Returns a :class:`Normalized` model in eval mode, in the saved dtype,
    whose input is raw images: the trainer's ``(N, 1, 32, 32)`` images
    before normalisation (the digits scaled to 32x32, or MNIST padded to
    32x32 in [0, 1]). ``model(raw).argmax(axis=1)`` gives the classes.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from pyxconv import models
    >>> path = os.path.join(tempfile.mkdtemp(), "lenet5.npz")
    >>> models.save(models.lenet5(), path, "lenet5", mean=0.5, std=0.25)
    >>> model = models.load(path)
    >>> model(np.zeros((2, 1, 32, 32), np.float32)).shape
    (2, 10)
    """
    with np.load(path, allow_pickle=False) as f:
        if "pyxconv/model" not in f.files:
            raise ValueError(f"{path} has no pyxconv/model entry: it was not written by "
                             "pyxconv.models.save; build the model and call its .load(path)")
        name = str(f["pyxconv/model"])
        if name not in ("lenet5", "small_resnet"):
            raise ValueError(f"{path}: unknown model {name!r}")
        weights = {k: f[k] for k in f.files if not k.startswith("pyxconv/")}
        mean, std = float(f["pyxconv/mean"]), float(f["pyxconv/std"])
    net = globals()[name]().astype(next(iter(weights.values())).dtype)
    net.load_state_dict(weights)
    return Normalized(net, mean, std).eval()
