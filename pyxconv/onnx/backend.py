"""An ONNX backend (:class:`onnx.backend.base.Backend`) that runs graphs with pyxconv.

Models run as a :class:`~pyxconv.onnx.GraphModule`, node by node through
:mod:`pyxconv.functional`, on the CPU. The module-level functions are the
backend API that onnx's backend test runner expects (``prepare``, ``run``,
``run_model``, ``run_node``, ``supports_device``), so this module itself can
be handed to :class:`onnx.backend.test.BackendTest`; :func:`node_tests` does
that for the operators pyxconv covers, with every excluded case and its
reason in :func:`excluded_node_tests`.

The module imports without onnx (so its documentation builds anywhere);
running a model needs the ``[onnx]`` extra.

Examples
--------
>>> from pyxconv.onnx import backend
>>> backend.supports_device("CPU"), backend.supports_device("CUDA")
(True, False)
>>> "Conv" in backend.NODE_TEST_OPERATORS
True
"""
import re
import sys
import unittest

import numpy as np

from pyxconv.onnx import GraphModule, _onnx, _ops

try:
    from onnx.backend.base import Backend, BackendRep, namedtupledict
except ImportError:  # pragma: no cover - without the [onnx] extra: importable, not runnable
    Backend = BackendRep = object
    namedtupledict = None

__all__ = ["NODE_TEST_OPERATORS", "PyxconvBackend", "PyxconvRep", "excluded_node_tests",
           "is_compatible", "node_tests", "prepare", "run", "run_model", "run_node",
           "supports_device"]

#: The operators whose onnx node tests pyxconv runs (issue 18), each with a regular
#: expression matching the names of its test cases (``test_..._cpu`` without ``_cpu``).
NODE_TEST_OPERATORS = {
    "Conv": r"^test_(basic_)?conv_",
    "ConvTranspose": r"^test_convtranspose(_|$)",
    "MaxPool": r"^test_maxpool_",
    "AveragePool": r"^test_averagepool_",
    "GlobalAveragePool": r"^test_globalaveragepool(_|$)",
    "GlobalMaxPool": r"^test_globalmaxpool(_|$)",
    "MaxUnpool": r"^test_maxunpool_",
    "Softmax": r"^test_softmax_",
    "LogSoftmax": r"^test_logsoftmax_",
    "SoftmaxCrossEntropyLoss": r"^test_sce_",
    "NegativeLogLikelihoodLoss": r"^test_nllloss_",
    "Relu": r"^test_relu(_|$)",
    "LeakyRelu": r"^test_leakyrelu(_|$)",
    "PRelu": r"^test_prelu_",
    "Elu": r"^test_elu(_|$)",
    "Sigmoid": r"^test_sigmoid(_|$)",
    "Tanh": r"^test_tanh(_|$)",
    "Softplus": r"^test_softplus(_|$)",
    "Gemm": r"^test_gemm_",
    "MatMul": r"^test_matmul_",
    "Flatten": r"^test_flatten_",
    "Reshape": r"^test_reshape_",
    "BatchNormalization": r"^test_batchnorm_",
    "Dropout": r"^test_(training_)?dropout(_|$)",
    "Add": r"^test_add(_|$)",
    "Concat": r"^test_concat_",
}

_EXPANDED = ("the _expanded variant runs the operator's ONNX function body, whose operators "
             "(ReduceMax, Exp, Gather, Where, ...) are not among the operators listed here")

# feature -> (is it present?, what is missing when it is not)
_FEATURES = {
    "max_pool3d": (lambda: _ops.has_pool("max", 3), "pyxconv.functional.max_pool3d"),
    "avg_pool3d": (lambda: _ops.has_pool("avg", 3), "pyxconv.functional.avg_pool3d"),
    "avg_dilation": (lambda: _ops.has_avg_pool_dilation(2),
                     "dilation in average pooling (avg_pool2d(..., dilation=))"),
    "avg3d_dilation": (lambda: _ops.has_avg_pool_dilation(3),
                       "dilation in 3-D average pooling (avg_pool3d(..., dilation=))"),
    "wide_max": (lambda: _ops.has_wide_pool_padding("max"),
                 "max pooling padding wider than kernel_size // 2"),
    "wide_avg": (lambda: _ops.has_wide_pool_padding("avg"),
                 "average pooling padding wider than kernel_size // 2"),
}

# case-name pattern -> the features its cases need (issue 18 item 5)
_NEEDS = {
    r"^test_maxpool_3d_": ("max_pool3d",),
    r"^test_averagepool_3d_default$": ("avg_pool3d",),
    r"^test_averagepool_3d_dilations": ("avg_pool3d", "avg3d_dilation"),
    r"^test_averagepool_2d_dilations$": ("avg_dilation",),
    r"^test_maxpool_2d_pads$": ("wide_max",),
    r"^test_averagepool_2d_pads(_count_include_pad)?$": ("wide_avg",),
}


def excluded_node_tests():
    """The node-test cases pyxconv skips, as ``{name pattern: reason}``.

    Patterns are regular expressions over case names without the device suffix.
    Cases that need a pooling feature pyxconv.functional lacks are detected from
    the functions themselves, so they run as soon as the feature is there.

    Returns
    -------
    dict of str to str
    """
    out = {r"_expanded(_ver\d+)?$": _EXPANDED}
    for pattern, needs in _NEEDS.items():
        missing = []
        for feature in needs:
            present, what = _FEATURES[feature]
            try:
                ok = present()
            except Exception:  # a half-present feature counts as missing
                ok = False
            if not ok:
                missing.append(what)
        if missing:
            out[pattern] = "needs " + " and ".join(missing) + " (issue 18 item 5)"
    return out


def _as_list(inputs, names):
    if isinstance(inputs, np.ndarray):
        return [inputs]
    if isinstance(inputs, dict):
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"PyxconvBackend: inputs is missing {missing}; expected {names}")
        return [inputs[n] for n in names]
    return list(inputs)


class PyxconvRep(BackendRep):
    """A prepared model: a :class:`~pyxconv.onnx.GraphModule` over its graph."""

    def __init__(self, model):
        super().__init__()
        self.module = GraphModule(model.graph, _onnx())

    def run(self, inputs, **kwargs):
        """Run on ``inputs`` (an array, a list by graph input, or a dict by name).

        Returns
        -------
        tuple
            The graph outputs, also addressable by name.
        """
        names = self.module.input_names
        outs = self.module.run(*_as_list(inputs, names))
        return namedtupledict("Outputs", self.module.output_names)(*outs)


class PyxconvBackend(Backend):
    """Runs ONNX models on the CPU through pyxconv.functional."""

    @classmethod
    def _check_device(cls, device):
        if not cls.supports_device(device):
            raise ValueError(f"PyxconvBackend: device must be 'CPU', got {device!r}")

    @classmethod
    def is_compatible(cls, model, device="CPU", **kwargs):
        """Whether every node of ``model`` is an operator pyxconv runs."""
        _onnx()
        return cls.supports_device(device) and all(
            n.domain in ("", "ai.onnx") and n.op_type in _ops.OPS for n in model.graph.node)

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        """Check ``model`` (an ``onnx.ModelProto`` or a path) and build its runner.

        Raises
        ------
        pyxconv.onnx.UnsupportedOnnxError
            For an operator pyxconv cannot run, naming it.
        """
        onnx = _onnx()
        if not isinstance(model, onnx.ModelProto):
            model = onnx.load(str(model))
        cls._check_device(device)
        super().prepare(model, device, **kwargs)
        return PyxconvRep(model)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        """``prepare(model, device).run(inputs)``."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Run one ``onnx.NodeProto`` on ``inputs`` (by position, or a dict by name).

        ``inputs`` lists the node's present inputs in order (optional ones named
        ``""`` are left out, or given as None).
        """
        onnx = _onnx()
        cls._check_device(device)
        super().run_node(node, inputs, device, outputs_info, **kwargs)
        present = [n for n in node.input if n]
        if isinstance(inputs, dict):
            values = _as_list(inputs, present)
        else:
            values = list(inputs)
            if len(values) == len(node.input):
                values = [v for n, v in zip(node.input, values) if n]
            if len(values) != len(present):
                raise ValueError(f"PyxconvBackend.run_node: node {node.op_type} has "
                                 f"{len(present)} inputs {present}, got {len(values)} values")
        infos = [onnx.helper.make_tensor_value_info(
            n, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), None)
            for n, v in zip(present, values)]
        outputs = [o for o in node.output if o]
        graph = onnx.helper.make_graph(
            [node], "run_node", infos,
            [onnx.helper.make_empty_tensor_value_info(o) for o in outputs])
        outs = GraphModule(graph, onnx).run(*values)
        return namedtupledict("Outputs", outputs)(*outs)

    @classmethod
    def supports_device(cls, device):
        """True for ``"CPU"`` (and ``"CPU:n"``), the only device pyxconv runs on."""
        return str(device).upper().split(":")[0] == "CPU"


prepare = PyxconvBackend.prepare
run_model = PyxconvBackend.run_model
run = PyxconvBackend.run_model
run_node = PyxconvBackend.run_node
supports_device = PyxconvBackend.supports_device
is_compatible = PyxconvBackend.is_compatible


def node_tests(parent_module=None):
    """onnx's node tests of :data:`NODE_TEST_OPERATORS`, run on this backend.

    Builds :class:`onnx.backend.test.BackendTest` over the test cases onnx
    generates (``onnx.backend.test.case.node``) and keeps the CPU cases of the
    listed operators; those matching :func:`excluded_node_tests` are skipped
    with their reason.

    Parameters
    ----------
    parent_module : str, optional
        The ``__name__`` of the test module that receives the classes.

    Returns
    -------
    dict of str to type
        ``{"OnnxBackendNodeModelTest": unittest.TestCase subclass}``, for
        ``globals().update(node_tests(__name__))`` in a test module.
    """
    _onnx()
    import onnx.backend.test

    runner = onnx.backend.test.BackendTest(sys.modules[__name__], parent_module)
    full = runner.test_cases["OnnxBackendNodeModelTest"]
    include = [re.compile(p) for p in NODE_TEST_OPERATORS.values()]
    exclude = {re.compile(p): r for p, r in excluded_node_tests().items()}
    body = {}
    for attr in sorted(vars(full)):
        if not (attr.startswith("test_") and attr.endswith("_cpu")):
            continue
        case = attr[:-len("_cpu")]
        if not any(p.search(case) for p in include):
            continue
        func = getattr(full, attr)
        reasons = [r for p, r in exclude.items() if p.search(case)]
        body[attr] = unittest.skip(reasons[0])(func) if reasons else func
    cls = type("OnnxBackendNodeModelTest", (unittest.TestCase,), body)
    if parent_module:
        cls.__module__ = parent_module
    return {"OnnxBackendNodeModelTest": cls}
