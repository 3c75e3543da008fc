"""Stateless operations on NumPy arrays, with PyTorch's names, layouts and output sizes.

Each forward function has a ``*_backward`` partner that returns the gradients,
so a training loop (or a student) can run backpropagation by hand.
"""
from pyxconv.functional._conv import (
    col2im,
    conv1d,
    conv1d_backward,
    conv2d,
    conv2d_backward,
    conv3d,
    conv3d_backward,
    im2col,
    same_padding,
)
from pyxconv.functional._conv_transpose import (
    conv_transpose1d,
    conv_transpose1d_backward,
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose3d,
    conv_transpose3d_backward,
    conv_transpose_output_size,
)

__all__ = [
    "col2im",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv3d_backward",
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "conv_transpose_output_size",
    "im2col",
    "same_padding",
]
