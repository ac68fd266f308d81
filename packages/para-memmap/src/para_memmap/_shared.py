"""Arrays allocated directly in shared memory, so that they travel by name.

``empty`` creates a file ``para-memmap-<pid>-<id>.dat`` in the shared folder,
maps it, and ties the file's life to the returned array: the file is unlinked
when the array is garbage collected, at interpreter exit, or by the watchdog
process if this process is killed.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import uuid
import warnings
import weakref
from typing import Any

import numpy as np

from . import _watchdog
from ._storage import PREFIX, SHM_HEADROOM, free_bytes, resolve_root

__all__ = ["empty", "zeros"]


def _release(filename: str, creator: int) -> None:
    if os.getpid() != creator:  # a forked child inherited the finalizer
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(filename)
    _watchdog.forget(filename)


def _pick_root(nbytes: int, temp_folder: str | None) -> str:
    root, auto_shm = resolve_root(temp_folder)
    if auto_shm:
        try:
            room = free_bytes(root)
        except OSError:
            room = 0
        if room < nbytes + SHM_HEADROOM:
            import tempfile

            fallback = os.path.abspath(tempfile.gettempdir())
            warnings.warn(
                f"{root} has only {room} bytes free for a shared array of "
                f"{nbytes} bytes; para_memmap.empty allocates it in {fallback!r} "
                f"instead. Pass temp_folder=... or set JOBLIB_TEMP_FOLDER to "
                f"choose another folder.",
                UserWarning,
                stacklevel=4,
            )
            return fallback
    return root


def empty(
    shape: int | tuple[int, ...],
    dtype: Any = float,
    order: str = "C",
    *,
    temp_folder: str | None = None,
) -> np.memmap:
    """Return a new array allocated in shared memory, without initialising it.

    The array is an ``np.memmap`` of a file in ``/dev/shm`` (or the folder
    chosen as for ``Parallel``'s ``temp_folder``), so passing it to workers
    sends its file name and offsets only: no copy at any size, and workers see
    and may write the same memory. The file is removed when the array (and
    every view of it) is garbage collected, at exit, or if the process is
    killed.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the new array.
    dtype : data-type, default=float
        numpy data type; object dtypes cannot live in shared memory.
    order : {"C", "F"}, default="C"
        Memory layout.
    temp_folder : str, optional
        Folder to allocate in; by default ``JOBLIB_TEMP_FOLDER``, else
        ``/dev/shm`` when it has room, else the system temp folder.

    Returns
    -------
    numpy.memmap
        A writable array in shared memory (its content is zeros on Linux and
        macOS, but do not rely on it: use :func:`zeros`).

    Raises
    ------
    ValueError
        If ``dtype`` holds Python objects or ``order`` is not "C" or "F".

    Examples
    --------
    >>> import para_memmap
    >>> a = para_memmap.empty((2, 3), dtype="float32")
    >>> a[:] = 1
    >>> float(a.sum()), para_memmap.has_shareable_memory(a)
    (6.0, True)
    """
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise ValueError(
            f"dtype {dtype!r} holds Python objects, which cannot live in shared "
            f"memory; use a numeric, bytes or structured dtype"
        )
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', got {order!r}")
    shape_t = (int(shape),) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)
    if any(n < 0 for n in shape_t):
        raise ValueError(f"negative dimensions are not allowed, got shape {shape!r}")
    nbytes = math.prod(shape_t) * dtype.itemsize
    if nbytes == 0:
        return np.ndarray.__new__(np.memmap, shape_t, dtype=dtype, order=order)
    root = _pick_root(nbytes, temp_folder)
    filename = os.path.join(root, f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex}.dat")
    _watchdog.track(filename)
    try:
        fd = os.open(filename, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            # Reserve the pages now: a full tmpfs then fails here, cleanly,
            # instead of with SIGBUS when the array is first written.
            if hasattr(os, "posix_fallocate"):
                try:
                    os.posix_fallocate(fd, 0, nbytes)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    os.ftruncate(fd, nbytes)
            else:
                os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
        array = np.memmap(filename, dtype=dtype, mode="r+", shape=shape_t, order=order)
    except BaseException:
        _release(filename, os.getpid())
        raise
    weakref.finalize(array, _release, filename, os.getpid())
    return array


def zeros(
    shape: int | tuple[int, ...],
    dtype: Any = float,
    order: str = "C",
    *,
    temp_folder: str | None = None,
) -> np.memmap:
    """Return a new array of zeros allocated in shared memory.

    Same as :func:`empty`, with every element set to zero.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the new array.
    dtype : data-type, default=float
        numpy data type.
    order : {"C", "F"}, default="C"
        Memory layout.
    temp_folder : str, optional
        Folder to allocate in (see :func:`empty`).

    Returns
    -------
    numpy.memmap
        A writable array of zeros in shared memory.

    Examples
    --------
    >>> import para_memmap
    >>> para_memmap.zeros(3).tolist()
    [0.0, 0.0, 0.0]
    """
    array = empty(shape, dtype, order, temp_folder=temp_folder)
    # A new file reads as zeros on POSIX; elsewhere, clear it explicitly.
    if os.name != "posix":
        array[...] = 0
    return array
