"""Files that are either wholly the old version or wholly the new one.

A process killed while it writes a file leaves, at worst, a stray temporary
file beside the target: the target itself is replaced in one ``os.replace``,
which POSIX and Windows both make atomic within one file system. This is the
pattern of databases and of torch's ``torch.save`` users' guides: write a
temporary file in the same directory, flush it, ``fsync`` it, rename it over
the target, then ``fsync`` the directory so the rename itself is durable.
"""
import contextlib
import os
import tempfile

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file that replaces ``path`` only when the block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its directory must exist.
    mode : {"wb", "w"}
        Binary or text.

    Yields
    ------
    file
        An open file object. Whatever is written to it appears at ``path``
        all at once when the ``with`` block ends without an exception; if the
        block raises (or the process dies), ``path`` keeps its old content and
        the temporary file is removed (or, after a kill, left beside it with a
        ``.tmp`` suffix).

    Examples
    --------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("old")
    >>> try:
    ...     with atomic_write(target, "w") as f:
    ...         _ = f.write("half of the new")
    ...         raise RuntimeError("crash")
    ... except RuntimeError:
    ...     pass
    >>> open(target).read()
    'old'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make a rename inside ``directory`` durable (a no-op where unsupported)."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: no directory handles to sync
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
