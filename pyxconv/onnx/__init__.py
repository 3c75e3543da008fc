"""ONNX export and import for pyxconv models (needs the ``[onnx]`` extra).

``export(model, example_input, path)`` writes an ONNX file with a dynamic
batch axis; ``load(path)`` reads one (from :func:`export` or
``torch.onnx.export``) back as a pyxconv :class:`~pyxconv.nn.Module`.
"""
import re

import numpy as np

from pyxconv import nn, no_grad
from pyxconv.onnx._ops import OPS, UnsupportedOnnxError

__all__ = ["GraphModule", "UnsupportedOnnxError", "export", "load"]


def _onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("pyxconv.onnx needs the onnx package: pip install 'pyxconv[onnx]'") from exc
    return onnx


class _Writer:
    def __init__(self, onnx):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, hint, array):
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _pads(pairs):
    return [p[0] for p in pairs] + [p[1] for p in pairs]


def _weight_and_bias(w, m, name, p):
    """A parametrised layer's node inputs: its input, its weight and, if it has one, its bias."""
    ins = [name, w.const(p + "weight", m.weight.data)]
    if m.bias is not None:
        ins.append(w.const(p + "bias", m.bias.data))
    return ins


def _emit(w, m, x, name, prefix):
    """Add ``m``'s nodes reading ``name``; return (output name, output array)."""
    y = m.forward(x)
    p = prefix or type(m).__name__
    if isinstance(m, nn.Sequential):
        for i, layer in enumerate(m.layers):
            name, x = _emit(w, layer, x, name, f"{prefix}{i}.")
        return name, x
    if isinstance(m, nn.Residual):
        a, _ = _emit(w, m.body, x, name, prefix + "body.")
        b = name if m.shortcut is None else _emit(w, m.shortcut, x, name, prefix + "shortcut.")[0]
        return w.node("Add", [a, b], p + "add"), y
    if isinstance(m, nn.Concat):
        outs = [_emit(w, br, x, name, f"{prefix}{i}.")[0] for i, br in enumerate(m.branches)]
        return w.node("Concat", outs, p + "concat", axis=int(m.dim)), y
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        ins = _weight_and_bias(w, m, name, p)
        return w.node("Conv", ins, p + "conv", kernel_shape=list(m.kernel_size),
                      strides=list(m.stride), dilations=list(m.dilation), group=m.groups,
                      pads=_pads(m._pads)), y
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        ins = _weight_and_bias(w, m, name, p)
        return w.node("ConvTranspose", ins, p + "convT", kernel_shape=list(m.kernel_size),
                      strides=list(m.stride), dilations=list(m.dilation), group=m.groups,
                      pads=list(m.padding) * 2, output_padding=list(m.output_padding)), y
    if isinstance(m, nn.Linear):
        ins = _weight_and_bias(w, m, name, p)
        return w.node("Gemm", ins, p + "gemm", transB=1), y
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        c = m.num_features
        dt = m.running_mean.dtype
        sc = m.weight.data if m.affine else np.ones(c, dt)
        b = m.bias.data if m.affine else np.zeros(c, dt)
        ins = [name, w.const(p + "scale", sc), w.const(p + "B", b),
               w.const(p + "mean", m.running_mean), w.const(p + "var", m.running_var)]
        return w.node("BatchNormalization", ins, p + "bn", epsilon=m.eps), y
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) or type(m).__name__ == "MaxPool3d":
        return w.node("MaxPool", [name], p + "maxpool", kernel_shape=list(m.kernel_size),
                      strides=list(m.stride), pads=list(m.padding) * 2,
                      dilations=list(m.dilation), ceil_mode=int(m.ceil_mode)), y
    if type(m).__name__ in ("AvgPool1d", "AvgPool2d", "AvgPool3d"):
        if getattr(m, "divisor_override", None):
            raise UnsupportedOnnxError(f"export: {prefix or 'model'} AvgPool divisor_override "
                                       "has no ONNX equivalent")
        return w.node("AveragePool", [name], p + "avgpool", kernel_shape=list(m.kernel_size),
                      strides=list(m.stride), pads=list(m.padding) * 2,
                      ceil_mode=int(m.ceil_mode),
                      count_include_pad=int(m.count_include_pad)), y
    if type(m).__name__.startswith("GlobalAvgPool"):
        return w.node("GlobalAveragePool", [name], p + "gap"), y
    if type(m).__name__.startswith("GlobalMaxPool"):
        return w.node("GlobalMaxPool", [name], p + "gmp"), y
    if isinstance(m, nn.Flatten):
        end = m.end_dim % x.ndim
        start = m.start_dim % x.ndim
        if start == 1 and end == x.ndim - 1:
            return w.node("Flatten", [name], p + "flatten", axis=1), y
        shape = [0] * start + [-1] + list(x.shape[end + 1:])
        return w.node("Reshape", [name, w.const(p + "shape", np.array(shape, np.int64))],
                      p + "reshape"), y
    if isinstance(m, nn.Dropout):
        return w.node("Identity", [name], p + "dropout"), y
    simple = {nn.ReLU: ("Relu", {}), nn.Sigmoid: ("Sigmoid", {}), nn.Tanh: ("Tanh", {})}
    if type(m) in simple:
        op, at = simple[type(m)]
        return w.node(op, [name], p + op.lower(), **at), y
    if isinstance(m, nn.LeakyReLU):
        return w.node("LeakyRelu", [name], p + "leakyrelu", alpha=m.negative_slope), y
    if isinstance(m, nn.ELU):
        return w.node("Elu", [name], p + "elu", alpha=m.alpha), y
    if isinstance(m, nn.Softplus):
        if m.beta != 1.0:
            raise UnsupportedOnnxError(f"export: {prefix or 'model'} Softplus beta={m.beta} "
                                       "has no ONNX Softplus equivalent (beta must be 1)")
        return w.node("Softplus", [name], p + "softplus"), y
    if isinstance(m, nn.PReLU):
        slope = m.weight.data
        if slope.size > 1:
            slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
        return w.node("PRelu", [name, w.const(p + "slope", slope)], p + "prelu"), y
    raise UnsupportedOnnxError(f"export: layer {prefix or 'model'} of type {type(m).__name__} "
                               "has no ONNX mapping")


def export(model, example_input, path, opset=17):
    """Write ``model`` (in eval form) to an ONNX file with a dynamic batch axis.

    Parameters
    ----------
    model : pyxconv.nn.Module
        Any nn layer or container; BatchNorm is written with its running statistics.
    example_input : numpy.ndarray
        An input of the model's shape (any batch size); fixes the other dimensions.
    path : str or path-like
        Where to write the ``.onnx`` file.
    opset : int, default 17
        The ONNX opset (13 or newer).

    Returns
    -------
    onnx.ModelProto
        The checked model that was written.
    """
    onnx = _onnx()
    if not isinstance(model, nn.Module):
        raise TypeError(f"export: model must be a pyxconv.nn.Module, got {type(model).__name__}")
    x = np.asarray(example_input)
    if x.dtype not in (np.float32, np.float64) or x.ndim < 2:
        raise ValueError(f"export: example_input must be a float array with a batch axis, "
                         f"got dtype {x.dtype} and shape {x.shape}")
    if int(opset) < 13:
        raise ValueError(f"export: opset must be >= 13, got {opset}")
    was_training = model.training
    model.eval()
    try:
        w = _Writer(onnx)
        with no_grad():
            out, y = _emit(w, model, x, "input", "")
    finally:
        model.train(was_training) if was_training else None
    w.nodes.append(onnx.helper.make_node("Identity", [out], ["output"], name="output"))
    et = onnx.helper.np_dtype_to_tensor_dtype(x.dtype)
    inp = onnx.helper.make_tensor_value_info("input", et, ["N", *x.shape[1:]])
    outp = onnx.helper.make_tensor_value_info("output", et, ["N", *y.shape[1:]])
    graph = onnx.helper.make_graph(w.nodes, "pyxconv", [inp], [outp], w.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", int(opset))],
                                   producer_name="pyxconv")
    proto.ir_version = 8 if int(opset) <= 17 else min(10, onnx.IR_VERSION)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return proto


def _attrs(onnx, node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class GraphModule(nn.Module):
    """An ONNX graph run node by node (topological order) through pyxconv.functional.

    The graph's float initializers are :class:`~pyxconv.nn.Parameter` objects
    (names made Python-safe); integer ones are buffers. Forward only:
    ``backward`` raises NotImplementedError.
    """

    def __init__(self, graph, onnx=None):
        super().__init__()
        onnx = onnx or _onnx()
        self._onnx = onnx
        self._keys = {}
        for t in graph.initializer:
            arr = onnx.numpy_helper.to_array(t)
            key = re.sub(r"\W", "_", t.name) or "_"
            while key in self._keys.values() or hasattr(self, key):
                key += "_"
            self._keys[t.name] = key
            if arr.dtype.kind == "f":
                self._param(key, np.array(arr))
            else:
                self._buffer(key, np.array(arr))
        known = set(self._keys)
        self.input_names = [i.name for i in graph.input if i.name not in known]
        self.output_names = [o.name for o in graph.output]
        self.nodes = [(n, _attrs(onnx, n)) for n in graph.node]
        for n, _ in self.nodes:
            if n.op_type not in OPS or n.domain not in ("", "ai.onnx"):
                raise UnsupportedOnnxError(
                    f"ONNX node {n.name!r}: operator {n.domain + '.' if n.domain else ''}"
                    f"{n.op_type} is not supported; supported: {', '.join(sorted(OPS))}")

    def _value(self, name):
        key = self._keys[name]
        v = self._params.get(key)
        return v.data if v is not None else self._buffers[key]

    def run(self, *inputs):
        """Run the graph; returns the list of graph outputs."""
        env = {"": None}
        for name in self._keys:
            env[name] = self._value(name)
        if len(inputs) != len(self.input_names):
            raise ValueError(f"GraphModule: expected {len(self.input_names)} inputs "
                             f"{self.input_names}, got {len(inputs)}")
        env.update(zip(self.input_names, inputs))
        for node, attrs in self.nodes:
            if node.op_type == "Constant":
                if "value" not in attrs:
                    raise UnsupportedOnnxError(f"ONNX node {node.name!r} (op_type Constant): "
                                               f"attributes {sorted(attrs)} not supported")
                outs = [self._onnx.numpy_helper.to_array(attrs["value"])]
            else:
                outs = OPS[node.op_type]([env[i] for i in node.input], attrs, node)
            env.update(zip(node.output, outs))
        return [env[o] for o in self.output_names]

    def forward(self, x, *more):
        outs = self.run(x, *more)
        return outs[0] if len(outs) == 1 else outs

    def backward(self, grad_out):
        raise NotImplementedError("GraphModule is forward-only; load a chain model to get "
                                  "a trainable nn.Sequential")


def _chain_layer(onnx, node, attrs, get, rank=None):
    """A pyxconv layer for one node of a chain (input of ``rank`` dims if known), or None."""
    op = node.op_type
    if op == "Relu":
        return nn.ReLU()
    if op == "Sigmoid":
        return nn.Sigmoid()
    if op == "Tanh":
        return nn.Tanh()
    if op == "LeakyRelu":
        return nn.LeakyReLU(attrs.get("alpha", 0.01))
    if op == "Elu":
        return nn.ELU(attrs.get("alpha", 1.0))
    if op in ("Identity", "Dropout") and len([o for o in node.output if o]) == 1:
        return nn.Dropout(0.0) if op == "Dropout" else None
    if op == "Flatten" and attrs.get("axis", 1) == 1:
        return nn.Flatten()
    if op == "Gemm" and attrs.get("transB", 0) == 1 and not attrs.get("transA", 0) \
            and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0:
        wt = get(node.input[1])
        if wt is None:
            return None
        b = get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        layer = nn.Linear(wt.shape[1], wt.shape[0], bias=b is not None, dtype=wt.dtype)
        layer.weight.data[...] = wt
        if b is not None:
            layer.bias.data[...] = b
        return layer
    if op == "Conv" and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"):
        wt = get(node.input[1])
        if wt is None or wt.ndim not in (3, 4, 5):
            return None
        nd = wt.ndim - 2
        b = get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        pads = list(attrs.get("pads", [0] * 2 * nd))
        g = int(attrs.get("group", 1))
        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1]
        layer = cls(wt.shape[1] * g, wt.shape[0], tuple(wt.shape[2:]),
                    stride=tuple(attrs.get("strides", [1] * nd)),
                    padding=tuple((pads[i], pads[i + nd]) for i in range(nd)),
                    dilation=tuple(attrs.get("dilations", [1] * nd)), groups=g,
                    bias=b is not None, dtype=wt.dtype)
        layer.weight.data[...] = wt
        if b is not None:
            layer.bias.data[...] = b
        return layer
    if op == "BatchNormalization" and not attrs.get("training_mode", 0):
        vals = [get(n) for n in node.input[1:5]]
        if any(v is None for v in vals) or len(node.output) > 1:
            return None
        cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}.get(rank)
        if cls is None:
            return None
        layer = cls(vals[0].shape[0], eps=attrs.get("epsilon", 1e-5), dtype=vals[0].dtype)
        layer.weight.data[...], layer.bias.data[...] = vals[0], vals[1]
        layer.running_mean[...], layer.running_var[...] = vals[2], vals[3]
        return layer
    if op == "MaxPool" and len([o for o in node.output if o]) == 1 \
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"):
        k = list(attrs["kernel_shape"])
        nd = len(k)
        pads = list(attrs.get("pads", [0] * 2 * nd))
        if pads[:nd] != pads[nd:] or nd not in (1, 2):
            return None
        cls = nn.MaxPool1d if nd == 1 else nn.MaxPool2d
        return cls(k, tuple(attrs.get("strides", [1] * nd)), tuple(pads[:nd]),
                   tuple(attrs.get("dilations", [1] * nd)), bool(attrs.get("ceil_mode", 0)))
    if op == "GlobalAveragePool":
        return nn.GlobalAvgPool2d()
    return None


def _as_chain(onnx, graph):
    """An nn.Sequential when the graph is a chain of layer nodes, else None."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and "value" in [a.name for a in n.attribute]:
            inits[n.output[0]] = onnx.numpy_helper.to_array(_attrs(onnx, n)["value"])
    inputs = [i.name for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        return None
    cur, layers = inputs[0], []
    dims = next(i for i in graph.input if i.name == cur).type.tensor_type.shape.dim
    rank = len(dims) or None  # the rank of the value flowing along the chain, if known
    for n in graph.node:
        if n.op_type == "Constant":
            continue
        data_in = [i for i in n.input if i and i not in inits]
        if data_in != [cur]:
            return None
        layer = _chain_layer(onnx, n, _attrs(onnx, n), lambda k: inits.get(k), rank)
        if n.op_type in ("Flatten", "Gemm"):
            rank = 2
        if layer is None and n.op_type != "Identity":
            return None
        if layer is not None:
            layers.append(layer)
        cur = n.output[0]
    if cur != graph.output[0].name:
        return None
    return nn.Sequential(*layers)


def load(path):
    """Read an ONNX file as a pyxconv model.

    Parameters
    ----------
    path : str, path-like or onnx.ModelProto

    Returns
    -------
    pyxconv.nn.Module
        An :class:`~pyxconv.nn.Sequential` of layers (trainable, with backward)
        when the graph is a chain of layer operators, else a :class:`GraphModule`.
        Both are in eval mode.

    Raises
    ------
    UnsupportedOnnxError
        For an operator or attribute pyxconv cannot run, naming it and the node.
    """
    onnx = _onnx()
    proto = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version < 13:
            raise UnsupportedOnnxError(f"load: opset {imp.version} < 13 is not supported")
    model = _as_chain(onnx, proto.graph)
    if model is None:
        model = GraphModule(proto.graph, onnx)
    model.eval()
    return model
