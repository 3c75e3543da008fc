"""
Training LeNet-5 on the digits
==============================

Lecture 004 ends by training networks of layers with stochastic gradient
descent. This tutorial trains LeNet-5 with :func:`pyxconv.train.train` on
scikit-learn's handwritten digits (shipped with scikit-learn, so nothing is
downloaded; ``python -m pyxconv train --data DIR`` runs the same training on
the real MNIST files), plots the training curve, and shows what the first
layer learned. The textbook chapter on training derives the "is it a 5?"
classifier that comes before it.

Set ``PYXCONV_TUTORIAL_QUICK=1`` to run a shortened version (the test suite
does).
"""

import os

import matplotlib.pyplot as plt
import numpy as np

quick = os.environ.get("PYXCONV_TUTORIAL_QUICK") == "1"

# %%
# LeNet-5 on all ten digits
# -------------------------
# :func:`pyxconv.train.train` scales the digits to 32x32 (LeNet-5's input
# size), splits them 80/20, and trains with SGD and momentum, a cosine
# learning-rate schedule, and the fused softmax cross-entropy. It returns the
# model, the loss of every mini-batch and the test accuracy.
from pyxconv.train import train

result = train(epochs=1 if quick else 10, limit=256 if quick else None, progress=False,
               save=False, seed=0)
losses = np.array(result["losses"])
print(f"{len(losses)} mini-batches; first loss {losses[0]:.3f}, last loss {losses[-1]:.3f}")

# %%
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(losses, lw=0.8, label="mini-batch")
k = min(10, len(losses))
ax.plot(np.arange(k - 1, len(losses)), np.convolve(losses, np.ones(k) / k, "valid"),
        lw=2, label=f"mean of {k}")
ax.set_xlabel("mini-batch")
ax.set_ylabel("cross-entropy")
ax.set_title(f"LeNet-5 training; test accuracy {result['test_accuracy']:.3f}", fontsize=9)
ax.legend()
fig.tight_layout()

# %%
# What the first layer learned
# ----------------------------
# The six 5x5 filters of the first convolution, and the feature maps they
# produce on one digit: edges and strokes in different directions.
from pyxconv.functional import conv2d
from pyxconv.train import load_dataset

model = result["model"]
filters = np.asarray(model[0].weight.data)
x_tr, y_tr, x_te, y_te, name = load_dataset(seed=0)
maps = np.maximum(conv2d(x_te[:1], filters, np.asarray(model[0].bias.data)), 0)
fig, axes = plt.subplots(2, 7, figsize=(9, 2.8))
axes[0, 0].imshow(x_te[0, 0], cmap="gray_r")
axes[0, 0].set_title(f"digit {y_te[0]}", fontsize=8)
axes[1, 0].axis("off")
for k in range(6):
    axes[0, k + 1].imshow(filters[k, 0], cmap="RdBu_r")
    axes[0, k + 1].set_title(f"filter {k}", fontsize=8)
    axes[1, k + 1].imshow(maps[0, k], cmap="viridis")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
