"""Type stubs for the compiled ReLU kernels (see _activations.pyx).

C-contiguous float32 or float64 ndarrays of one size and one dtype, read flat.
"""
import numpy as np
import numpy.typing as npt

_Float = npt.NDArray[np.floating]

def relu_forward(x: _Float, out: _Float, n_threads: int) -> None: ...
def relu_backward(grad_out: _Float, out: _Float, grad_in: _Float, n_threads: int) -> None: ...
