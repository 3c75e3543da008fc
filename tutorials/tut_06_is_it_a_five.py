"""
Is this digit a 5? Logistic regression, then an MLP, then a CNN
===============================================================

Lecture 004 sets up the smallest useful classifier: look at a handwritten
digit and answer *is it a 5?* It follows the five steps of every supervised
learning problem (data, model, loss, fitting, testing) with logistic
regression, and the lecture series then grows the model into a multi-layer
perceptron and a convolutional network. This tutorial does all three with
:mod:`pyxconv.nn` and :mod:`pyxconv.optim`, on scikit-learn's 8x8 digits
(bundled with scikit-learn, so nothing is downloaded; for the lecture's
28x28 MNIST, pass an MNIST directory to :func:`pyxconv.data.load_mnist`).
"""

# %%
# Prepare the data
# ----------------
# 1,797 digits of 8x8 pixels, split 80/20 per class. The label is
# :math:`y = 1` for a five and :math:`y = 0` for every other digit.
import matplotlib.pyplot as plt
import numpy as np

from pyxconv import nn, optim
from pyxconv.data import Batches, load_digits

x_train, d_train, x_test, d_test = load_digits(size=8, seed=0)
y_train = (d_train == 5).astype(np.float32)[:, None]
y_test = (d_test == 5).astype(np.float32)[:, None]
print(f"{len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]} pixels")
print(f"fives: {int(y_train.sum())} in training, {int(y_test.sum())} in test")

# %%
# Only about one digit in ten is a 5, so the model that always answers "no"
# is already right 90% of the time. Accuracy alone hides that; we also count
# how many fives each model finds (recall) and how many of its "yes" answers
# are right (precision).
baseline = 1 - y_test.mean()
print(f"always 'not a 5': accuracy {baseline:.3f}, recall 0")


def scores(model, x, y):
    model.eval()
    predicted = model(x) > 0          # sigmoid(z) > 0.5  <=>  z > 0
    model.train()
    tp = int((predicted & (y == 1)).sum())
    return dict(accuracy=float((predicted == (y == 1)).mean()),
                recall=tp / int(y.sum()), precision=tp / max(int(predicted.sum()), 1))


def fit(model, x, y, epochs, lr):
    """Minimise the negative log-likelihood (binary cross-entropy) with Adam."""
    loss_fn = nn.BCEWithLogits()
    opt = optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for xb, yb in Batches(x, y, batch_size=32, seed=0):
            loss = loss_fn(model(xb), yb)
            model.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
    return loss


# %%
# Model 1: logistic regression
# ----------------------------
# Flatten the image to :math:`x \in \mathbb{R}^{64}` and predict
# :math:`p(y = 1 \mid x) = g(\theta^T x + b)` with the sigmoid
# :math:`g(z) = 1 / (1 + e^{-z})`. Maximising the likelihood of the
# training labels is minimising
#
# .. math::
#
#     \mathcal{L}(\theta) = -\sum_i y^{(i)} \log g(z^{(i)})
#                           + (1 - y^{(i)}) \log (1 - g(z^{(i)})),
#
# which :class:`~pyxconv.nn.BCEWithLogits` computes from :math:`z` directly
# (no overflow for large :math:`|z|`). The model is a single
# :class:`~pyxconv.nn.Linear` layer; the sigmoid lives in the loss.
nn.manual_seed(0)
flat_train = x_train.reshape(len(x_train), -1)
flat_test = x_test.reshape(len(x_test), -1)
logistic = nn.Linear(64, 1)
fit(logistic, flat_train, y_train, epochs=10, lr=0.02)
results = {"logistic regression": scores(logistic, flat_test, y_test)}
print(results["logistic regression"])

# %%
# The 64 weights, drawn as an image, are the template the model matches
# against: positive (red) where ink argues for a 5, negative (blue) against.
w = logistic.weight.data.reshape(8, 8)
lim = np.abs(w).max()
plt.figure(figsize=(3, 3))
plt.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
plt.title("logistic regression weights")
plt.axis("off")
plt.show()

# %%
# Model 2: a multi-layer perceptron
# ---------------------------------
# One hidden layer of 32 ReLU units lets the model combine strokes
# non-linearly instead of weighting pixels independently.
mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
fit(mlp, flat_train, y_train, epochs=10, lr=0.01)
results["MLP 64-32-1"] = scores(mlp, flat_test, y_test)
print(results["MLP 64-32-1"])

# %%
# Model 3: a convolutional network
# --------------------------------
# Two 3x3 convolutions with ReLU and 2x2 max-pooling, then a linear read-out:
# the same filters slide over the whole image, so a stroke is recognised
# wherever it is, with fewer weights than the MLP's first layer.
cnn = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 8 x 4 x 4
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 2 x 2
    nn.Flatten(), nn.Linear(64, 1),
)
img_train, img_test = x_train[:, None], x_test[:, None]
fit(cnn, img_train, y_train, epochs=10, lr=0.01)
results["CNN"] = scores(cnn, img_test, y_test)
print(results["CNN"])

# %%
# Compare
# -------
params = {"logistic regression": logistic, "MLP 64-32-1": mlp, "CNN": cnn}
print(f"{'model':<22}{'params':>8}{'accuracy':>10}{'recall':>8}{'precision':>11}")
print(f"{'always not a 5':<22}{0:>8}{baseline:>10.3f}{0:>8.3f}{'-':>11}")
for name, r in results.items():
    n = sum(p.data.size for p in params[name].parameters())
    print(f"{name:<22}{n:>8}{r['accuracy']:>10.3f}{r['recall']:>8.3f}{r['precision']:>11.3f}")

plt.figure(figsize=(5, 2.5))
names = ["always no"] + list(results)
plt.bar(names, [baseline] + [r["accuracy"] for r in results.values()], color="tab:blue")
plt.ylim(0.85, 1.0)
plt.ylabel("test accuracy")
plt.title("is it a 5?")
plt.show()

# %%
# All three beat the "always no" baseline; the recall column shows the real
# difference: how many of the fives each model actually catches.
