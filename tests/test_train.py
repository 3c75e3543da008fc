"""Short training runs on real digits: the loss falls and accuracy beats chance widely."""
from pathlib import Path

import numpy as np
import pytest

from pyxconv import nn, optim
from pyxconv.__main__ import main
from pyxconv.data import Batches, load_digits
from pyxconv.train import evaluate, train

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def test_lenet_on_a_digits_subset_reduces_the_loss_and_beats_chance():
    result = train(epochs=4, limit=600, augment=0, progress=False, save=False,
                   log=lambda *a: None)
    losses = result["losses"]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert result["test_accuracy"] > 0.6  # chance is 0.1


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared MNIST data not present")
def test_lenet_on_an_mnist_subset_beats_chance_on_the_full_test_set():
    result = train(data=MNIST, epochs=1, limit=3000, progress=False, save=False,
                   log=lambda *a: None)
    assert result["test_accuracy"] > 0.8


def test_hand_written_loop_with_adam_and_an_mlp_learns_the_digits():
    x_tr, y_tr, x_te, y_te = load_digits(size=8)
    x_tr = x_tr.reshape(len(x_tr), -1)
    x_te = x_te.reshape(len(x_te), -1)
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Dropout(0.1), nn.Linear(32, 10))
    criterion = nn.SoftmaxCrossEntropy()
    opt = optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(5):
        for xb, yb in Batches(x_tr, y_tr, batch_size=32, seed=0):
            loss = criterion(model(xb), yb)
            first = loss if first is None else first
            model.backward(criterion.backward())
            opt.step()
            opt.zero_grad()
    acc, test_loss = evaluate(model, x_te, y_te)
    assert test_loss < first / 3
    assert acc > 0.85


def test_command_line_writes_weights_pictures_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--epochs", "1", "--limit", "128", "--no-progress", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "test accuracy" in printed
    for name in ("lenet5.npz", "filters.png", "feature_maps.png", "metrics.json"):
        assert (out / name).stat().st_size > 0
    with np.load(out / "lenet5.npz") as w:
        assert w["0.weight"].shape == (6, 1, 5, 5)
    assert (out / "filters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_reports_a_missing_data_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["train", "--data", str(tmp_path / "nowhere"), "--no-progress"])


def test_random_shift_translates_each_image_with_zero_fill():
    from pyxconv.train import random_shift

    x = np.zeros((50, 1, 5, 5))
    x[:, 0, 2, 2] = 1.0
    y = random_shift(x, 1, np.random.default_rng(0))
    assert (y.sum(axis=(1, 2, 3)) == 1).all()  # the dot stays inside, nothing else appears
    rows, cols = np.nonzero(y[:, 0])[1:]
    assert set(rows) == {1, 2, 3} and set(cols) == {1, 2, 3}


def test_console_script_entry_point_parses_train_options(tmp_path):
    from pyxconv.train import cli

    assert cli(["--epochs", "1", "--limit", "64", "--no-progress", "--out",
                str(tmp_path)]) == 0
    assert (tmp_path / "metrics.json").is_file()
