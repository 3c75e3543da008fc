"""Child process of test_bad_input.py: run every case, print one JSON line each.

A line ``{"start": id}`` goes out before each call, so that if the call kills
the interpreter the parent knows which case did it.
"""
import json
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bad_input_table import CASES, make_namespace  # noqa: E402


def checksum(arrays):
    return {name: zlib.crc32(a.tobytes()) for name, a in arrays.items()}


def main():
    ns, arrays = make_namespace()
    before = checksum(arrays)
    for case_id, call, _, _ in CASES:
        print(json.dumps({"start": case_id}), flush=True)
        try:
            call(ns)
            outcome = {"raised": None, "message": "", "kinds": []}
        except BaseException as exc:  # noqa: BLE001 - the parent judges the type
            outcome = {"raised": type(exc).__name__, "message": str(exc),
                       "kinds": [kind.__name__ for kind in type(exc).__mro__]}
        outcome["id"] = case_id
        outcome["inputs_unchanged"] = checksum(arrays) == before
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
