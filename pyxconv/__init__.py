"""pyxconv: fast, transparent convolutional neural networks on the CPU.

Typed Cython/OpenMP kernels (im2col/col2im convolution, max-pooling with
switches, fused softmax cross-entropy) under a thin NumPy API with PyTorch's
names, layouts and output sizes.
"""
import os

# Idle OpenMP threads sleep instead of spinning. pyxconv alternates its OpenMP
# loops with GEMMs in NumPy's BLAS, whose own threads spin after each call; on
# two cores the two pools then starve each other (measured: conv_transpose2d
# forward 145 ms with both pools spinning at 2 threads, 7.3 ms with this).
# It must be set before the kernels load libgomp; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pyxconv._version import __version__  # noqa: E402
from pyxconv._threads import get_num_threads, num_threads, set_num_threads
from pyxconv._workspace import get_workspace_limit, set_workspace_limit
from pyxconv._config import show_config
from pyxconv import functional

# Submodules that pull in more than the kernels load on first use:
# ``pyxconv.nn.Conv2d`` works after a plain ``import pyxconv``.
_LAZY_SUBMODULES = ("data", "models", "nn", "optim", "teach", "train")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"pyxconv.{name}")
    raise AttributeError(f"module 'pyxconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "__version__",
    "functional",
    "get_num_threads",
    "get_workspace_limit",
    "num_threads",
    "set_num_threads",
    "set_workspace_limit",
    "show_config",
]
