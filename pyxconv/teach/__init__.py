"""Teaching tools: the views of convolution that lectures draw on the board.

Each submodule adds its functions to this namespace.
"""
from pyxconv.teach._arithmetic import (
    conv_mult_adds,
    conv_output_size,
    conv_params,
    dense_params,
    jacobian_bytes,
)
from pyxconv.teach._summary import GradcheckError, Summary, gradcheck, receptive_field, summary
from pyxconv.teach._explain import CellExplanation, explain_output_cell
from pyxconv.teach._toeplitz import (
    MAX_MATRIX_ENTRIES,
    conv_matrix,
    conv_matrix_symbols,
    conv_transpose_matrix,
    dilate,
    dilate_and_flip_transpose,
    format_matrix,
    toeplitz_demo,
)

__all__ = [
    "MAX_MATRIX_ENTRIES",
    "conv_matrix",
    "conv_matrix_symbols",
    "conv_transpose_matrix",
    "dilate",
    "dilate_and_flip_transpose",
    "format_matrix",
    "toeplitz_demo",
    "CellExplanation",
    "GradcheckError",
    "Summary",
    "conv_mult_adds",
    "conv_output_size",
    "conv_params",
    "dense_params",
    "explain_output_cell",
    "gradcheck",
    "jacobian_bytes",
    "receptive_field",
    "summary",
]
