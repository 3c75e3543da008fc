"""Timing shared by the benchmark scripts."""
import time

import numpy as np


def median_time(fn, repeats, min_time=0.05):
    """Median seconds per call; short calls are batched so each sample lasts >= min_time."""
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    inner = max(1, int(min_time / max(once, 1e-7)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return float(np.median(samples))
