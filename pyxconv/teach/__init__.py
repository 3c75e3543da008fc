"""Teaching tools: the views of convolution that lectures draw on the board.

Each submodule adds its functions to this namespace.
"""
from pyxconv.teach._arithmetic import (
    conv_mult_adds,
    conv_output_size,
    conv_params,
    dense_params,
    jacobian_bytes,
    receptive_field,
)
from pyxconv.teach._explain import CellExplanation, explain_output_cell

__all__ = [
    "CellExplanation",
    "conv_mult_adds",
    "conv_output_size",
    "conv_params",
    "dense_params",
    "explain_output_cell",
    "jacobian_bytes",
    "receptive_field",
]
