#!/usr/bin/env bash
# Build the kernels with AddressSanitizer in a copy of the tracked tree and run
# the kernel tests under it. Not part of CI (it takes a few minutes); run it by
# hand after changing a kernel:  bash .ci/asan.sh
# Needs gcc's libasan (Debian: libasan8, installed with gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
copy=$(mktemp -d)/pyxconv-asan
mkdir -p "$copy"
git ls-files -z | xargs -0 cp --parents -t "$copy"
cd "$copy"
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
    PYXCONV_DEBUG_CYTHON=0 "$python" setup.py -q build_ext --inplace >build.log 2>&1 || {
    cat build.log; exit 1; }
libasan=$(gcc -print-file-name=libasan.so)
# PyTorch's C++ exceptions abort under a preloaded ASan runtime, so hide it: its
# parity tests skip (they run in the normal suite).
mkdir -p no-torch/torch
echo 'raise ModuleNotFoundError("torch is hidden during the ASan run")' > no-torch/torch/__init__.py
export PYTHONPATH="$PWD/no-torch${PYTHONPATH:+:$PYTHONPATH}"
# Python itself is not built with ASan: leaks of the interpreter are not ours.
# (test_nn: the layers call kernels themselves; test_direct_gemm: the per-sample loops)
kernel_tests=$(ls tests/test_conv.py tests/test_conv_transpose.py tests/test_pool.py \
    tests/test_loss.py tests/test_bad_input.py tests/test_nn.py tests/test_direct_gemm.py \
    2>/dev/null)
LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    "$python" -m pytest -q -p no:cacheprovider $kernel_tests "$@"
echo "asan: no memory errors reported"
