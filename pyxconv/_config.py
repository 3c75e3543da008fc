"""Build and run-time configuration report."""
import os
import platform
import sys

import numpy as np

from pyxconv._blas import available_isas, float32_gemm, gemm_library, get_isa
from pyxconv._version import __version__
from pyxconv._kernels import _openmp_helpers
from pyxconv._threads import get_num_threads
from pyxconv._workspace import get_workspace_limit


def config_info():
    """The facts :func:`show_config` prints, as a dict."""
    info = {
        "pyxconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "openmp": _openmp_helpers.openmp_enabled(),
        "boundscheck (debug build)": _openmp_helpers.boundscheck_enabled(),
        "threads": get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "(unset)"),
        "workspace limit (bytes)": get_workspace_limit(),
        "BLAS of the kernels (scipy.linalg.cython_blas)": gemm_library(),
        "float32 GEMM (convolutions)": float32_gemm(),
        "kernels' instruction set (PYXCONV_ISA)": (f"{get_isa()} (available: "
                                                   f"{', '.join(available_isas())})"),
    }
    pools = []
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            pools.append(
                f"{pool.get('user_api')}: {pool.get('internal_api')} "
                f"{pool.get('version') or ''} ({pool.get('num_threads')} threads, "
                f"{pool.get('filepath')})"
            )
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pools.append("threadpoolctl not installed")
    info["thread pools"] = pools
    return info


def show_config():
    """Print pyxconv's version, how it was built and the thread pools in use.

    Shows whether the kernels were compiled with OpenMP, how many threads they
    will use, the NumPy version and which BLAS NumPy calls for the matrix
    products.

    Examples
    --------
    >>> import pyxconv
    >>> pyxconv.show_config()  # doctest: +ELLIPSIS
    pyxconv: ...
    openmp: ...
    threads: ...
    """
    for key, value in config_info().items():
        if isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print(f"    {item}")
        else:
            print(f"{key}: {value}")
