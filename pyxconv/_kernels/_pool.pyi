"""Type stubs for the compiled pooling kernels (see _pool.pyx for the contracts).

Arrays are C-contiguous float32 or float64 (one dtype per call) and int64
switches; every argument has been validated by pyxconv.functional._pool.
"""
import numpy as np
import numpy.typing as npt

_Float = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_Index = npt.NDArray[np.int64]

def max_pool_forward(
    x: _Float, out: _Float, switches: _Index | None,
    k_d: int, k_h: int, k_w: int, s_d: int, s_h: int, s_w: int,
    p_d: int, p_h: int, p_w: int, d_d: int, d_h: int, d_w: int,
    tap_offset: _Index, col_lo: _Index, col_hi: _Index,
    first_col_tap: npt.NDArray[np.intc], n_threads: int,
) -> None: ...
def max_pool_backward(grad_out: _Float, switches: _Index, grad_x: _Float,
                      n_threads: int) -> None: ...
def scatter_into_tiles(values: _Float, switches: _Index, out: _Float, k_h: int, k_w: int,
                       n_threads: int) -> int: ...
def index_bounds(switches: _Index, lows: _Index, highs: _Index, n_threads: int) -> None: ...
def max_unpool(x: _Float, switches: _Index, out: _Float, n_threads: int) -> None: ...
def avg_pool_forward(
    x: _Float, out: _Float, k_d: int, k_h: int, k_w: int, s_d: int, s_h: int, s_w: int,
    p_d: int, p_h: int, p_w: int, d_d: int, d_h: int, d_w: int,
    div_d: _Index, div_h: _Index, div_w: _Index, divisor_override: int, n_threads: int,
) -> None: ...
def avg_pool_backward(
    scaled: _Float, grad_x: _Float, od_ptr: _Index, od_idx: _Index, oh_ptr: _Index,
    oh_idx: _Index, ow_ptr: _Index, ow_idx: _Index, ow_pick: _Index, single: bool,
    n_threads: int,
) -> None: ...
def plane_mean(x: _Float, out: _Float, n_threads: int) -> None: ...
