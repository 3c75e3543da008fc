"""Memory stays flat: thousands of training steps leak nothing."""
from pathlib import Path

import numpy as np
import pytest

import pyxconv.functional as F


def resident_bytes():
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc (Linux) to read the resident set size")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no VmRSS in /proc/self/status")


def training_step(x, target, w1, w2, w3):
    """One forward+backward pass of conv -> relu -> maxpool -> conv -> relu -> linear -> loss."""
    h1 = F.conv2d(x, w1, padding=1)
    a1 = np.maximum(h1, 0)
    p1, switches = F.max_pool2d(a1, 2, return_indices=True)
    h2 = F.conv2d(p1, w2)
    a2 = np.maximum(h2, 0)
    flat = a2.reshape(len(x), -1)
    logits = flat @ w3
    loss, grad_logits = F.softmax_cross_entropy(logits, target)
    grad_flat = grad_logits @ w3.T
    grad_h2 = grad_flat.reshape(a2.shape) * (h2 > 0)
    grad_p1, grad_w2, _ = F.conv2d_backward(grad_h2, p1, w2)
    grad_a1 = F.max_pool2d_backward(grad_p1, switches, a1.shape)
    _, grad_w1, _ = F.conv2d_backward(grad_a1 * (h1 > 0), x, w1, padding=1,
                                      needs_input_grad=False)
    return loss, grad_w1, grad_w2, flat.T @ grad_logits


def test_thousands_of_training_steps_keep_resident_memory_flat():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 12, 12)).astype(np.float32)
    target = rng.integers(0, 10, 8)
    w1 = rng.standard_normal((4, 1, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * 0.3
    w3 = rng.standard_normal((8 * 4 * 4, 10)).astype(np.float32) * 0.1
    for _ in range(200):  # warm-up: allocator pools, lazy imports
        training_step(x, target, w1, w2, w3)
    before = resident_bytes()
    for _ in range(2000):
        training_step(x, target, w1, w2, w3)
    grown = resident_bytes() - before
    # One step allocates ~40 KB; a leak of even one small array a step would add >100 MB.
    assert grown < 4 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 2000 steps"
