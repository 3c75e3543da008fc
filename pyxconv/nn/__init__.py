"""Layers with a forward and a backward pass, PyTorch's names and parameter layouts.

Every layer has ``forward(x)`` (also ``layer(x)``), ``backward(grad_out)``
returning the input gradient and adding parameter gradients to
``param.grad``, ``parameters()``, ``zero_grad()``, ``train()``/``eval()``,
``state_dict()``/``load_state_dict()`` with PyTorch's keys, and
``save``/``load`` to ``.npz``.
"""
from pyxconv.nn import init
from pyxconv.nn._activations import ELU, LeakyReLU, PReLU, ReLU, Sigmoid, Softplus, Tanh
from pyxconv.nn._layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Dropout,
    Flatten,
    Linear,
    manual_seed,
)
from pyxconv.nn._loss import BCEWithLogits, NLLLoss, SoftmaxCrossEntropy
from pyxconv.nn._pool import (AvgPool1d, AvgPool2d, AvgPool3d, GlobalAvgPool2d,
                              GlobalMaxPool2d, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool1d,
                              MaxUnpool2d, MaxUnpool3d)
from pyxconv.nn._module import (BackwardBeforeForwardError, Concat, Module, Parameter,
                                 Residual, Sequential)

__all__ = [
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BCEWithLogits",
    "BackwardBeforeForwardError",
    "GlobalAvgPool2d",
    "GlobalMaxPool2d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
    "MaxUnpool3d",
    "NLLLoss",
    "SoftmaxCrossEntropy",
    "BatchNorm1d",
    "BatchNorm2d",
    "Concat",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout",
    "ELU",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "Module",
    "PReLU",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "init",
    "manual_seed",
]
