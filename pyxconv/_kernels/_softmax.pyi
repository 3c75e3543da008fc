"""Type stubs for the compiled softmax / cross-entropy kernels (see _softmax.pyx).

Arrays are C-contiguous float32 or float64 (one dtype per call); class
indices are int64. Callers validate everything first.
"""
from typing import Optional

import numpy as np
import numpy.typing as npt

_Float = npt.NDArray[np.floating]

def set_isa(isa: str) -> str: ...
def get_isa() -> str: ...
def first_bad_target(target: npt.NDArray[np.int64], n_classes: int, ignore_index: int) -> int: ...
def softmax_rows(x: _Float, out: _Float, log_output: bool, n_threads: int) -> None: ...
def cross_entropy_index(
    logits: _Float,
    target: npt.NDArray[np.int64],
    weight: Optional[_Float],
    eps: float,
    ignore_index: int,
    row_loss: npt.NDArray[np.float64],
    grad: Optional[_Float],
    mean: bool,
    n_threads: int,
) -> tuple[float, float]: ...
def cross_entropy_prob(
    logits: _Float,
    target: _Float,
    weight: Optional[_Float],
    eps: float,
    row_loss: npt.NDArray[np.float64],
    grad: Optional[_Float],
    scale: float,
    n_threads: int,
) -> float: ...
