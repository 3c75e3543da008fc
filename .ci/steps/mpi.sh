#!/usr/bin/env bash
# CI step: install the [mpi] extra's packages (mpi4py and the mpich wheel, which
# brings its own MPI library and mpiexec) into .ci/run's virtual environment,
# where pyxconv is already installed, and run the tests that start
# `mpiexec -n 2` themselves: pyxconv.distributed's collectives and failure
# handling, and the trainer's 2-rank equivalence with one process.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
python .ci/pyproject_requirements.py mpi > /tmp/pyxconv-mpi-requirements.txt
python -m pip install --quiet -r /tmp/pyxconv-mpi-requirements.txt
# the mpich wheel's mpiexec sits beside the venv's python
export PATH="$(dirname "$(python -c 'import sys; print(sys.executable)')"):$PATH"
python -c "from mpi4py import MPI; print('mpi:', MPI.Get_library_version().splitlines()[0])"
mpiexec -n 2 python -c "from mpi4py import MPI; c = MPI.COMM_WORLD; assert c.allreduce(1) == 2"
export OMP_NUM_THREADS=1
timeout 600 python -m pytest -q -p no:cacheprovider tests/test_distributed.py \
    "tests/test_train.py::test_two_ranks_end_with_the_one_process_weights" \
    "tests/test_train.py::test_a_killed_run_resumes_to_the_same_weights_bit_for_bit"
echo "mpi: passed in $(( $(date +%s) - start )) s"
