"""pyxconv: fast, transparent convolutional neural networks on the CPU.

Typed Cython/OpenMP kernels (im2col/col2im convolution, max-pooling with
switches, fused softmax cross-entropy) under a thin NumPy API with PyTorch's
names, layouts and output sizes.
"""
from pyxconv._version import __version__
from pyxconv._threads import get_num_threads, num_threads, set_num_threads
from pyxconv._workspace import get_workspace_limit, set_workspace_limit
from pyxconv._config import show_config
from pyxconv import functional

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
