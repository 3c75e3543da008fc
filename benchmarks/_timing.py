"""Timing shared by the benchmark scripts."""
import os
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


WAIT_POLICY_HELP = (
    "OpenMP wait policy for both libraries: 'pyxconv' (default) keeps what "
    "'import pyxconv' sets, threads spinning ~1.7 ms when idle; 'passive' sets "
    "OMP_WAIT_POLICY=PASSIVE. torch and pyxconv share one libgomp in this process "
    "(same soname), so one policy holds for both.")


def wait_policy_from_argv(argv):
    """Apply ``--wait-policy`` from ``argv`` before any OpenMP runtime loads; return it.

    Call it before importing pyxconv or torch, and import pyxconv first so
    that its settings are the ones the shared runtime reads.
    """
    policy = "pyxconv"
    for i, arg in enumerate(argv):
        if arg.startswith("--wait-policy="):
            policy = arg.split("=", 1)[1]
        elif arg == "--wait-policy" and i + 1 < len(argv):
            policy = argv[i + 1]
    if policy == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return policy


def wait_settings():
    """The OpenMP waiting variables as the runtime saw them (after ``import pyxconv``)."""
    return {name: os.environ.get(name, "(unset)") for name in ("OMP_WAIT_POLICY",
                                                                 "GOMP_SPINCOUNT")}
