"""Data: IDX files (MNIST, Fashion-MNIST), scikit-learn's 8x8 digits, and batches.

The IDX format
--------------
An IDX file is a tiny header followed by one array in C order, all integers
big-endian::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions, d
    4 * d bytes the size of each dimension, uint32
    the data    prod(sizes) items of the given type

MNIST's images are ``(N, 28, 28)`` uint8 (magic 2051 = ``0x00000803``) and its
labels ``(N,)`` uint8 (magic 2049 = ``0x00000801``). Files may be gzipped;
:func:`read_idx` recognises gzip by its first two bytes, not by the name.

Nothing in this module downloads anything.
"""
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["Batches", "load_digits", "load_mnist", "read_idx", "resize_bilinear"]

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


#: Bytes read (and, for gzip, inflated) at a time. The data are never held
#: beyond what the header declares, plus one chunk.
_READ_CHUNK = 1 << 20


class _Reader:
    """The file's bytes, inflated as they are read when the file is gzipped."""

    def __init__(self, path, f):
        self.path = path
        self.gzipped = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        self.file_size = os.fstat(f.fileno()).st_size
        self.stream = gzip.GzipFile(fileobj=f, mode="rb") if self.gzipped else f

    def read(self, n):
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{self.path}: corrupt or truncated gzip data ({exc})") from None


def _read_exactly(reader, n):
    """Up to ``n`` bytes (fewer only at the end of the data), read in bounded chunks."""
    buf = bytearray()
    while len(buf) < n:
        piece = reader.read(min(_READ_CHUNK, n - len(buf)))
        if not piece:
            break
        buf += piece
    return buf


def read_idx(path):
    """Read one IDX file, gzipped or not, into a NumPy array.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content.

    Returns
    -------
    ndarray
        Of the dtype and shape given in the header, in native byte order.

    Raises
    ------
    ValueError
        If the file is not IDX (bad magic number, unknown type code), is
        truncated or has trailing bytes, or its gzip stream is corrupt. The
        message names the file and the sizes.
    FileNotFoundError
        If the file does not exist.

    Notes
    -----
    A gzipped file is inflated as it is read, a chunk at a time, and reading
    stops as soon as the data go past the size the header declares: a small
    file that inflates to gigabytes (a "gzip bomb") is rejected after the
    declared size plus one chunk (1 MiB) has been inflated, and memory never
    holds more than that. A plain file is checked against its size on disk
    before anything is read. The data are not allocated from the header's
    sizes up front, so a header that declares more than the file holds costs
    only what the file really holds.

    Examples
    --------
    A 2x3 uint8 array written by hand: magic ``00 00 08 02``, sizes 2 and 3.

    >>> import tempfile, os
    >>> from pyxconv.data import read_idx
    >>> blob = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "tiny-idx2-ubyte")
    ...     _ = open(p, "wb").write(blob)
    ...     read_idx(p)
    array([[1, 2, 3],
           [4, 5, 6]], dtype=uint8)
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        reader = _Reader(path, f)
        magic = bytes(_read_exactly(reader, 4))
        if len(magic) < 4:
            raise ValueError(f"{path}: {len(magic)} bytes is too short for an IDX header "
                             "(4 bytes)")
        if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
            number = int.from_bytes(magic, "big")
            raise ValueError(
                f"{path}: not an IDX file: magic number 0x{number:08X}; expected 0x0000TTDD "
                "with type code TT in 08, 09, 0B, 0C, 0D, 0E (MNIST images: 0x00000803, "
                "labels: 0x00000801)"
            )
        dtype = _IDX_TYPES[magic[2]]
        ndim = magic[3]
        header = 4 + 4 * ndim
        sizes = bytes(_read_exactly(reader, 4 * ndim))
        if len(sizes) < 4 * ndim:
            raise ValueError(
                f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, "
                f"file has {4 + len(sizes)}"
            )
        shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
        declared = math.prod(shape) * dtype.itemsize
        expected = header + declared
        if not reader.gzipped and reader.file_size != expected:
            what = "truncated" if reader.file_size < expected else "has trailing bytes"
            raise ValueError(
                f"{path}: IDX file {what}: header says shape {shape} of {dtype.name} "
                f"({expected} bytes with the header), file has {reader.file_size} bytes"
            )
        raw = _read_exactly(reader, declared)
        if len(raw) < declared:
            raise ValueError(
                f"{path}: IDX file truncated: header says shape {shape} of {dtype.name} "
                f"({expected} bytes with the header), file has {header + len(raw)} bytes"
                + (" once inflated" if reader.gzipped else "")
            )
        if reader.read(1):
            raise ValueError(
                f"{path}: IDX file has trailing bytes: header says shape {shape} of "
                f"{dtype.name} ({expected} bytes with the header), the inflated data go on "
                "past that (reading stopped there)"
            )
    data = np.frombuffer(raw, dtype=dtype).reshape(shape)
    if dtype.isnative:
        return data  # a writable array over the bytearray just read: no second copy
    return data.astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    # Some copies use a dot instead of a dash before "idx".
    for name in (stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{directory}: no {stem} or {stem}.gz (MNIST-format directory expected with "
        f"train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte, gzipped or not)"
    )


def load_mnist(directory, split="train"):
    """Load an MNIST-format data set (MNIST, Fashion-MNIST, KMNIST, ...) from a directory.

    Parameters
    ----------
    directory : str or path-like
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
        optionally gzipped (``.gz``).
    split : {'train', 'test'}

    Returns
    -------
    images : ndarray of shape (N, H, W), uint8
    labels : ndarray of shape (N,), int64

    Raises
    ------
    ValueError
        Bad ``split``; a file that is not IDX, is truncated, has the wrong
        number of dimensions; image and label counts that differ.
    FileNotFoundError
        A missing file.
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"data directory {directory} does not exist")
    image_path, label_path = (_find(directory, stem) for stem in _MNIST_FILES[split])
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3:
        raise ValueError(f"{image_path}: images must be 3-D (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{label_path}: labels must be 1-D (N,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels"
        )
    return images, labels.astype(np.int64)


def load_digits(test_fraction=0.2, seed=0, size=32):
    """scikit-learn's 1,797 handwritten 8x8 digits, split and scaled up for LeNet-5.

    The images ship inside scikit-learn (install the ``examples`` extra), so
    nothing is downloaded. Each 8x8 image, with grey levels 0..16, is scaled
    to ``size x size`` by bilinear interpolation, so that LeNet-5's original
    32x32 input and 5x5 filters apply unchanged (a 5x5 filter on the raw 8x8
    image would see most of the digit at once).

    Parameters
    ----------
    test_fraction : float, default 0.2
        Share of each class held out for testing (stratified).
    seed : int, default 0
        Seed of the split.
    size : int, default 32
        Side of the returned images.

    Returns
    -------
    x_train, y_train, x_test, y_test
        Images of shape (N, size, size), float32 in [0, 1]; labels int64.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError(
            "the default data set is scikit-learn's digits: pip install 'pyxconv[examples]' "
            "(or scikit-learn), or pass an MNIST-format directory"
        ) from None
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = _sk_load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    images = resize_bilinear(images, size)
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test_mask[idx[:int(round(test_fraction * len(idx)))]] = True
    return images[~test_mask], labels[~test_mask], images[test_mask], labels[test_mask]


def resize_bilinear(images, size):
    """Resize a stack of square images ``(N, h, w)`` to ``(N, size, size)``, bilinearly.

    Pixel centres are aligned as in ``align_corners=False`` resampling.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.data import resize_bilinear
    >>> resize_bilinear(np.array([[[0.0, 1.0]]]), 4)[0, 0]
    array([0.  , 0.25, 0.75, 1.  ])
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be 3-D (N, h, w), got shape {images.shape}")

    def weights(n_in):
        pos = (np.arange(size) + 0.5) * n_in / size - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        m = np.zeros((size, n_in), dtype=np.float64)
        m[np.arange(size), lo] += 1 - (pos - lo)
        m[np.arange(size), hi] += pos - lo
        return m

    rows = weights(images.shape[1])
    cols = weights(images.shape[2])
    out = np.einsum("ih,nhw,jw->nij", rows, images.astype(np.float64), cols)
    return out.astype(images.dtype if images.dtype.kind == "f" else np.float64)


class Batches:
    """Mini-batches of one or more arrays that share their first dimension.

    Each pass (``for xb, yb in batches``) draws a new order from the seeded
    generator when ``shuffle`` is true, so two iterators built with the same
    seed give the same batches, epoch after epoch.

    Parameters
    ----------
    *arrays : ndarray
        Arrays with the same length along axis 0 (e.g. images and labels).
    batch_size : int, default 64
    shuffle : bool, default True
    seed : int or None, default None
        Seed of the shuffling generator.
    drop_last : bool, default False
        Drop the final batch when it is smaller than ``batch_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyxconv.data import Batches
    >>> x = np.arange(5)
    >>> [b.tolist() for (b,) in Batches(x, batch_size=2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    >>> len(Batches(x, batch_size=2, drop_last=True))
    2
    """

    def __init__(self, *arrays, batch_size=64, shuffle=True, seed=None, drop_last=False):
        if not arrays:
            raise ValueError("Batches needs at least one array")
        arrays = tuple(np.asarray(a) for a in arrays)
        lengths = [a.shape[0] if a.ndim else None for a in arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = [a.shape for a in arrays]
            raise ValueError(f"arrays must share their first dimension, got shapes {shapes}")
        from pyxconv._validation import as_int
        self.batch_size = as_int(batch_size, "batch_size", 1)
        self.arrays = arrays
        self.n = lengths[0]
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self):
        order = self._rng.permutation(self.n) if self.shuffle else None
        bs = self.batch_size
        for i in range(len(self)):
            if order is None:
                yield tuple(a[i * bs:(i + 1) * bs] for a in self.arrays)
            else:
                idx = order[i * bs:(i + 1) * bs]
                yield tuple(a[idx] for a in self.arrays)
