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

__all__ = [
    "col2im",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv3d",
    "conv3d_backward",
    "im2col",
    "same_padding",
]
