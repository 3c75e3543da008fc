"""
Pooling with switches, and unpooling to see what a feature map encodes
======================================================================

Max-pooling keeps the largest value of each window and, with
``return_indices=True``, remembers *where* it was: the switches. Unpooling
puts the pooled values back at their switches. Lectures 000, 001, 003 and 004
use this to explain how gradients flow through a pooling layer, and it is
also the trick behind "deconvolution" visualisations: pool a feature map,
unpool it, and you see which positions survived, that is, what the pooled
map still encodes.
"""

# %%
# The lecture's example (WE-29)
# -----------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from pyxconv.functional import conv2d, max_pool2d, max_pool2d_backward, max_unpool2d

x = np.array([[4, 1, -3, 1], [2, 0, -2, 3], [4, 2, -1, 2], [2, 1, -1, 0]], float)[None, None]
y, switches = max_pool2d(x, 2, return_indices=True)
print("pooled:\n", y[0, 0].astype(int))
print("switches (flat index in the 4x4 map):\n", switches[0, 0])

# %%
# The gradient of the pooled map goes back to the switches only:
print(max_pool2d_backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]), switches, x.shape)[0, 0])

# %%
# A feature map of a digit
# ------------------------
# A vertical-edge filter (Sobel X) on an 8x8 digit from scikit-learn, then
# ReLU: the map is large where the stroke has a left edge.
digit = load_digits().images[3][None, None]
sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], float)[None, None]
fmap = np.maximum(conv2d(digit, -sobel_x, padding=1), 0)

# %%
# Pool it 2x2, then unpool with the switches. The unpooled map has one nonzero
# per window, at the strongest response: pooling keeps *that* there was an edge
# in each 2x2 region and, through the switch, *where*.
pooled, idx = max_pool2d(fmap, 2, return_indices=True)
unpooled = max_unpool2d(pooled, idx, 2)
print("feature map", fmap.shape[-2:], "-> pooled", pooled.shape[-2:],
      "-> unpooled", unpooled.shape[-2:])
print("nonzeros: feature map", int((fmap > 0).sum()), " unpooled", int((unpooled > 0).sum()))

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, m, title in [(axes[0], digit, "digit"), (axes[1], fmap, "ReLU(conv): left edges"),
                     (axes[2], pooled, "max-pool 2x2"), (axes[3], unpooled, "unpooled at switches")]:
    ax.imshow(m[0, 0], cmap="gray_r")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# Odd sizes (WE-33)
# -----------------
# 2x2 pooling of a 7-wide map gives ``ceil(7/2) = 4`` only in ceil mode:
print(max_pool2d(np.ones((1, 1, 7, 7)), 2).shape, max_pool2d(np.ones((1, 1, 7, 7)), 2,
                                                             ceil_mode=True).shape)
