#!/usr/bin/env bash
# CI step: build the documentation with warnings as errors, run its doctests,
# and check the built site in headless Chromium (links, images, rendered math).
# Runs inside .ci/run's virtual environment, after the test suite, from the
# repository root; pyxconv is already installed there.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

# The docs extra of pyproject.toml, installed without rebuilding pyxconv.
python .ci/pyproject_requirements.py docs > /tmp/pyxconv-docs-requirements.txt
python -m pip install --quiet -r /tmp/pyxconv-docs-requirements.txt

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "docs: installing Debian's chromium for the site check"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        chromium fonts-dejavu-core >/dev/null) || echo "docs: could not install chromium"
fi

rm -rf docs/_build docs/generated docs/auto_tutorials
export MPLBACKEND=Agg
echo "docs: sphinx-build -W -b html"
python -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "docs: sphinx-build -W -b doctest"
python -m sphinx -W --keep-going -q -b doctest -D plot_gallery=0 docs docs/_build/doctest
tail -n 5 docs/_build/doctest/output.txt

browser=--no-browser
if command -v chromium >/dev/null 2>&1; then browser=--require-browser; fi
python docs/check_site.py docs/_build/html --screenshots docs/_build/screenshots $browser
echo "docs: passed in $(( $(date +%s) - start )) s"
