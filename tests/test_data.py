import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from pyxconv.data import Batches, load_digits, load_mnist, read_idx, resize_bilinear

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(directory, images, labels, gz=True):
    directory.mkdir(exist_ok=True)
    for split in ("train", "t10k"):
        for stem, blob in ((f"{split}-images-idx3-ubyte", _idx_bytes(images)),
                           (f"{split}-labels-idx1-ubyte", _idx_bytes(labels))):
            if gz:
                (directory / (stem + ".gz")).write_bytes(gzip.compress(blob))
            else:
                (directory / stem).write_bytes(blob)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_plain_and_gzipped(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    blob = _idx_bytes(a)
    p = tmp_path / "a-idx3-ubyte"
    p.write_bytes(gzip.compress(blob) if gz else blob)
    out = read_idx(p)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)


def test_read_idx_reads_big_endian_int32_and_float64(tmp_path):
    a = np.array([1, -2, 70000], dtype=np.int32)
    (tmp_path / "i").write_bytes(_idx_bytes(a, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "i"), a)
    f = np.array([[0.5, -1.25]])
    (tmp_path / "f").write_bytes(_idx_bytes(f, 0x0E))
    np.testing.assert_array_equal(read_idx(tmp_path / "f"), f)


def test_read_idx_rejects_bad_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic number 0x12340801"):
        read_idx(p)


def test_read_idx_rejects_truncated_and_oversized_files(tmp_path):
    blob = _idx_bytes(np.zeros((3, 4, 4), np.uint8))
    p = tmp_path / "t"
    p.write_bytes(blob[:-5])
    with pytest.raises(ValueError, match=r"truncated.*\(3, 4, 4\).*64 bytes.*59 bytes"):
        read_idx(p)
    p.write_bytes(blob + b"\x00")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(p)
    p.write_bytes(blob[:9])
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(p)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    p = tmp_path / "c.gz"
    p.write_bytes(gzip.compress(_idx_bytes(np.zeros((50, 5), np.uint8)))[:30])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(p)


def test_load_mnist_checks_counts_and_accepts_plain_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    labels = np.array([0, 3, 9, 1], np.uint8)
    _write_mnist(tmp_path / "ok", images, labels, gz=False)
    x, y = load_mnist(tmp_path / "ok", "test")
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int64 and y.tolist() == [0, 3, 9, 1]
    _write_mnist(tmp_path / "bad", images, labels[:3])
    with pytest.raises(ValueError, match="4 images but .* 3 labels"):
        load_mnist(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path / "ok", "valid")


@pytest.mark.skipif(not MNIST.is_dir(), reason="shared MNIST data not present")
def test_load_mnist_reads_the_real_test_set():
    x, y = load_mnist(MNIST, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    # label counts published in the data README
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_load_digits_is_a_stratified_deterministic_split():
    x_tr, y_tr, x_te, y_te = load_digits(seed=3)
    assert x_tr.shape[1:] == (32, 32) and x_tr.dtype == np.float32
    assert len(x_tr) + len(x_te) == 1797
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    counts = np.bincount(y_te, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    again = load_digits(seed=3)
    np.testing.assert_array_equal(again[3], y_te)


def test_resize_bilinear_matches_interpolation_by_hand():
    img = np.array([[[0.0, 4.0], [8.0, 12.0]]])
    out = resize_bilinear(img, 4)
    # centres of the 4 output pixels map to input coordinates -0.25, 0.25, 0.75, 1.25 (clipped)
    np.testing.assert_allclose(out[0, 0], [0, 1, 3, 4])
    np.testing.assert_allclose(out[0, :, 0], [0, 2, 6, 8])


def test_batches_cover_every_sample_once_and_reshuffle_per_epoch():
    x = np.arange(10)
    y = x * 2
    b = Batches(x, y, batch_size=3, seed=1)
    assert len(b) == 4
    epoch1 = [(xb.copy(), yb.copy()) for xb, yb in b]
    seen = np.concatenate([xb for xb, _ in epoch1])
    assert sorted(seen.tolist()) == list(range(10))
    assert all((yb == xb * 2).all() for xb, yb in epoch1)
    epoch2 = np.concatenate([xb for xb, _ in b])
    assert epoch2.tolist() != seen.tolist()
    same = np.concatenate([xb for xb, _ in Batches(x, y, batch_size=3, seed=1)])
    assert same.tolist() == seen.tolist()


def test_batches_reject_mismatched_lengths_and_bad_batch_size():
    with pytest.raises(ValueError, match=r"\(3,\), \(4,\)"):
        Batches(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        Batches(np.zeros(3), batch_size=0)
