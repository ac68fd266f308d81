"""Array plumbing: file layouts, memory-map views, and the rebuild functions.

The rebuild functions are what pickles name: ``rebuild_temp`` and
``rebuild_view`` run in workers, ``rebuild_result`` runs in the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._mapcache import open_mapping, open_read_only, sweep
from ._storage import CHUNK_BYTES, is_ours, new_hasher

__all__ = [
    "backing_memmap",
    "byte_chunks",
    "byte_span",
    "checksum",
    "has_shareable_memory",
    "rebuild_result",
    "rebuild_shared",
    "rebuild_temp",
    "rebuild_view",
    "reduce_by_reference",
]


def _writable_mode(mode: str) -> str:
    # Re-opening a "w+" file must not truncate what the caller wrote.
    return "r+" if mode == "w+" else mode


def backing_memmap(a: Any) -> np.memmap | None:
    """The root ``np.memmap`` (the one owning the mmap) behind ``a``, if any."""
    obj = a
    while obj is not None:
        base = getattr(obj, "base", None)
        if isinstance(base, mmap.mmap):
            return obj if isinstance(obj, np.memmap) else None
        obj = base
    return None


def has_shareable_memory(a: Any) -> bool:
    """Return True when ``a`` is backed by memory mapped from a file.

    Such an array reaches worker processes by reference, with no copy: it is
    an ``np.memmap`` (or a view of one), for instance an argument the workers
    received from para-memmap or an array from :func:`para_memmap.empty`.

    Parameters
    ----------
    a : object
        Usually a numpy array; any other object gives False.

    Returns
    -------
    bool
        Whether the memory of ``a`` comes from a memory-mapped buffer.

    Examples
    --------
    >>> import numpy as np
    >>> from para_memmap import has_shareable_memory
    >>> has_shareable_memory(np.zeros(3))
    False
    """
    obj = a
    while obj is not None:
        base = getattr(obj, "base", None)
        if isinstance(base, mmap.mmap):
            return True
        obj = base
    return False


def byte_span(a: np.ndarray) -> tuple[int, int]:
    """Lowest and one-past-highest byte addresses that ``a`` touches."""
    low = high = a.__array_interface__["data"][0]
    for extent, stride in zip(a.shape, a.strides):
        if stride < 0:
            low += (extent - 1) * stride
        else:
            high += (extent - 1) * stride
    return low, high + a.itemsize


def reduce_by_reference(a: np.ndarray, m: np.memmap) -> tuple[Any, tuple]:
    """Reduce ``a``, a view of the file-backed ``m``, to (file, offsets)."""
    low, high = byte_span(a)
    m_start = m.__array_interface__["data"][0]
    file_offset = int(m.offset) + (low - m_start)
    start = a.__array_interface__["data"][0] - low
    mode = _writable_mode(m.mode)
    filename = os.fspath(m.filename)  # numpy keeps a Path when given one
    if a.flags.c_contiguous or a.flags.f_contiguous:
        order = "C" if a.flags.c_contiguous else "F"
        return rebuild_temp, (filename, a.dtype, a.shape, order, mode, file_offset)
    return rebuild_view, (
        filename,
        a.dtype,
        a.shape,
        a.strides,
        mode,
        file_offset,
        start,
        high - low,
    )


def rebuild_temp(
    filename: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
    order: str,
    mode: str,
    offset: int = 0,
) -> np.memmap:
    """Open a contiguous array stored in ``filename`` as an ``np.memmap``."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    span = _cached_span(filename, mode, offset, nbytes)
    if span is not None:
        return span.view(dtype).reshape(shape, order=order)
    return np.memmap(
        filename, dtype=dtype, mode=mode, offset=offset, shape=shape, order=order
    )


def _cached_span(filename: str, mode: str, offset: int, nbytes: int) -> Any:
    """Bytes [offset, offset + nbytes) of a cached shared mapping, or None.

    Shared modes only ("r", "r+"): a private "c" mapping is the task's own.
    Our own files only (``para_memmap.empty``, transported copies): they live
    in shared memory, whose pages the loky leak check is told to leave out; a
    user's memmap of a disk file keeps a mapping per task.
    """
    sweep()
    if mode not in ("r", "r+") or nbytes <= 0 or not is_ours(filename):
        return None
    root = open_mapping(filename, mode)
    if root is None or offset + nbytes > root.nbytes:
        return None
    return root[offset : offset + nbytes]


def rebuild_shared(
    filename: str, dtype: np.dtype, shape: tuple[int, ...], order: str, mode: str
) -> np.memmap:
    """Open one of our transported files: read-only ones share a mapping."""
    if mode == "r":
        return open_read_only(filename, dtype, shape, order)
    sweep()
    return np.memmap(filename, dtype=dtype, mode=mode, shape=shape, order=order)


def rebuild_view(
    filename: str,
    dtype: np.dtype,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    mode: str,
    file_offset: int,
    start: int,
    length: int,
) -> np.ndarray:
    """Open a strided view (any strides, even negative) of a mapped file."""
    span = _cached_span(filename, mode, file_offset, length)
    if span is None:
        span = np.memmap(
            filename, dtype=np.uint8, mode=mode, offset=file_offset, shape=(length,)
        )
    return np.ndarray(shape, dtype=dtype, buffer=span, offset=start, strides=strides)


def byte_chunks(a: np.ndarray) -> tuple[str, Any]:
    """The order a file of ``a`` is written in, and a factory of byte chunks.

    Contiguous arrays are written straight from their memory; others are
    copied in blocks along their first axis, C order.
    """
    if a.flags.c_contiguous or a.flags.f_contiguous:
        order = "C" if a.flags.c_contiguous else "F"
        # order="A" flattens a Fortran-ordered array without copying it.
        raw = memoryview(a.reshape(-1, order="A").view(np.uint8))

        def contiguous() -> Iterator[memoryview]:
            for i in range(0, raw.nbytes, CHUNK_BYTES):
                yield raw[i : i + CHUNK_BYTES]

        return order, contiguous

    row_bytes = max(1, a.nbytes // max(1, a.shape[0]))
    rows = max(1, CHUNK_BYTES // row_bytes)

    def strided() -> Iterator[Any]:
        for i in range(0, a.shape[0], rows):
            yield np.ascontiguousarray(a[i : i + rows]).view(np.uint8).reshape(-1)

    return "C", strided


def checksum(a: np.ndarray) -> int:
    """Checksum of the bytes a file of ``a`` holds (as written by byte_chunks)."""
    hasher = new_hasher()
    if a.flags.c_contiguous or a.flags.f_contiguous:
        # One call over the whole buffer: xxhash releases the GIL and runs at
        # memory speed, with no Python loop.
        hasher.update(memoryview(a.reshape(-1, order="A").view(np.uint8)))
    else:
        for chunk in byte_chunks(a)[1]():
            hasher.update(chunk)
    return hasher.intdigest()


def rebuild_result(
    filename: str, dtype: np.dtype, shape: tuple[int, ...], order: str
) -> np.ndarray:
    """Turn a result file into an ordinary writable array the caller owns.

    The file is mapped (no copy) and unlinked at once: its memory lives as
    long as the array, and no name is left behind for anybody to clean.
    """
    try:
        if os.name == "nt":  # a mapped file cannot be unlinked on Windows
            return np.fromfile(filename, dtype=dtype).reshape(shape, order=order)
        fd = os.open(filename, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            buffer = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(filename)
    return np.asarray(_MappedResult(buffer)).view(dtype).reshape(shape, order=order)


class _MappedResult:
    """Owner of a result's mapping, seen by numpy through __array_interface__.

    The mapping's file is already unlinked: hiding the mmap from the base chain
    makes the array an ordinary one (``has_shareable_memory`` is False and it
    is copied, not referenced, if passed to workers again).
    """

    __slots__ = ("__array_interface__", "_anchor", "_buffer")

    def __init__(self, buffer: mmap.mmap) -> None:
        self._buffer = buffer
        # The ctypes export pins the mapping for as long as this owner lives.
        self._anchor = ctypes.c_char.from_buffer(buffer)
        self.__array_interface__ = {
            "data": (ctypes.addressof(self._anchor), False),
            "shape": (len(buffer),),
            "typestr": "|u1",
            "version": 3,
        }
