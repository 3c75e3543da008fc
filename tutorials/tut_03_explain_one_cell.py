"""
Explain one output cell: the product table of WE-23
===================================================

Tutorial lecture 003 computes a 2-D convolution on the blackboard: for each
output cell, the window of the input under the kernel, the pointwise products,
and their sum. :func:`pyxconv.teach.explain_output_cell` prints that table for
any cell, so you can check every slide, including the two with a wrong number
(WE-24 and WE-25, see the errata in the textbook).
"""

# %%
# The input and the kernel
# ------------------------
import matplotlib.pyplot as plt
import numpy as np

from pyxconv.functional import conv2d, same_padding
from pyxconv.teach import explain_output_cell

x = np.array([[4, 1, -3, 1], [2, 0, -2, 3], [4, 2, -1, 2], [2, 1, -1, 0]])
kernel = np.array([[2, -1, 2], [-2, 0, 1], [1, 3, 4]])

# %%
# The first cell (WE-23)
# ----------------------
# The products are ``[[8, -1, -6], [-4, 0, -2], [4, 6, -4]]`` and they sum to 1.
print(explain_output_cell(x, kernel, (0, 0)))

# %%
# Stride 1, "valid": every cell (WE-24)
# -------------------------------------
# Without padding, a 3x3 kernel fits in 2 x 2 positions of a 4x4 input.
for i in range(2):
    for j in range(2):
        print(explain_output_cell(x, kernel, (i, j)))
        print()
print(conv2d(x[None, None], kernel[None, None])[0, 0].astype(int))

# %%
# The slide says cell (0, 1) is 5; the table above shows why it is 17.
#
# Stride 2, "same" (WE-25)
# ------------------------
# TensorFlow's "same" padding at stride 2 gives ``ceil(4 / 2) = 2`` outputs
# per axis, and puts the one extra row and column of zeros at the bottom and
# right:
pads = same_padding((4, 4), 3, stride=2)
print("padding:", pads)

# %%
# The lecture's "same" slides print ``x[0, 3]`` as 0, not 1. Both versions:
x_same = x.copy()
x_same[0, 3] = 0
for name, xi in [("as printed on the 'same' slides", x_same), ("as on the 'valid' slides", x)]:
    print(name)
    print(explain_output_cell(xi, kernel, (0, 1), stride=2, padding=pads))
    print(conv2d(xi[None, None], kernel[None, None], stride=2, padding=pads)[0, 0].astype(int))
    print()

# %%
# The slide's -9 has ``-6`` where ``3 * 2 = 6``: the correct value is 3 (or 2
# with the "valid" input).
#
# A picture of the windows
# ------------------------
# Each output cell of the stride-1 convolution and the window it reads.
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, (i, j) in zip(axes, [(0, 0), (0, 1), (1, 0), (1, 1)]):
    cell = explain_output_cell(x, kernel, (i, j))
    ax.imshow(x, cmap="coolwarm", vmin=-4, vmax=4)
    for (r, c), v in np.ndenumerate(x):
        ax.text(c, r, v, ha="center", va="center", fontsize=9)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 3, 3, fill=False, ec="k", lw=2.5))
    ax.set_title(f"cell ({i}, {j}) = {cell.value:g}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
