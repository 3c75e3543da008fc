"""Forward (inference) speed: pyxconv against torch ``no_grad`` and onnxruntime's CPU provider.

The forward suite of issue #16: the conv layers of ``bench_conv.py``, three
single-image layers ((1,64,56,56)->64 3x3, (1,128,28,28)->128 3x3 and
(1,3,224,224)->64 7x7 stride 2), and LeNet-5's whole eval forward at batch 1
and 64. All three engines run in this process at the same thread count, in
alternating runs; each figure is the best of three medians. onnxruntime gets
``intra_op_num_threads`` = the thread count and
``session.intra_op.allow_spinning = "0"``; its models are built with
``onnx.helper`` from the same weights. Ratios are ``other_ms / pyxconv_ms``:
above 1 pyxconv is faster. The single-thread sgemm rate (NumPy's BLAS, 1024^3)
of the same run is printed for reference, with each 3x3 layer's rate.

onnxruntime and onnx are optional: without them only torch is compared.
``PYXCONV_ISA=avx2`` in the environment times pyxconv's AVX2 code on an
AVX-512 machine.

Usage::

    python benchmarks/bench_inference.py [--repeats 5] [--threads 1 2] [--out FILE]
"""
import argparse
import json
import math
import platform
import sys
from pathlib import Path

from _timing import (WAIT_POLICY_HELP, median_time, restrict_torch_isa, wait_policy_from_argv,
                     wait_settings)

WAIT_POLICY = wait_policy_from_argv(sys.argv) if __name__ == "__main__" else "pyxconv"
TORCH_ISA = restrict_torch_isa()
import pyxconv  # noqa: E402  (first: its OpenMP settings hold for torch too)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench_conv import LAYERS as TRAINING_LAYERS, sgemm_gflops  # noqa: E402
from pyxconv import models, nn  # noqa: E402
from pyxconv._blas import float32_gemm, get_isa  # noqa: E402
from pyxconv.functional import conv2d  # noqa: E402

try:
    import onnx  # noqa: E402
    import onnxruntime  # noqa: E402
    from onnx import TensorProto, helper, numpy_helper  # noqa: E402
except ImportError:  # the comparison with onnxruntime is skipped
    onnx = onnxruntime = None

# (N, C_in, H, W, C_out, k, stride, pad)
LAYERS = TRAINING_LAYERS + [
    (1, 64, 56, 56, 64, 3, 1, 1),
    (1, 128, 28, 28, 128, 3, 1, 1),
    (1, 3, 224, 224, 64, 7, 2, 3),
]
LENET_BATCHES = (1, 64)


def _session(model, threads):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def _conv_model(weight, bias, stride, pad):
    c_in = weight.shape[1]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride, stride],
                            pads=[pad] * 4)
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                       ["N", c_in, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _lenet_model(model):
    """LeNet-5 of pyxconv.models as an ONNX graph with the same weights."""
    state = model.state_dict()
    init = [numpy_helper.from_array(np.ascontiguousarray(v), k.replace(".", "_"))
            for k, v in state.items()]
    nodes = [
        helper.make_node("Conv", ["x", "0_weight", "0_bias"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "3_weight", "3_bias"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "7_weight", "7_bias"], ["l1"], transB=1),
        helper.make_node("Relu", ["l1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "9_weight", "9_bias"], ["l2"], transB=1),
        helper.make_node("Relu", ["l2"], ["r4"]),
        helper.make_node("Gemm", ["r4", "11_weight", "11_bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "lenet5", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                        ["N", 1, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _torch_lenet(model):
    t = torch.nn
    net = t.Sequential(t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2), t.Conv2d(6, 16, 5),
                       t.ReLU(), t.MaxPool2d(2), t.Flatten(), t.Linear(400, 120), t.ReLU(),
                       t.Linear(120, 84), t.ReLU(), t.Linear(84, 10))
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                         for k, v in model.state_dict().items()})
    return net.eval()


def _compare(name, work, ours, engines, threads, repeats, check):
    """Time ours and each of engines {name: fn}; check(outputs) before timing."""
    check()
    times = {"pyxconv": []}
    times.update({k: [] for k in engines})
    for _ in range(3):  # alternate the engines
        times["pyxconv"].append(median_time(ours, repeats))
        for key, fn in engines.items():
            times[key].append(median_time(fn, repeats))
    best = {k: min(v) for k, v in times.items()}
    record = {"op": "inference", "mode": f"forward, own GEMM on {get_isa()}",
              "case": name, "threads": threads, "isa": get_isa(),
              "pyxconv_ms": best["pyxconv"] * 1e3,
              "pyxconv_gflops": work / best["pyxconv"] / 1e9 if work else None}
    for key in engines:
        record[f"{key}_ms"] = best[key] * 1e3
        record[f"ratio_{key}"] = best[key] / best["pyxconv"]
    record["ratio"] = record["ratio_torch"]  # the ratio the performance page plots
    return record


def bench_layer(layer, threads, repeats):
    n, c_in, h, w, c_out, k, stride, pad = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    weight = (rng.standard_normal((c_out, c_in, k, k)) * 0.1).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, weight, bias))

    def ours():
        return conv2d(x, weight, bias, stride=stride, padding=pad)

    def torch_forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)

    engines = {"torch": torch_forward}
    if onnxruntime is not None:
        session = _session(_conv_model(weight, bias, stride, pad), threads)
        engines["ort"] = lambda: session.run(None, {"x": x})[0]

    def check():
        reference = torch_forward().numpy()
        for fn in [ours] + list(engines.values()):
            np.testing.assert_allclose(fn(), reference, rtol=1e-3, atol=1e-3)

    out_hw = ((h + 2 * pad - k) // stride + 1) * ((w + 2 * pad - k) // stride + 1)
    work = 2.0 * n * c_out * out_hw * c_in * k * k
    return _compare("conv " + "x".join(map(str, layer)), work, ours, engines, threads,
                    repeats, check)


def bench_lenet(batch, threads, repeats):
    nn.manual_seed(0)
    model = models.lenet5().eval()
    x = np.random.default_rng(1).standard_normal((batch, 1, 32, 32)).astype(np.float32)
    tnet = _torch_lenet(model)
    tx = torch.from_numpy(x)

    def ours():
        with pyxconv.no_grad():
            return model(x)

    def torch_forward():
        with torch.no_grad():
            return tnet(tx)

    engines = {"torch": torch_forward}
    if onnxruntime is not None:
        session = _session(_lenet_model(model), threads)
        engines["ort"] = lambda: session.run(None, {"x": x})[0]

    def check():
        reference = torch_forward().numpy()
        for fn in [ours] + list(engines.values()):
            np.testing.assert_allclose(fn(), reference, rtol=1e-3, atol=1e-4)

    return _compare(f"lenet5 eval, batch {batch}", None, ours, engines, threads, repeats,
                    check)


def geometric_mean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=None,
                        help="JSON file (default benchmarks/results/inference_<isa>.json)")
    parser.add_argument("--wait-policy", choices=["pyxconv", "passive"], default="pyxconv",
                        help=WAIT_POLICY_HELP)
    args = parser.parse_args()
    out = Path(args.out or Path(__file__).parent / "results" / f"inference_{get_isa()}.json")
    results = {"machine": platform.processor() or platform.machine(),
               "torch": torch.__version__, "numpy": np.__version__,
               "onnxruntime": getattr(onnxruntime, "__version__", None),
               "pyxconv": pyxconv.__version__, "isa": get_isa(),
               "float32_gemm": float32_gemm(), "wait_policy": WAIT_POLICY, **wait_settings(),
               "torch_isa": TORCH_ISA,
               "onnxruntime_isa": "its own choice by CPUID (no switch)",
               "sgemm_gflops_1_thread": None, "records": []}
    with threadpool_limits(1, user_api="blas"):
        results["sgemm_gflops_1_thread"] = sgemm = sgemm_gflops(1)
    print(f"pyxconv's float32 GEMM: {float32_gemm()}; sgemm (NumPy's BLAS, 1 thread): "
          f"{sgemm:.1f} GF/s")
    for threads in args.threads:
        torch.set_num_threads(threads)
        with pyxconv.num_threads(threads), threadpool_limits(threads, user_api="blas"):
            print(f"\n== {threads} thread(s)")
            print(f"{'case':40} {'pyxconv ms':>10} {'torch ms':>9} {'ort ms':>9} "
                  f"{'vs torch':>8} {'vs ort':>7} {'GF/s':>6}")
            records = [bench_layer(layer, threads, args.repeats) for layer in LAYERS]
            records += [bench_lenet(b, threads, args.repeats) for b in LENET_BATCHES]
            for r in records:
                print(f"{r['case']:40} {r['pyxconv_ms']:10.3f} {r['torch_ms']:9.3f} "
                      f"{r.get('ort_ms', float('nan')):9.3f} {r['ratio_torch']:8.2f} "
                      f"{r.get('ratio_ort', float('nan')):7.2f} "
                      f"{r['pyxconv_gflops'] or float('nan'):6.1f}")
            results["records"] += records
            for key in ("torch", "ort"):
                ratios = [r[f"ratio_{key}"] for r in records if f"ratio_{key}" in r]
                if ratios:
                    print(f"geometric mean vs {key}: {geometric_mean(ratios):.2f} "
                          f"(min {min(ratios):.2f})")
            # the 3x3 layers of real networks: not the (1, 3, 5, 5) call-overhead case
            three = [r["pyxconv_gflops"] for r in records
                     if r["case"].startswith("conv") and r["case"].split("x")[5] == "3"
                     and r["pyxconv_gflops"] and r["pyxconv_gflops"] > 1]
            if threads == 1 and three:
                print(f"3x3 layers: {min(three) / sgemm:.0%}-{max(three) / sgemm:.0%} "
                      "of the single-thread sgemm rate")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
