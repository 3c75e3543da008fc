"""Argument checks and output-size arithmetic shared by functional, nn, teach and data.

Every check a user can trip lives here or in the calling function, and
raises before a kernel runs, naming the argument and the numbers.

Dtype rules
-----------
* float32 and float64 arrays keep their dtype; float32 is the fast path.
* Integer and bool arrays are promoted to the dtype of the floating-point
  operands of the same call, or to float64 when there are none, so the
  lectures' integer examples can be typed as they are.
* float16 is promoted to float32.
* Mixing float32 and float64 operands raises ``TypeError``.
* Complex, object, string and other dtypes raise ``TypeError``.
"""
import numbers
import operator
import warnings

import numpy as np

#: The float dtypes the kernels take.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: What :func:`plain_key` gives for an argument that cannot be part of a cache key.
UNCACHEABLE = object()


def plain_key(value):
    """``value`` as part of a cache key of checked calls, or :data:`UNCACHEABLE`.

    None, an int, a str, or a tuple of ints or of tuples of ints. Only exact
    ``int`` qualifies: bool, float and NumPy scalars hash like ints
    (``True == 1.0 == 1``) but the checks convert or refuse them, so a key
    never stands for an argument a fresh check would treat differently.
    Lists (unhashable) are checked every time.

    >>> plain_key((1, (2, 3))), plain_key(2.0) is UNCACHEABLE, plain_key([1]) is UNCACHEABLE
    ((1, (2, 3)), True, True)
    """
    kind = type(value)
    if value is None or kind is int or kind is str:
        return value
    if kind is not tuple:
        return UNCACHEABLE
    for v in value:  # loops, not all() over a generator: this runs on every call
        if type(v) is int:
            continue
        if type(v) is not tuple:
            return UNCACHEABLE
        for u in v:
            if type(u) is not int:
                return UNCACHEABLE
    return value


class CheckedCalls:
    """What the checks of a call gave, by key: at most ``size`` keys, then it starts afresh.

    A repeated call (inference over many small inputs) then skips its checks.
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size=256):
        self._entries, self._size = {}, size

    def get(self, key):
        return self._entries.get(key)

    def put(self, key, value):
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = value

    def clear(self):
        self._entries.clear()

    def __len__(self):
        return len(self._entries)


# Names of the spatial dimensions of 1-, 2- and 3-D inputs, for error messages.
SPATIAL_DIM_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def _as_array(value, name):
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {exc}") from None


def _kind_of(array, name):
    kind = array.dtype.kind
    if kind in "biu":
        return "int"
    if kind == "f":
        if array.dtype.itemsize < 4:
            return "half"
        if array.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} has dtype {array.dtype}; pyxconv supports float32 and float64")
        return "float"
    raise TypeError(
        f"{name} has dtype {array.dtype}; expected a real floating-point, integer or "
        "bool array (complex, object and string arrays are not supported)"
    )


#: A strided or broadcast input is copied to C order before the kernels run
#: (they read contiguous planes); the copy is as large as the array's shape
#: says. Above this many bytes, when the copy is more than 16 times the memory
#: the input really occupies (a broadcast view: 4 bytes real, 4 GiB virtual),
#: a BroadcastCopyWarning names the sizes first.
BROADCAST_COPY_WARN_BYTES = 64 << 20


class BroadcastCopyWarning(UserWarning):
    """A broadcast or strided input is about to be copied into a much larger array."""


def _real_bytes(array):
    """Bytes an array's elements span in memory (a broadcast view: far fewer than nbytes)."""
    if array.size == 0:
        return 0
    span = sum((s - 1) * abs(st) for s, st in zip(array.shape, array.strides))
    return span + array.itemsize


def _warn_if_large_copy(array, name):
    if (array.nbytes > BROADCAST_COPY_WARN_BYTES and not array.flags.c_contiguous
            and array.nbytes > 16 * _real_bytes(array)):
        warnings.warn(
            f"{name} of shape {array.shape} is a broadcast or strided view of "
            f"{_real_bytes(array)} bytes; the kernels need it in C order, so it is copied into "
            f"{array.nbytes} bytes ({array.nbytes / 2**30:.2f} GiB)", BroadcastCopyWarning,
            stacklevel=4)


_MAY_BE_NONE = frozenset({"bias", "weight", "pos_weight"})

# Integers the kernels take are C ssize_t / int64: larger ones are a ValueError
# here, not an OverflowError from deep inside a call.
_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


def float_arrays(**named):
    """Convert named array-likes to one common float dtype.

    ``None`` passes through for the optional operands (``bias``, ``weight``,
    ``pos_weight``; a required ``weight`` is checked by :func:`check_ndim`)
    and is a ``TypeError`` naming the argument for every other one. Returns
    the arrays in the order given.
    """
    arrays = {}
    float_dtypes = set()
    for name, value in named.items():
        if value is None:
            if name not in _MAY_BE_NONE:
                raise TypeError(f"{name} must be an array, got None")
            arrays[name] = None
            continue
        array = _as_array(value, name)
        kind = _kind_of(array, name)
        if not array.flags.c_contiguous:
            _warn_if_large_copy(array, name)
        if kind == "float":
            float_dtypes.add(array.dtype)
        elif kind == "half":
            float_dtypes.add(np.dtype(np.float32))
        arrays[name] = array
    if len(float_dtypes) > 1:
        described = ", ".join(
            f"{name}={a.dtype}" for name, a in arrays.items() if a is not None
        )
        raise TypeError(
            f"operands must share one float dtype, got {described}; convert them "
            "with .astype(np.float32) or .astype(np.float64)"
        )
    dtype = float_dtypes.pop() if float_dtypes else np.dtype(np.float64)
    out = []
    for name, array in arrays.items():
        if array is not None and array.dtype != dtype:
            array = array.astype(dtype)
        out.append(array)
    return out


def check_ndim(array, ndim, name, layout):
    if array is None:
        raise TypeError(f"{name} must be an array with layout {layout}, got None")
    if array.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D with layout {layout}, got shape {array.shape}"
        )


def check_finite_size(shape, name):
    if any(s == 0 for s in shape):
        raise ValueError(f"{name} has an empty dimension: shape {tuple(shape)}")


def check_nonempty_sample(shape, name):
    """Every dimension but the batch (the first) non-empty: N = 0 is allowed, as in PyTorch."""
    if any(s == 0 for s in shape[1:]):
        raise ValueError(f"{name} has an empty dimension: shape {tuple(shape)} (only the batch "
                         "dimension N may be 0)")


def as_int(value, name, minimum=None):
    if (type(value) is int and (minimum is None or value >= minimum)
            and _INT64_MIN <= value <= _INT64_MAX):
        return value  # the common case, without the checks below (~1 us each call)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{name} = {value} does not fit in a 64-bit integer "
                         "(|value| must be below 2**63)")
    return value


def int_tuple(value, n, name, minimum):
    """An int or a sequence of ``n`` ints, as a tuple of ``n`` ints >= minimum."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or {n} ints, got {tuple(value)!r}")
        items = value
    elif isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be an int or a tuple of ints, got an ndarray")
    else:
        items = (value,) * n
    result = tuple(as_int(v, name, None) for v in items)
    for v in result:
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return result


def padding_pairs(padding, n, kernel_size, stride, dilation, name="padding"):
    """Resolve a padding argument to ``n`` (before, after) pairs.

    Accepted forms: an int; ``n`` ints; ``n`` (before, after) pairs;
    ``'valid'`` (no padding); ``'same'`` (stride 1 only: output size equals
    input size; an odd total puts the extra zero after, as PyTorch does).
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * n
        if mode == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"{name}='same' needs stride 1, got stride {stride}; for TensorFlow-style "
                    "'same' at stride > 1 pass explicit pairs, e.g. from "
                    "pyxconv.functional.same_padding(input_size, kernel_size, stride)"
                )
            pairs = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"{name} must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    if isinstance(padding, (list, tuple)):
        if len(padding) != n:
            raise ValueError(
                f"{name} must be an int, {n} ints or {n} (before, after) pairs, got {padding!r}"
            )
        pairs = []
        for item in padding:
            if isinstance(item, (list, tuple)):
                if len(item) != 2:
                    raise ValueError(f"{name} pairs must be (before, after), got {item!r}")
                before, after = (as_int(v, name) for v in item)
            else:
                before = after = as_int(item, name)
            pairs.append((before, after))
    else:
        p = as_int(padding, name)
        pairs = [(p, p)] * n
    for before, after in pairs:
        if before < 0 or after < 0:
            raise ValueError(f"{name} must be >= 0, got {padding!r}")
    return tuple(pairs)


def conv_output_size(size, kernel, stride, pad_before, pad_after, dilation, dim_name, name="x"):
    """floor((size + pads - dilation*(kernel-1) - 1) / stride) + 1, checked >= 1."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_before + pad_after
    if span > padded:
        raise ValueError(
            f"kernel does not fit: {dim_name} of {name} is {size} (padded {padded}) but the "
            f"dilated kernel spans {span} (kernel {kernel}, dilation {dilation})"
        )
    return (padded - span) // stride + 1


# No array this large can be allocated on any machine; checking first gives a
# clear error instead of an integer overflow inside NumPy.
_MAX_ALLOCATION_BYTES = 2**48


def check_allocation(shape, itemsize, what):
    """Raise MemoryError, naming the shape, before allocating an impossible array."""
    n_bytes = itemsize
    for size in shape:
        n_bytes *= int(size)
    if n_bytes > _MAX_ALLOCATION_BYTES:
        raise MemoryError(
            f"the {what} of shape {tuple(int(s) for s in shape)} would need {n_bytes:.3e} bytes")


def check_output_padding(output_padding, stride, dilation):
    """Raise ValueError unless each output_padding is below its stride or dilation."""
    names = SPATIAL_DIM_NAMES[len(output_padding)]
    for dim, op, s, d in zip(names, output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation, got "
                f"output_padding={op} with stride={s} and dilation={d} along the {dim}")


def pooled_spatial_shape(in_spatial, kernel_size, stride, padding, dilation, ceil_mode, nd,
                         func):
    """Output spatial shape of a pooling window, with the pooling functions' own checks
    (so a layer's ``output_shape`` fails exactly as its forward would)."""
    from pyxconv.functional._pool import _pool_geometry

    return _pool_geometry(in_spatial, kernel_size, stride, padding, dilation, ceil_mode, nd,
                          func).out_spatial
