"""
Transposed convolution, three ways
==================================

Lecture 000 explains the transposed convolution three ways, and they all give
the same numbers (WE-02):

1. multiply by the **transpose of the convolution's matrix** (its Toeplitz
   matrix);
2. **dilate and flip**: spread the input out with zeros (by the stride), pad,
   and run an ordinary convolution with the flipped filter;
3. the **backward pass** of the convolution: the gradient with respect to the
   input of a convolution is a transposed convolution of the upstream
   gradient.

pyxconv has it as an operation of its own,
:func:`~pyxconv.functional.conv_transpose2d`. This tutorial checks all four
against each other in 2-D, and shows what a stride-2 transposed convolution
does to an image: it upsamples.
"""

# %%
# A 2-D convolution and its matrix
# --------------------------------
# A 3x3 filter with stride 2 and padding 1 maps a 6x6 image to 3x3. Its
# matrix has one column per input pixel (36) and one row per output pixel (9);
# column j is the convolution of the j-th unit image.
import matplotlib.pyplot as plt
import numpy as np

from pyxconv.functional import conv2d, conv2d_backward, conv_transpose2d

rng = np.random.default_rng(0)
w = rng.integers(-2, 3, size=(1, 1, 3, 3)).astype(float)
stride, padding, n = 2, 1, 6
impulses = np.eye(n * n).reshape(n * n, 1, n, n)
T = conv2d(impulses, w, stride=stride, padding=padding).reshape(n * n, -1).T
print("filter:\n", w[0, 0].astype(int))
print("matrix T:", T.shape)

# %%
# Way 1: the transposed matrix
# ----------------------------
# A 3x3 map ``g`` goes back to 6x6 through ``T.T``.
g = rng.integers(-3, 4, size=(1, 1, 3, 3)).astype(float)
way1 = (T.T @ g.ravel()).reshape(1, 1, n, n)
print(way1[0, 0].astype(int))

# %%
# Way 2: dilate and flip
# ----------------------
# Insert ``stride - 1`` zeros between neighbours (3x3 becomes 5x5), pad by
# ``F - 1 = 2``, cross-correlate with the flipped filter, and crop the forward
# padding (1) off each side. The forward windows never reached the last row
# and column of the padded 8x8 input, so one more zero after (padding 3
# instead of 2) gives back the full 8x8 padded shape before the crop.
dilated = np.zeros((1, 1, 5, 5))
dilated[:, :, ::2, ::2] = g
full = conv2d(dilated, w[:, :, ::-1, ::-1], padding=((2, 3), (2, 3)))
way2 = full[:, :, padding:padding + n, padding:padding + n]
print(way2[0, 0].astype(int))

# %%
# Way 3: the backward pass of the convolution
# -------------------------------------------
way3, _, _ = conv2d_backward(g, np.zeros((1, 1, n, n)), w, stride=stride, padding=padding)
print(way3[0, 0].astype(int))

# %%
# And pyxconv's transposed convolution, with ``output_padding=1`` to choose
# the 6x6 output among the sizes that a stride-2 convolution maps to 3x3:
way4 = conv_transpose2d(g, w, stride=stride, padding=padding, output_padding=1)
print(way4[0, 0].astype(int))
print("all four agree:", all(np.allclose(way1, other) for other in (way2, way3, way4)))

# %%
# What it does to an image
# ------------------------
# A transposed convolution is *not* the inverse of the convolution: it only
# undoes its shape. With a bilinear-like filter and stride 2 it upsamples an
# image; each input pixel stamps a scaled copy of the filter onto the output.
from sklearn.datasets import load_digits

digit = load_digits().images[0][None, None]
tent = np.outer([0.5, 1, 0.5], [0.5, 1, 0.5])[None, None]
up = conv_transpose2d(digit, tent, stride=2, padding=1, output_padding=1)
print("digit", digit.shape[-2:], "-> upsampled", up.shape[-2:])

fig, axes = plt.subplots(1, 4, figsize=(10, 2.6))
axes[0].imshow(T, cmap="RdBu_r", vmin=-2, vmax=2)
axes[0].set_title("T (9 x 36)", fontsize=9)
axes[1].imshow(T.T, cmap="RdBu_r", vmin=-2, vmax=2)
axes[1].set_title("T transposed (36 x 9)", fontsize=9)
axes[2].imshow(digit[0, 0], cmap="gray_r")
axes[2].set_title("8x8 digit", fontsize=9)
axes[3].imshow(up[0, 0], cmap="gray_r")
axes[3].set_title("conv_transpose2d, stride 2: 16x16", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
