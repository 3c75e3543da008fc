"""pyxconv: fast, transparent convolutional neural networks on the CPU.

Typed Cython/OpenMP kernels (im2col/col2im convolution, max-pooling with
switches, fused softmax cross-entropy) under a thin NumPy API with PyTorch's
names, layouts and output sizes.
"""
import os

# Idle OpenMP threads spin for a while (~1.7 ms measured) before they sleep.
# Waking a sleeping thread cost ~0.1 ms per parallel loop on a 2-core VM, and
# a training step runs a dozen loops with short serial gaps between them: a
# LeNet-5 step at 2 threads took 5.1 ms with OMP_WAIT_POLICY=PASSIVE, 3.6 ms
# with this. pyxconv keeps NumPy's BLAS on one thread inside its own parallel
# sections, so the two pools do not alternate on the cores (see
# pyxconv._threads). Set before the kernels load libgomp; either variable set
# by the user wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "100000"

from pyxconv._version import __version__  # noqa: E402
from pyxconv._threads import get_num_threads, in_forked_child, num_threads, set_num_threads
from pyxconv._workspace import get_workspace_limit, set_workspace_limit
from pyxconv._config import show_config
from pyxconv._grad_mode import is_grad_enabled, no_grad
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
    "in_forked_child",
    "get_workspace_limit",
    "is_grad_enabled",
    "no_grad",
    "num_threads",
    "set_num_threads",
    "set_workspace_limit",
    "show_config",
]
