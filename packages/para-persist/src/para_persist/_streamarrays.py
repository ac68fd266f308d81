"""Arrays read from where a stream stands: joblib files, compressed streams,
file objects.

The pure-Python unpickler (``_StreamUnpickler`` of ``_unpickler``) meets a
placeholder and calls :func:`read_stream`, which reads the array's bytes
that follow it in the stream::

    NDArrayWrapper / ZNDArrayWrapper ─► _compat.read_sibling (sibling files)
    NumpyArrayWrapper, object dtype ──► the nested pickle that follows
    NumpyArrayWrapper ─► padding header ─► _read_stream_data:
        bounded by what is left of a regular file; checked_meta, charge
        memory map (a file by path) ─► joblib's warning if unaligned
        byte-shuffled ─► read_shuffled
        big block of a plain file by path ─► _bigio two-thread read
        else ─► readinto_exact (1 MiB at a time from a stream of unknown size)

In a para file read as a stream (``SummedStream``), the structure, the small
blocks and the big blocks are summed apart as the writer summed them, and
big blocks are checked against the digests at the end of the stream.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from . import _bigio, _checksum
from ._arrays import (
    charge,
    checked_meta,
    finish,
    memmap,
    read_shuffled,
    readinto_exact,
)
from ._compat import read_sibling
from ._errors import CorruptFileError, LoadLimitError
from ._npwrp import NUMPY_ARRAY_ALIGNMENT_BYTES, SMALL_BLOCK, NDArrayWrapper

__all__ = ["read_stream"]

_STREAM_CHUNK = 1024**2
# Object arrays' pickles nested in one another (joblib writes one level).
_MAX_NESTED_PICKLES = 32


def read_stream(w: Any, ctx: Any, unpickler_factory: Any) -> Any:
    """Read the array of a joblib placeholder from where the stream stands."""
    if isinstance(w, NDArrayWrapper):
        return read_sibling(w, ctx)
    np, dtype, shape, order, nbytes = checked_meta(w)
    f = ctx.stream
    if dtype.hasobject:
        # joblib pickles object arrays as a nested pickle after the wrapper.
        if ctx.nested_pickles >= _MAX_NESTED_PICKLES:
            raise LoadLimitError(
                f"object arrays nested more than {_MAX_NESTED_PICKLES} pickles "
                "deep (joblib writes one level): refused before the recursion "
                "overflows. The file is not one joblib or para-persist wrote."
            )
        ctx.nested_pickles += 1
        try:
            arr = unpickler_factory(f).load()
        finally:
            ctx.nested_pickles -= 1
        if not isinstance(arr, np.ndarray):
            raise CorruptFileError(f"expected an object array, got {type(arr)}")
        return arr
    aligned = w.__dict__.get("numpy_array_alignment_bytes") is not None
    sum_into = getattr(f, "sum_into", None)  # a para stream's summing reader
    if sum_into is not None:
        sum_into(None)
    big = False
    if aligned:
        header = f.read(1)
        if len(header) != 1:
            raise CorruptFileError("file truncated in array padding")
        header += f.read(header[0])
        if len(header) != 1 + header[0]:
            raise CorruptFileError("file truncated in array padding")
        big = len(header) + nbytes > SMALL_BLOCK
        if big:  # a para stream lists the digests of its big blocks
            ctx.stream_digests += _checksum.count(nbytes)
    if sum_into is not None:
        # As the writer summed: a small block whole, a big one's header.
        f.add(header, small=not big)
        sum_into(None if big else "small")
        try:
            return _read_stream_data(w, ctx, f, np, dtype, shape, order, nbytes, big)
        finally:
            sum_into("structure")
    return _read_stream_data(w, ctx, f, np, dtype, shape, order, nbytes, big)


def _warn_unaligned(arr: Any, ctx: Any) -> None:
    """joblib's warning for a map of an array of a joblib < 1.2 file that
    does not start on a multiple of 16 bytes (no padding then)."""
    name = getattr(ctx.mapfile, "name", ctx.filename)  # the path as given
    warnings.warn(
        f"The memmapped array {arr} loaded from the file {name} is not byte "
        "aligned. This may cause segmentation faults if this memmapped array "
        "is used in some libraries like BLAS or PyTorch. To get rid of this "
        "warning, regenerate your pickle file with joblib >= 1.2.0. See "
        "https://github.com/joblib/joblib/issues/563 for more details",
        stacklevel=2,
    )


def _read_stream_data(
    w: Any,
    ctx: Any,
    f: Any,
    np: Any,
    dtype: Any,
    shape: tuple,
    order: str,
    nbytes: int,
    big: bool,
) -> Any:
    aligned = w.__dict__.get("numpy_array_alignment_bytes") is not None
    if ctx.file_size is not None and f.tell() + nbytes > ctx.file_size:
        raise CorruptFileError(
            f"array of {nbytes} bytes does not fit in the "
            f"{ctx.file_size - f.tell()} bytes left in the file"
        )
    if ctx.mmap_mode is not None and w.__dict__.get("allow_mmap"):
        offset = f.tell()
        arr = memmap(np, ctx, dtype, shape, order, offset)
        f.seek(offset + nbytes)
        if not aligned and offset % NUMPY_ARRAY_ALIGNMENT_BYTES:
            _warn_unaligned(arr, ctx)
        if big:
            ctx.stream_blocks.append((None, _checksum.count(nbytes)))
        return finish(np, arr, w.subclass, False)
    charge(ctx, nbytes)  # before allocating: the stream may be a bomb
    flat = np.empty(math.prod(shape), dtype=dtype)
    shuffle = w.__dict__.get("para_shuffle")
    if big:  # checked against the digests at the end of the stream
        u8 = flat.view(np.uint8) if shuffle is None else None
        ctx.stream_blocks.append((u8, _checksum.count(nbytes)))
    if shuffle is not None:
        read_shuffled(np, f, flat, shuffle)
    elif (
        nbytes >= _bigio.THREADED_MIN
        and ctx.file_size is not None
        and ctx.filename is not None
        and _bigio.available(True)
    ):
        # A plain file opened by path (a joblib file): two threads read it.
        offset = f.tell()
        _bigio.read_at(f.fileno(), offset, flat.view(np.uint8))
        f.seek(offset + nbytes)
    else:
        chunk = 0 if ctx.file_size is not None else _STREAM_CHUNK
        readinto_exact(f, flat, "array data", chunk)
    return finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)
