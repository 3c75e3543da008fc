"""Test configuration shared by the whole suite.

Hypothesis profiles
-------------------
``ci`` (the default) keeps property tests quick; ``long`` runs many more
examples for a local soak: ``HYPOTHESIS_PROFILE=long python -m pytest``.
Property tests set ``deadline=None`` only and take their example counts from
the profile.
"""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir():
    """../shared beside the repository, or skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the repository")
    return SHARED


@pytest.fixture(params=["direct", "direct-avx2", "direct-blas", "numpy"])
def gemm_path(request):
    """Run the test on each way the convolutions make their products.

    "direct": the per-sample kernels as they run by default, with float32
    products on pyxconv's own GEMM on the best instruction set the CPU has;
    "direct-avx2": the same with the own GEMM forced to AVX2 (skipped where
    AVX2 is not available or is already the best); "direct-blas": every
    product on the BLAS (``PYXCONV_ISA=none``; skipped where the CPU has no
    own-GEMM instruction set, so that "direct" already is it); "numpy": the
    chunked NumPy path (see pyxconv._blas).
    """
    from pyxconv import _blas

    available = _blas.available_isas()
    wanted = {"direct": available[0], "direct-avx2": "avx2", "direct-blas": "none",
              "numpy": available[0]}[request.param]
    if wanted not in available:
        pytest.skip(f"{wanted} is not available on this CPU or build")
    if request.param != "direct" and request.param != "numpy" and wanted == available[0]:
        pytest.skip(f"{wanted} is already the default: 'direct' covers it")
    old = _blas.allow_direct_gemm(request.param != "numpy")
    old_isa = _blas.set_isa(wanted)
    yield request.param
    _blas.set_isa(old_isa)
    _blas.allow_direct_gemm(old)


@pytest.fixture(params=["avx512", "avx2", "none"])
def isa(request):
    """Run the test on each instruction set of the kernels here (pyxconv._blas.set_isa),
    skipping those the CPU or build lacks."""
    from pyxconv import _blas

    if request.param not in _blas.available_isas():
        pytest.skip(f"{request.param} is not available on this CPU or build")
    old = _blas.set_isa(request.param)
    yield request.param
    _blas.set_isa(old)
