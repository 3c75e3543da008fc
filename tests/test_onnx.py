"""pyxconv.onnx: export -> onnxruntime, export -> load, and torch.onnx.export -> load."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pyxconv import models, nn  # noqa: E402
from pyxconv import onnx as pyxconv_onnx  # noqa: E402

MODELS = [("lenet5", lambda: models.lenet5(), (1, 1, 32, 32)),
          ("small_resnet", lambda: models.small_resnet(), (1, 1, 28, 28)),
          ("inception", lambda: nn.Sequential(models.inception(8, 4, 4, 6, 2, 3, 5)),
           (1, 8, 12, 12))]


def _relative_error(got, expected):
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("name, make, shape", MODELS, ids=[m[0] for m in MODELS])
def test_export_runs_in_onnxruntime_and_loads_back_with_a_dynamic_batch(tmp_path, name, make,
                                                                        shape):
    rng = np.random.default_rng(0)
    model = make()
    model.eval()
    path = tmp_path / f"{name}.onnx"
    pyxconv_onnx.export(model, rng.standard_normal(shape).astype(np.float32), path)
    onnx.checker.check_model(onnx.load(str(path)))
    x = rng.standard_normal((3,) + shape[1:]).astype(np.float32)  # exported at N=1
    expected = model(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert _relative_error(got, expected) < 1e-4
    loaded = pyxconv_onnx.load(path)
    loaded.eval()
    assert _relative_error(loaded(x), expected) < 1e-4


def test_a_torch_export_loads_and_agrees(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.LeakyReLU(0.1),
        torch.nn.MaxPool2d(2, ceil_mode=True), torch.nn.ConvTranspose2d(4, 3, 2, stride=2),
        torch.nn.AvgPool2d(2), torch.nn.Sigmoid(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 5 * 5, 5), torch.nn.Softmax(dim=1)).eval()
    x = torch.randn(2, 1, 9, 9)
    path = tmp_path / "torch.onnx"
    torch.onnx.export(net, x, str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    loaded = pyxconv_onnx.load(path)
    loaded.eval()
    x3 = torch.randn(3, 1, 9, 9)
    with torch.no_grad():
        expected = net(x3).numpy()
    assert _relative_error(loaded(x3.numpy()), expected) < 1e-4
