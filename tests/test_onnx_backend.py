"""The onnx package's own node tests for issue 18's operators, run on pyxconv.onnx.backend.

The cases come from ``onnx.backend.test.case.node`` through onnx's
``BackendTest`` runner (:func:`pyxconv.onnx.backend.node_tests`). Every skipped
case matches :func:`pyxconv.onnx.backend.excluded_node_tests`, which gives the
reason (the same list docs/onnx.rst shows).
"""
import re
import unittest
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

from pyxconv.onnx import UnsupportedOnnxError, backend  # noqa: E402

with warnings.catch_warnings():  # onnx's case generators warn about their own casts
    warnings.simplefilter("ignore")
    globals().update(backend.node_tests(__name__))
    from onnx.backend.test.loader import load_node_model_tests  # noqa: E402

    _CASES = load_node_model_tests()


def _single_op(case):
    nodes = case.model.graph.node
    return nodes[0].op_type if len(nodes) == 1 else None


def test_the_include_patterns_catch_every_case_of_the_listed_operators_and_no_other():
    ours = {c.name for c in _CASES if _single_op(c) in backend.NODE_TEST_OPERATORS}
    pats = [re.compile(p) for p in backend.NODE_TEST_OPERATORS.values()]
    matched = {c.name for c in _CASES if any(p.search(c.name) for p in pats)}
    expanded = re.compile(r"_expanded(_ver\d+)?$")
    assert ours - matched == set()
    # beyond the operators' own cases, only their _expanded function-body variants match
    assert all(expanded.search(n) for n in matched - ours), sorted(matched - ours)
    # every operator has cases, and the collected class holds exactly these (CPU only)
    for op in backend.NODE_TEST_OPERATORS:
        assert any(_single_op(c) == op for c in _CASES), op
    collected = {n[:-len("_cpu")] for n in vars(OnnxBackendNodeModelTest)  # noqa: F821
                 if n.startswith("test_")}
    assert collected == matched


def test_every_exclusion_has_a_reason_and_matches_a_case():
    excluded = backend.excluded_node_tests()
    names = [c.name for c in _CASES]
    for pattern, reason in excluded.items():
        assert isinstance(reason, str) and len(reason) > 20
        assert any(re.search(pattern, n) for n in names), pattern
    # the only exclusions of an operator's own cases are the pooling features of item 5
    own = [c.name for c in _CASES if _single_op(c) in backend.NODE_TEST_OPERATORS]
    skipped = [n for n in own if any(re.search(p, n) for p in excluded)]
    assert all(n.startswith(("test_maxpool_", "test_averagepool_")) for n in skipped), skipped


def test_exclusions_follow_the_functional_features(monkeypatch):
    import pyxconv.functional as F
    from pyxconv.onnx import _ops

    def fake_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                    count_include_pad=True, dilation=1):
        return x

    monkeypatch.setattr(F, "max_pool3d", fake_pool3d, raising=False)
    monkeypatch.setattr(F, "avg_pool3d", fake_pool3d, raising=False)
    monkeypatch.setattr(_ops, "has_wide_pool_padding", lambda kind: True)
    monkeypatch.setattr(_ops, "has_avg_pool_dilation", lambda nd=2: True)
    assert list(backend.excluded_node_tests()) == [r"_expanded(_ver\d+)?$"]
    monkeypatch.delattr(F, "avg_pool3d")
    reasons = backend.excluded_node_tests()
    assert "avg_pool3d" in reasons[r"^test_averagepool_3d_default$"]
    assert r"^test_maxpool_3d_" not in reasons


def test_every_operator_is_described_for_the_documentation():
    from pyxconv.onnx import _ops

    assert set(_ops.DESCRIPTIONS) == set(_ops.OPS)
    assert set(backend.NODE_TEST_OPERATORS) <= set(_ops.OPS)


def _relu_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_prepare_run_and_run_model_take_lists_dicts_and_arrays():
    model = _relu_model()
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    expected = np.maximum(x, 0)
    rep = backend.prepare(model, "CPU")
    for inputs in (x, [x], {"x": x}):
        out = rep.run(inputs)
        np.testing.assert_array_equal(out[0], expected)
        np.testing.assert_array_equal(out["y"], expected)
    np.testing.assert_array_equal(backend.run_model(model, [x])[0], expected)
    np.testing.assert_array_equal(backend.run(model, [x])[0], expected)
    assert backend.is_compatible(model)
    with pytest.raises(ValueError, match=r"missing \['x'\]"):
        rep.run({"z": x})


def test_run_node_with_optional_inputs_and_several_outputs():
    node = helper.make_node("Dropout", ["x", "", ""], ["y", "mask"])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y, mask = backend.run_node(node, [x])
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == bool and mask.all()
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=2.0)
    a, b, c = (np.random.default_rng(i).standard_normal(s).astype(np.float32)
               for i, s in enumerate([(2, 3), (4, 3), (4,)]))
    np.testing.assert_allclose(backend.run_node(node, [a, b, c])[0], 2 * a @ b.T + c,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="has 3 inputs"):
        backend.run_node(node, [a, b])


def test_devices_and_unsupported_operators():
    assert backend.supports_device("CPU") and backend.supports_device("cpu:0")
    assert not backend.supports_device("CUDA")
    with pytest.raises(ValueError, match="device must be 'CPU', got 'CUDA'"):
        backend.prepare(_relu_model(), "CUDA")
    node = helper.make_node("Cos", ["x"], ["y"])
    with pytest.raises(UnsupportedOnnxError, match="operator Cos is not supported"):
        backend.run_node(node, [np.zeros(2, np.float32)])
    model = _relu_model()
    model.graph.node[0].op_type = "Cos"
    assert not backend.is_compatible(model)


if __name__ == "__main__":
    unittest.main()


def _loop_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               count_include_pad=True, return_indices=False, kind="max"):
    """Plain-loop N-d pooling with PyTorch's output sizes: windows of ``dilation``-spaced
    taps; padding may be wider than half the window. Average divisors: taps inside the
    padded input (``count_include_pad``) or inside the input."""
    nd = x.ndim - 2
    k, s, p, d = (tuple(v) if np.ndim(v) else (v,) * nd
                  for v in (kernel_size, stride or kernel_size, padding, dilation))
    size = x.shape[2:]
    out = []
    for L, kk, ss, pp, dd in zip(size, k, s, p, d):
        span = L + 2 * pp - dd * (kk - 1) - 1
        o = (-(-span // ss) if ceil_mode else span // ss) + 1
        if ceil_mode and (o - 1) * ss >= L + pp:
            o -= 1
        out.append(o)
    y = np.zeros(x.shape[:2] + tuple(out), x.dtype)
    idx = np.zeros(y.shape, np.int64)
    for n, c in np.ndindex(x.shape[:2]):
        for o in np.ndindex(*out):
            taps = [[o[i] * s[i] - p[i] + j * d[i] for j in range(k[i])] for i in range(nd)]
            real = [pos for pos in np.ndindex(*k)
                    if all(0 <= taps[i][pos[i]] < size[i] for i in range(nd))]
            points = [tuple(taps[i][pos[i]] for i in range(nd)) for pos in real]
            vals = [x[(n, c) + q] for q in points]
            if kind == "max":
                best = int(np.argmax(vals))
                y[(n, c) + o] = vals[best]
                idx[(n, c) + o] = np.ravel_multi_index(points[best], size)
            else:
                inside = sum(all(-p[i] <= taps[i][pos[i]] < size[i] + p[i] for i in range(nd))
                             for pos in np.ndindex(*k))
                y[(n, c) + o] = np.sum(vals, dtype=np.float64) / (
                    inside if count_include_pad else len(vals))
    return (y, idx) if return_indices else y


def test_the_excluded_pooling_cases_pass_once_functional_has_the_features(monkeypatch):
    """With loop versions of the pooling branch's features (3-D pooling, average-pool
    dilation, padding wider than half the window) in pyxconv.functional, every excluded
    pooling case runs and passes: _ops calls them as the branch will provide them."""
    import pyxconv.functional as F
    from onnx.backend.test.runner import Runner

    from pyxconv.onnx import _ops

    def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
        return _loop_pool(x, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices=return_indices)

    def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, dilation=1):
        return _loop_pool(x, kernel_size, stride, padding, dilation, ceil_mode,
                          count_include_pad, kind="avg")

    for nd in (1, 2, 3):
        monkeypatch.setattr(F, f"max_pool{nd}d", max_pool, raising=False)
        monkeypatch.setattr(F, f"avg_pool{nd}d", avg_pool, raising=False)
    _ops.has_wide_pool_padding.cache_clear()
    try:
        excluded = backend.excluded_node_tests()
        assert list(excluded) == [r"_expanded(_ver\d+)?$"]
        previously = [p for p in backend._NEEDS]
        cases = [c for c in _CASES if _single_op(c) in ("MaxPool", "AveragePool")
                 and any(re.search(p, c.name) for p in previously)]
        assert len(cases) == 14
        for case in cases:
            rep = backend.prepare(case.model)
            for inputs, outputs in case.data_sets:
                Runner.assert_similar_outputs(list(outputs), list(rep.run(list(inputs))),
                                              rtol=case.rtol, atol=case.atol)
    finally:
        _ops.has_wide_pool_padding.cache_clear()
