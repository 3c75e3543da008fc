"""The geometry of one convolution, as the kernels take it (see ``_geometry.pxd``).

The im2col/col2im, per-sample, tile, panel, group, fold-by-phases, weight
gradient and direct kernels all take one :class:`ConvGeometry` in place of
the output size, kernel, stride, padding and dilation as 15 scalars. The
constructor checks the sizes once; a plan (``functional._conv._Geometry``)
makes it once and passes the same object to every call.
"""

_MAX_ELEMENTS = 2 ** 62  # every product of sizes stays far from Py_ssize_t's limit


cdef tuple _triple(object values, str name):
    values = tuple(values)
    if len(values) != 3:
        raise ValueError(f"{name} must have 3 values (depth, height, width), got {values!r}")
    for value in values:
        if type(value) is not int and not hasattr(value, "__index__"):
            raise TypeError(f"{name} must be integers, got {values!r}")
    return tuple(int(value) for value in values)


cdef class ConvGeometry:
    """ConvGeometry(in_size, out_size, kernel_size, stride, padding, dilation)

    Each argument is 3 integers (depth, height, width). ``padding`` is the
    padding before each dimension; the output size fixes the padding after.
    Sizes, kernel, stride and dilation must be >= 1 and padding >= 0
    (ValueError naming the argument otherwise).

    >>> from pyxconv._kernels._geometry import ConvGeometry
    >>> g = ConvGeometry((1, 28, 28), (1, 24, 24), (1, 5, 5), (1, 1, 1), (0, 0, 0), (1, 1, 1))
    >>> g.kernel_volume, g.positions
    (25, 576)
    >>> ConvGeometry((1, 28, 28), (1, 24, 24), (1, 5, 5), (1, 0, 1), (0, 0, 0), (1, 1, 1))
    Traceback (most recent call last):
    ...
    ValueError: stride must be >= 1, got (1, 0, 1)
    """

    def __cinit__(self, in_size, out_size, kernel_size, stride, padding, dilation):
        cdef tuple i = _triple(in_size, "in_size"), o = _triple(out_size, "out_size")
        cdef tuple k = _triple(kernel_size, "kernel_size"), s = _triple(stride, "stride")
        cdef tuple p = _triple(padding, "padding"), d = _triple(dilation, "dilation")
        for name, values, low in (("in_size", i, 1), ("out_size", o, 1), ("kernel_size", k, 1),
                                  ("stride", s, 1), ("padding", p, 0), ("dilation", d, 1)):
            if min(values) < low:
                raise ValueError(f"{name} must be >= {low}, got {values}")
            if max(values) >= _MAX_ELEMENTS or (
                    name.endswith("size") and values[0] * values[1] * values[2] >= _MAX_ELEMENTS):
                raise ValueError(f"{name} {values} is too large")
        self.g.in_d, self.g.in_h, self.g.in_w = i
        self.g.out_d, self.g.out_h, self.g.out_w = o
        self.g.k_d, self.g.k_h, self.g.k_w = k
        self.g.stride_d, self.g.stride_h, self.g.stride_w = s
        self.g.pad_d, self.g.pad_h, self.g.pad_w = p
        self.g.dil_d, self.g.dil_h, self.g.dil_w = d
        self.g.kernel_volume = k[0] * k[1] * k[2]
        self.g.positions = o[0] * o[1] * o[2]
        self.g.plane = i[0] * i[1] * i[2]

    @property
    def in_size(self):
        return (self.g.in_d, self.g.in_h, self.g.in_w)

    @property
    def out_size(self):
        return (self.g.out_d, self.g.out_h, self.g.out_w)

    @property
    def kernel_size(self):
        return (self.g.k_d, self.g.k_h, self.g.k_w)

    @property
    def stride(self):
        return (self.g.stride_d, self.g.stride_h, self.g.stride_w)

    @property
    def padding(self):
        return (self.g.pad_d, self.g.pad_h, self.g.pad_w)

    @property
    def dilation(self):
        return (self.g.dil_d, self.g.dil_h, self.g.dil_w)

    @property
    def kernel_volume(self):
        return self.g.kernel_volume

    @property
    def positions(self):
        return self.g.positions

    def _arguments(self):
        return (self.in_size, self.out_size, self.kernel_size, self.stride, self.padding,
                self.dilation)

    def __reduce__(self):
        return ConvGeometry, self._arguments()

    def __eq__(self, other):
        if not isinstance(other, ConvGeometry):
            return NotImplemented
        return self._arguments() == (<ConvGeometry>other)._arguments()

    def __hash__(self):
        return hash(self._arguments())

    def __repr__(self):
        names = ("in_size", "out_size", "kernel_size", "stride", "padding", "dilation")
        return "ConvGeometry(" + ", ".join(
            f"{name}={value}" for name, value in zip(names, self._arguments())) + ")"
