"""
The silence detector: a 1-D convolution over sound
==================================================

Lecture 001 (part two) introduces convolutions on sound: a small filter slides
along the amplitude samples and, at every position, a neuron computes
:math:`\\sigma(b + \\sum_i w_i I_{t+i})`. One such filter can detect *silence*.
This tutorial builds one with :func:`pyxconv.functional.conv1d` on a
synthetic signal, then stacks a second layer on top, as the lecture does
(WE-05, WE-06).
"""

# %%
# A signal with sound and silence
# -------------------------------
# Two seconds at 4 kHz: three notes separated by pauses, plus a little noise.
# The amplitude is normalised to [-1, 1], as on the lecture's slide.
import matplotlib.pyplot as plt
import numpy as np

from pyxconv.functional import conv1d

rate = 4000
t = np.arange(2 * rate) / rate
rng = np.random.default_rng(0)
envelope = ((t > 0.1) & (t < 0.5)) | ((t > 0.8) & (t < 1.1)) | ((t > 1.5) & (t < 1.9))
signal = envelope * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
signal = signal + 0.02 * rng.standard_normal(t.size)
signal = signal / np.abs(signal).max()
print(f"{signal.size} samples, amplitude in [{signal.min():.2f}, {signal.max():.2f}]")

# %%
# The detector
# ------------
# Silence is where the *energy* is low. Squaring the samples gives the
# instantaneous energy, and a box filter of 200 taps (50 ms) averages it: that
# is a 1-D convolution with all weights equal to 1/200. A bias and a negative
# gain turn "low energy" into a high output of the sigmoid.
#
# ``conv1d`` takes arrays of shape (N, C, L) and filters of shape
# (C_out, C_in, F): here one sequence, one channel, one filter.
taps = 200
box = np.full((1, 1, taps), 1.0 / taps)
energy = conv1d((signal ** 2)[None, None], box, padding="same")[0, 0]
gain, bias = -60.0, 3.0
silence = 1.0 / (1.0 + np.exp(-(gain * energy + bias)))
print(f"output length {energy.size} (padding 'same' keeps the length)")
print(f"fraction of time judged silent: {np.mean(silence > 0.5):.2f}")
print(f"fraction of time actually silent: {np.mean(~envelope):.2f}")

# %%
fig, axes = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
axes[0].plot(t, signal, lw=0.4)
axes[0].set_ylabel("amplitude")
axes[0].set_title("input: normalised sound")
axes[1].plot(t, silence, color="C3")
axes[1].fill_between(t, 0, ~envelope, color="0.85", step="mid", label="true silence")
axes[1].set_ylabel(r"$\sigma(b + w \cdot I)$")
axes[1].set_xlabel("time (s)")
axes[1].set_title("output of the silence detector")
axes[1].legend(loc="upper right")
fig.tight_layout()

# %%
# The lecture's numbers (WE-05)
# -----------------------------
# The lecture's slides show the pre-activation sums at eight positions of its
# detector: 1.2, 1.6, 2.3, 2.9, 2.4, 1.5, 0.2, -0.6 (the samples and the
# weights were pictures). With the logistic sigmoid the neuron outputs are:
sums = np.array([1.2, 1.6, 2.3, 2.9, 2.4, 1.5, 0.2, -0.6])
print(np.round(1 / (1 + np.exp(-sums)), 4))

# %%
# A filter at a further layer (WE-06)
# -----------------------------------
# Two first-layer filters give a volume of two channels. The lecture's
# second-layer filter has 4 taps on each of the 2 channels; the lecture
# prints both as tables with one row per time step, the transpose of the
# (C, L) layout.
volume = np.array([[1.2, 0.1], [1.6, -0.6], [2.3, -0.6], [2.9, -0.1],
                   [2.4, 0.6], [1.5, 0.9], [0.2, 0.7], [-0.6, 0.5]])
filt = np.array([[1, -1], [-1, -1], [-1, -1], [1, 1]])
second = conv1d(volume.T[None], filt.T[None])
print("second layer:", np.round(second[0, 0], 6))

# %%
# The lecture's result is 1.2, 0.7, -0.5, -1.5, -1.6. Every output is a sum over
# **both** channels and four time steps, for example the first one:
print(" + ".join(f"({v:g})*({w:g})" for v, w in zip(volume[:4].ravel(), filt.ravel())),
      "=", np.round((volume[:4] * filt).sum(), 6))
