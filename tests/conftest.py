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


@pytest.fixture(params=["direct", "numpy"])
def gemm_path(request):
    """Run the test with the kernels that call the BLAS directly, then with the NumPy path.

    (see pyxconv._blas; "direct" is skipped where NumPy's BLAS offers no ILP64
    CBLAS entry points)
    """
    from pyxconv import _blas

    if request.param == "direct" and not _blas.ensure_gemm():
        pytest.skip("NumPy's BLAS offers no ILP64 CBLAS GEMM")
    old = _blas.allow_direct_gemm(request.param == "direct")
    yield request.param
    _blas.allow_direct_gemm(old)
