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


@pytest.fixture(params=["direct", "direct-blas", "numpy"])
def gemm_path(request):
    """Run the test on each way the convolutions make their products.

    "direct": the per-sample kernels as they run by default, with float32
    products on pyxconv's own AVX-512 GEMM where the CPU has it;
    "direct-blas": the same kernels with every product on NumPy's BLAS
    (skipped where it would repeat "direct"); "numpy": the chunked NumPy path.
    (see pyxconv._blas; the direct paths are skipped where NumPy's BLAS offers
    no ILP64 CBLAS entry points)
    """
    from pyxconv import _blas
    from pyxconv._kernels import _im2col

    direct = request.param.startswith("direct")
    if direct and not _blas.ensure_gemm():
        pytest.skip("NumPy's BLAS offers no ILP64 CBLAS GEMM")
    if request.param == "direct-blas" and not _im2col.avx512_available():
        pytest.skip("no AVX-512 here: 'direct' already runs on the BLAS")
    old = _blas.allow_direct_gemm(direct)
    old_own = _im2col.use_avx512(request.param == "direct")
    yield request.param
    _im2col.use_avx512(old_own)
    _blas.allow_direct_gemm(old)
