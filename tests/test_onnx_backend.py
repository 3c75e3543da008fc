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
