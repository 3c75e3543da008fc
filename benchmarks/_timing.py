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


#: With PYXCONV_ISA=avx2, torch runs its AVX2 code too: ATen's kernels and oneDNN's
#: convolutions each have a documented switch, read when torch is imported.
#: onnxruntime has none (MLAS picks its kernels by CPUID), so on an AVX-512 machine
#: its AVX-512 code is what pyxconv's AVX2 code is compared with.
TORCH_ISA_SETTINGS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def restrict_torch_isa():
    """Under PYXCONV_ISA=avx2, set torch's AVX2 switches (unless given); call before
    importing torch. Returns the settings in effect, for the results file."""
    if os.environ.get("PYXCONV_ISA", "").strip().lower() == "avx2":
        for name, value in TORCH_ISA_SETTINGS.items():
            os.environ.setdefault(name, value)
    return {name: os.environ.get(name, "(unset)") for name in TORCH_ISA_SETTINGS}


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
