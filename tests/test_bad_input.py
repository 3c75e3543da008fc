"""Every malformed call raises a clear error, changes nothing and never crashes.

The calls in bad_input_table.py run in one child process: a segmentation fault
or abort there fails the case that caused it (and the ones after it) instead of
killing the test run.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bad_input_table import CASES

RUNNER = Path(__file__).parent / "_bad_input_runner.py"


@pytest.fixture(scope="module")
def outcomes():
    proc = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True,
                          timeout=600)
    results, started = {}, None
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        if "start" in record:
            started = record["start"]
        else:
            results[record["id"]] = record
    return results, started, proc


@pytest.mark.parametrize("case_id, error, message",
                         [(c[0], c[2], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clearly_and_changes_nothing(outcomes, case_id, error, message):
    results, last_started, proc = outcomes
    if case_id not in results:
        pytest.fail(f"the child process died (exit code {proc.returncode}) during case "
                    f"{last_started!r}; stderr:\n{proc.stderr[-2000:]}")
    result = results[case_id]
    allowed = error if isinstance(error, tuple) else (error,)
    assert any(e.__name__ in result["kinds"] for e in allowed), (
        f"expected {allowed} matching {message!r}, got {result['raised']}: "
        f"{result['message']}")
    assert re.search(message, result["message"]), result["message"]
    assert result["inputs_unchanged"], "the call modified its (read-only) inputs"


def test_the_table_covers_every_public_function():
    import pyxconv.functional as F
    covered = {cid.split("-")[0].replace("_", "") for cid, *_ in CASES}
    missing = [name for name in F.__all__
               if name.replace("_", "").split("backward")[0] not in covered
               and name.replace("_", "") not in covered]
    assert not missing, f"no bad-input case for: {missing}"
