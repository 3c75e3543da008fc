"""
The 5x5x3 example, step by step
===============================

Lecture 001 (part three) convolves a 5x5 RGB-like image with two 3x3x3
filters, zero padding 1 and stride 2, and shows the 3x3x2 output volume
(WE-07). This tutorial recomputes it the way the lecture's animation does,
one output cell at a time, and then the way pyxconv does, with one matrix
product (im2col).
"""

# %%
# The input volume and the filters
# --------------------------------
# The lecture prints the input one channel at a time (``x[:, :, c]``); pyxconv
# uses the layout (N, C, H, W) for images and (C_out, C_in, F, F) for filters.
import matplotlib.pyplot as plt
import numpy as np

from pyxconv.functional import conv2d, im2col
from pyxconv.teach import conv_output_size, explain_output_cell

x = np.array([
    [[1, 1, 0, 2, 1], [2, 1, 0, 2, 0], [2, 2, 1, 2, 2], [0, 2, 2, 1, 2], [2, 1, 0, 0, 2]],
    [[1, 2, 1, 0, 2], [2, 0, 0, 0, 2], [0, 2, 0, 1, 0], [1, 2, 0, 1, 2], [1, 0, 2, 0, 1]],
    [[2, 0, 0, 0, 1], [0, 0, 0, 1, 0], [1, 1, 0, 2, 1], [0, 0, 0, 2, 1], [0, 1, 1, 2, 2]],
])[None].astype(float)
w = np.array([
    [[[-1, 0, 0], [-1, -1, 1], [0, 1, -1]],
     [[-1, 0, -1], [1, -1, 0], [0, 1, -1]],
     [[0, -1, -1], [1, 1, -1], [-1, -1, -1]]],
    [[[0, 1, 1], [1, 1, -1], [-1, 1, -1]],
     [[1, -1, 0], [1, 1, 1], [-1, 1, 0]],
     [[0, 1, -1], [0, 1, 1], [1, 0, 0]]],
]).astype(float)
b = np.array([1.0, 0.0])
print("x:", x.shape, " w:", w.shape, " b:", b.shape)

# %%
# How big is the output?
# ----------------------
# :math:`(N - F + 2P)/S + 1 = (5 - 3 + 2)/2 + 1 = 3` along each axis, and one
# output channel per filter.
print("output size:", conv_output_size(5, 3, stride=2, padding=1))

# %%
# The zero-padded input
# ---------------------
# Padding 1 puts a border of zeros around each channel: the 7x7x3 volume of
# the slide.
padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
print(padded.astype(int))

# %%
# One output cell at a time
# -------------------------
# The window of cell (i, j) starts at row 2i and column 2j of the padded
# input. Its value is the sum, over the three channels, of the window times
# the filter, plus the bias. Here is every cell of both filters computed with
# plain NumPy, exactly as the animation does:
out = np.zeros((2, 3, 3))
for k in range(2):
    for i in range(3):
        for j in range(3):
            window = padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            out[k, i, j] = (window * w[k]).sum() + b[k]
print(out.astype(int))

# %%
# One cell in full, as the lecture reads it off the slide: the window, the
# filter and the products for each of the three channels, then the sum.
print(explain_output_cell(x, w, (1, 1), stride=2, padding=1, bias=b, out_channel=1))

# %%
# pyxconv computes the same volume, and it matches the lecture's slide:
# ``o[:,:,0] = [[5,0,-2],[-2,-3,0],[-4,-9,-1]]`` and
# ``o[:,:,1] = [[8,-1,7],[4,4,8],[4,9,7]]``.
o = conv2d(x, w, b, stride=2, padding=1)
print(o[0].astype(int))
print("loops and conv2d agree:", np.array_equal(o[0], out))

# %%
# The same thing as one matrix product
# ------------------------------------
# :func:`~pyxconv.functional.im2col` copies each of the 9 windows (3 channels
# x 3 x 3 = 27 numbers) into a column. The filters, flattened to rows of 27,
# times that 27 x 9 matrix give all 2 x 9 outputs at once.
cols = im2col(x, 3, stride=2, padding=1)[0]
print("column matrix:", cols.shape)
o_gemm = w.reshape(2, 27) @ cols + b[:, None]
print(o_gemm.reshape(2, 3, 3).astype(int))

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [2, 9]})
axes[0].imshow(w.reshape(2, 27).T, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto")
axes[0].set_title("filters (27 x 2)", fontsize=9)
axes[0].set_xlabel("filter")
axes[0].set_ylabel("(channel, row, column)")
axes[1].imshow(cols, cmap="Greys", aspect="auto")
for (r, c), v in np.ndenumerate(cols):
    axes[1].text(c, r, int(v), ha="center", va="center", fontsize=6, color="C1")
axes[1].set_title("im2col: one column per output cell (27 x 9)", fontsize=9)
axes[1].set_xlabel("output cell (i, j), row-major")
fig.tight_layout()
