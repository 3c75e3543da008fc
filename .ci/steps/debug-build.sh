#!/usr/bin/env bash
# CI step: build the kernels once with Cython's bounds and wraparound checks on
# (PYXCONV_DEBUG_CYTHON=1, -O0 -g) in a copy of the tracked tree, and run the
# kernel tests against that build. An index error that the release build's
# unchecked loops would turn into an out-of-bounds access raises here instead.
# Runs inside .ci/run's virtual environment, after the test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
copy=$(mktemp -d)/pyxconv-debug
mkdir -p "$copy"
git ls-files -z | xargs -0 cp --parents -t "$copy"
cd "$copy"
# pip builds pyxconv in an isolated environment, so this venv lacks the build
# requirements; install the ones pyproject.toml names.
python .ci/pyproject_requirements.py build > build-requirements.txt
python -m pip install --quiet -r build-requirements.txt
PYXCONV_DEBUG_CYTHON=1 python setup.py -q build_ext --inplace >build.log 2>&1 || {
    cat build.log; exit 1; }
# `python -m pytest` puts this copy first on sys.path, ahead of the editable install.
python - <<'PY'
import pyxconv, os
from pyxconv._kernels import _openmp_helpers
assert os.path.realpath(pyxconv.__file__).startswith(os.path.realpath(os.getcwd())), pyxconv.__file__
assert _openmp_helpers.boundscheck_enabled(), "the debug build did not turn bounds checking on"
print("debug-build: imported", pyxconv.__file__, "with bounds checking on")
PY
# (test_nn: the layers call kernels themselves; test_direct_gemm: the per-sample loops)
kernel_tests=$(ls tests/test_conv.py tests/test_conv_transpose.py tests/test_pool.py \
    tests/test_loss.py tests/test_bad_input.py tests/test_build.py tests/test_nn.py \
    tests/test_direct_gemm.py tests/test_winograd.py 2>/dev/null)
python -m pytest -q -p no:cacheprovider $kernel_tests
echo "debug-build: passed in $(( $(date +%s) - start )) s"
