"""Child process of the functional-API fuzz in test_faults.py.

Reads one JSON case a line from stdin, runs it, writes one JSON result a line:
``{"outcome": "ok" | "error", "type": ..., "message": ..., "unchanged": bool,
"deterministic": bool}``. A crash of this process fails the case being run;
the parent restarts it for the next case.
"""
import json
import sys

import numpy as np

import pyxconv
import pyxconv.functional as F

CONVS = {1: (F.conv1d, F.conv1d_backward), 2: (F.conv2d, F.conv2d_backward),
         3: (F.conv3d, F.conv3d_backward)}
TRANSPOSED = {1: (F.conv_transpose1d, F.conv_transpose1d_backward),
              2: (F.conv_transpose2d, F.conv_transpose2d_backward),
              3: (F.conv_transpose3d, F.conv_transpose3d_backward)}


def arrays(case):
    rng = np.random.default_rng(case["seed"])
    dtype = np.dtype(case["dtype"])
    out = []
    for shape in case["shapes"]:
        a = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else \
            rng.integers(-3, 4, shape).astype(dtype)
        if case.get("noncontiguous") and a.ndim >= 2:
            a = np.swapaxes(np.swapaxes(a, -1, -2).copy(), -1, -2)
        a.setflags(write=False)
        out.append(a)
    return out


def run(case, ins):
    op, p = case["op"], case["params"]
    if op == "conv":
        fwd, bwd = CONVS[case["nd"]]
        out = fwd(ins[0], ins[1], **p)
        return [out] + list(bwd(np.ones_like(out), ins[0], ins[1], **p)[:2])
    if op == "conv_transpose":
        fwd, bwd = TRANSPOSED[case["nd"]]
        out = fwd(ins[0], ins[1], **p)
        return [out] + list(bwd(np.ones_like(out), ins[0], ins[1], **p)[:2])
    if op == "max_pool":
        f = F.max_pool1d if case["nd"] == 1 else F.max_pool2d
        b = F.max_pool1d_backward if case["nd"] == 1 else F.max_pool2d_backward
        out, idx = f(ins[0], return_indices=True, **p)
        return [out, idx, b(np.ones_like(out), idx, ins[0].shape)]
    if op == "avg_pool":
        f = F.avg_pool1d if case["nd"] == 1 else F.avg_pool2d
        b = F.avg_pool1d_backward if case["nd"] == 1 else F.avg_pool2d_backward
        out = f(ins[0], **p)
        return [out, b(np.ones_like(out), ins[0].shape, **p)]
    if op == "softmax":
        return [F.softmax(ins[0], **p), F.log_softmax(ins[0], **p)]
    if op == "cross_entropy":
        z = ins[0]
        n_classes = z.shape[1] if z.ndim > 1 else 1
        target = np.random.default_rng(case["seed"]).integers(
            case.get("target_low", 0), n_classes + case.get("target_extra", 0), z.shape[:1] + z.shape[2:])
        loss, grad = F.softmax_cross_entropy(z, target, **p)
        return [np.asarray(loss), grad]
    raise ValueError(f"unknown op {op}")


def main():
    for line in sys.stdin:
        case = json.loads(line)
        ins, before = [], []
        try:
            ins = arrays(case)
            before = [a.copy() for a in ins]
            with pyxconv.num_threads(1):
                one = run(case, ins)
            with pyxconv.num_threads(2):
                two = run(case, ins)
            deterministic = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(one, two))
            result = {"outcome": "ok", "deterministic": deterministic}
        except (ValueError, TypeError, MemoryError) as e:
            result = {"outcome": "error", "type": type(e).__name__, "message": str(e)[:300]}
        except Exception as e:  # any other exception type is a defect
            result = {"outcome": "bad", "type": type(e).__name__, "message": str(e)[:300]}
        result["unchanged"] = all(np.array_equal(a, b, equal_nan=True)
                                  for a, b in zip(before, ins))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
