"""Arrays of a checked para file, read by the C unpickler from the index.

``read_index`` (``_index``) has listed the file's raw array blocks
(``ctx.segments``) and holds the small ones in memory (``ctx.small``). Each
``NumpyArrayWrapper`` of the pickle is a :class:`SegmentPlaceholder`, and
the ``numpy.asanyarray`` call after it takes the next block in order::

    REDUCE asanyarray(placeholder, None) ─► segment_unwrapper's unwrap
        small native ndarray, no map ─► a copy out of ctx.small (inlined)
        anything else ─► _read_segment: checked_meta, then
            small block ─► a copy out of ctx.small
            big block ──► _read_big_segment: memory map; view of a buffer
                          holding the whole decompressed file; two-thread
                          read (_bigio) checked chunk by chunk; plain read
                          checked against the block's digests (_checksum)
"""

from __future__ import annotations

import math
from typing import Any

from . import _bigio, _checksum
from ._arrays import (
    charge,
    checked_meta,
    finish,
    goes_native,
    import_numpy,
    memmap,
    read_shuffled,
    readinto_exact,
    unshuffle_in_place,
)
from ._errors import CorruptFileError
from ._npwrp import SMALL_BLOCK

__all__ = ["SegmentPlaceholder", "segment_unwrapper"]


def _read_big_segment(
    w: Any,
    ctx: Any,
    np: Any,
    dtype: Any,
    shape: tuple,
    order: str,
    nbytes: int,
    offset: int,
) -> Any:
    """Map, or read with plain system calls, one raw block of the file."""
    length = ctx.segments[ctx.seg_i - 1][1]
    f = ctx.file
    f.seek(offset)
    pad = f.read(1)
    if len(pad) != 1 or length != 1 + pad[0] + nbytes:
        raise CorruptFileError(
            f"array block at offset {offset} has {length} bytes, "
            f"metadata says {nbytes} (+ padding)"
        )
    data_offset = offset + 1 + pad[0]
    if ctx.mmap_mode is not None and w.__dict__.get("allow_mmap"):
        return finish(
            np, memmap(np, ctx, dtype, shape, order, data_offset), w.subclass, False
        )
    shuffle = w.__dict__.get("para_shuffle")
    buffer = getattr(f, "buffer", None)  # decompressed zstd stream in memory
    if buffer is not None:
        u8 = np.frombuffer(buffer, np.uint8, nbytes, data_offset)
        if shuffle is not None:
            unshuffle_in_place(np, u8, shuffle, dtype.itemsize)
        flat = u8.view(dtype)
        return finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)
    charge(ctx, nbytes)
    flat = np.empty(math.prod(shape), dtype=dtype)
    u8 = flat.view(np.uint8)
    if shuffle is None and nbytes >= _bigio.THREADED_MIN and _bigio.available(True):
        # Each thread checks the chunks it reads while they are in cache.
        sums = ctx.block_sums.get(offset)
        _bigio.read_at(f.fileno(), data_offset, u8, ctx.algo, sums)
        return finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)
    f.seek(data_offset)
    if shuffle is not None:
        read_shuffled(np, f, flat, shuffle)  # zstd: frames carry checksums
    else:
        readinto_exact(f, flat, "array data")
        _checksum.check_block(ctx, offset, u8)
    return finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)


def _read_segment(w: Any, ctx: Any, offset: int, length: int) -> Any:
    """Read (or map) a raw block of a para file, every check spelled out."""
    np, dtype, shape, order, nbytes = checked_meta(w)
    if dtype.hasobject:
        raise CorruptFileError("object array placeholder in a raw segment")
    small, starts = ctx.small
    start = _small_start(starts, offset, length)
    if start is None or ctx.mmap_mode is not None or "para_shuffle" in w.__dict__:
        return _read_big_segment(w, ctx, np, dtype, shape, order, nbytes, offset)
    pad = small[start]
    if length != 1 + pad + nbytes:
        raise CorruptFileError(
            f"array block at offset {offset} has {length} bytes, "
            f"metadata says {nbytes} (+ padding)"
        )
    count = nbytes // dtype.itemsize if dtype.itemsize else 0
    charge(ctx, nbytes)
    flat = np.frombuffer(small, dtype, count, start + 1 + pad).copy()
    return finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)


def _small_start(starts: dict[int, int] | None, offset: int, length: int) -> Any:
    """Where a small block starts in ``ctx.small`` (None: not held there).

    ``starts`` is None when the buffer is the whole file: offsets are then
    positions in it, and every block up to ``SMALL_BLOCK`` bytes is small.
    """
    if starts is None:
        return offset if length <= SMALL_BLOCK else None
    return starts.get(offset)


class SegmentPlaceholder:
    """``NumpyArrayWrapper`` of a para file read by the C unpickler.

    No ``__setstate__``: BUILD fills the instance dict in C, and the
    ``numpy.asanyarray`` REDUCE right after it (see :func:`segment_unwrapper`)
    reads the array from the file's next raw block.
    """


def segment_unwrapper(ctx: Any) -> Any:
    """``numpy.asanyarray`` for the C unpickler of a checked para file.

    The arguments of the REDUCE are ``(placeholder, None)``: the array is
    read from the next raw block listed in the index. The common case (a
    small native array held in memory) is inlined; anything else takes
    :func:`_read_segment` with its full checks.
    """
    np = import_numpy()
    asanyarray, ndarray, frombuffer = np.asanyarray, np.ndarray, np.frombuffer
    dtype_type = np.dtype
    prod = math.prod
    segments = ctx.segments
    n_segments = len(segments)
    small, starts = ctx.small
    in_memory = ctx.mmap_mode is None
    native = ctx.native
    budget = ctx.budget

    def unwrap(a: Any, *args: Any) -> Any:
        if not isinstance(a, SegmentPlaceholder):
            return asanyarray(a, *args)
        i = ctx.seg_i
        if i >= n_segments:
            raise CorruptFileError("file has more arrays than raw array blocks")
        ctx.seg_i = i + 1
        offset, length = segments[i]
        d = a.__dict__
        dtype, shape = d.get("dtype"), d.get("shape")
        start = _small_start(starts, offset, length)
        if (
            start is None
            or not in_memory
            or type(shape) is not tuple
            or not isinstance(dtype, dtype_type)
            or dtype.hasobject
            or not dtype.itemsize
            or "para_shuffle" in d
            or d.get("subclass", ndarray) is not ndarray
        ):
            return _read_segment(a, ctx, offset, length)
        count = prod(shape)
        pad = small[start]
        if type(count) is not int or length != 1 + pad + count * dtype.itemsize:
            raise CorruptFileError(
                f"array block at offset {offset} has {length} bytes, "
                f"metadata says {shape} x {dtype.itemsize} (+ padding)"
            )
        if budget is not None:
            budget.take(count * dtype.itemsize, "array data")
        arr = frombuffer(small, dtype, count, start + 1 + pad).copy()
        if len(shape) != 1:
            order = d.get("order", "C")
            if order != "C" and order != "F":
                raise CorruptFileError(
                    f"bad array order {order!r}; expected 'C' or 'F'"
                )
            arr = arr.reshape(shape, order=order)
        if native and not dtype.isnative and goes_native(dtype):
            arr = arr.astype(dtype.newbyteorder("="))
        return arr

    return unwrap
