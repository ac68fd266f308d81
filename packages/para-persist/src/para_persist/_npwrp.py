"""Array placeholders of the joblib file formats, and how their data is read.

This module's dotted name has exactly the length of ``joblib.numpy_pickle``
so the writer can rename the placeholder class in the pickle stream in place
(see ``_pickler``). Placeholders:

* :class:`NumpyArrayWrapper` (joblib >= 0.10): metadata pickled in the
  stream, raw array bytes right after it (after 1 + n padding bytes when
  ``numpy_array_alignment_bytes`` is set).
* :class:`NDArrayWrapper` (joblib 0.8-0.9): a sibling ``.npy`` file.
* :class:`ZNDArrayWrapper` (joblib 0.8-0.9 compressed): a sibling zlib
  "ZF" container with the array buffer.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
import zlib
from typing import Any

from . import _bigio, _checksum
from ._errors import CorruptFileError

__all__ = [
    "NUMPY_ARRAY_ALIGNMENT_BYTES",
    "NDArrayWrapper",
    "NumpyArrayWrapper",
    "ZNDArrayWrapper",
    "read_zfile",
    "write_zfile",
]

NUMPY_ARRAY_ALIGNMENT_BYTES = 16
_ZFILE_PREFIX = b"ZF"
_ZFILE_LEN_FIELD = len(f"{2**64:#x}")  # 19: hex length, space padded
_ZLIB_MAX_RATIO = 1032  # deflate cannot expand input more than this
_STREAM_CHUNK = 1024**2
# Array blocks up to this size are read with a para file's index.
SMALL_BLOCK = 64 * 1024


class NumpyArrayWrapper:
    """Metadata of an array whose raw bytes follow it in the file.

    Parameters
    ----------
    subclass : type
        ``numpy.ndarray`` or the subclass of the stored array.
    shape : tuple of int
        Array shape.
    order : {'C', 'F'}
        Memory order of the stored bytes.
    dtype : numpy.dtype
        Array dtype.
    allow_mmap : bool, default False
        Whether ``load(..., mmap_mode=...)`` may map the bytes.
    numpy_array_alignment_bytes : int or None, default 16
        Alignment of the data; ``None`` in files written before joblib 1.2.
    """

    def __init__(
        self,
        subclass: type,
        shape: tuple[int, ...],
        order: str,
        dtype: Any,
        allow_mmap: bool = False,
        numpy_array_alignment_bytes: int | None = NUMPY_ARRAY_ALIGNMENT_BYTES,
    ) -> None:
        self.subclass = subclass
        self.shape = shape
        self.order = order
        self.dtype = dtype
        self.allow_mmap = allow_mmap
        self.numpy_array_alignment_bytes = numpy_array_alignment_bytes

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CorruptFileError(f"bad array metadata {state!r}")
        self.__dict__.update(state)


class NDArrayWrapper:
    """Placeholder of joblib 0.8-0.9 for an array stored in a sibling file."""

    def __init__(self, filename: str, subclass: type, allow_mmap: bool = True):
        self.filename = filename
        self.subclass = subclass
        self.allow_mmap = allow_mmap

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CorruptFileError(f"bad array metadata {state!r}")
        self.__dict__.update(state)


class ZNDArrayWrapper(NDArrayWrapper):
    """Placeholder of joblib 0.8-0.9 for an array in a sibling "ZF" file."""

    def __init__(self, filename: str, init_args: tuple, state: tuple) -> None:  # type: ignore[override]
        self.filename = filename
        self.init_args = init_args
        self.state = state


def _np() -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        return np
    try:
        import numpy
    except ImportError:
        raise ImportError(
            "This file holds numpy arrays but numpy is not installed: "
            "`pip install numpy` (or `pip install para-persist[numpy]`)."
        ) from None
    return numpy


def _meta(w: Any) -> tuple[Any, Any, tuple[int, ...], str, int]:
    """Validate a placeholder's metadata before any allocation."""
    np = _np()
    d = w.__dict__
    dtype, shape = d.get("dtype"), d.get("shape")
    order, subclass = d.get("order", "C"), d.get("subclass", np.ndarray)
    if type(dtype) is not np.dtype and not isinstance(dtype, np.dtype):
        raise CorruptFileError(f"bad array dtype {dtype!r}")
    if type(shape) is not tuple:
        raise CorruptFileError(f"bad array shape {shape!r}")
    count = 1
    for n in shape:
        if (type(n) is not int and not isinstance(n, (int, np.integer))) or n < 0:
            raise CorruptFileError(f"bad array shape {shape!r}")
        count *= int(n)
    if order != "C" and order != "F":
        raise CorruptFileError(f"bad array order {order!r}; expected 'C' or 'F'")
    if subclass is not np.ndarray and not (
        isinstance(subclass, type) and issubclass(subclass, np.ndarray)
    ):
        raise CorruptFileError(f"bad array class {subclass!r}")
    return np, dtype, shape, order, count * dtype.itemsize


def _readinto_exact(f: Any, buf: Any, what: str, chunk: int = 0) -> None:
    if hasattr(buf, "dtype"):
        buf = buf.view("u1")  # datetime64 & co. export no buffer; bytes do
    with memoryview(buf) as view, view.cast("B") as out:
        n, got = len(out), 0
        while got < n:
            # Some decompressors allocate the whole request per call: ask
            # them for moderate chunks (chunk=0: no limit, for plain files).
            k = f.readinto(out[got : got + chunk] if chunk else out[got:])
            if not k:
                raise CorruptFileError(
                    f"file truncated: {what} needs {n} bytes, only {got} present"
                )
            got += k


# The byte-order mark numpy gives a dtype in the other order than this host's
# (it spells this host's order "=").
_FOREIGN = ">" if sys.byteorder == "little" else "<"


def _goes_native(dtype: Any) -> bool:
    """Whether joblib's loader turns an array of ``dtype`` to native order.

    Only the whole of a dtype in the foreign order is turned: a plain one, or
    a structured one whose top-level fields all are plain foreign types. A
    structured dtype with a native field, a field without byte order (bytes,
    bool), a nested structure or a sub-array field is left as stored, as
    joblib 1.6 leaves it; so is every dtype in this host's order.
    """
    if dtype.isnative:
        return False
    if dtype.byteorder == _FOREIGN:
        return True
    fields = dtype.fields
    if dtype.byteorder != "|" or not fields:
        return False
    return all(field[0].byteorder == _FOREIGN for field in fields.values())


def _finish(np: Any, arr: Any, subclass: type, native: bool) -> Any:
    if native and _goes_native(arr.dtype):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if subclass is not np.ndarray and subclass is not np.memmap:
        arr = arr.view(subclass)
    return arr


def _memmap(np: Any, ctx: Any, dtype: Any, shape: tuple, order: str, offset: int):
    mode = "r+" if ctx.mmap_mode == "w+" else ctx.mmap_mode  # never truncate
    # Read-only and copy-on-write maps use the descriptor already open, so a
    # file replaced meanwhile (atomic dump) cannot be mixed with this one.
    target = ctx.mapfile if mode in ("r", "c") and ctx.mapfile else ctx.filename
    return np.memmap(
        target, dtype=dtype, mode=mode, offset=offset, shape=shape, order=order
    )


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
        return _finish(
            np, _memmap(np, ctx, dtype, shape, order, data_offset), w.subclass, False
        )
    shuffle = w.__dict__.get("para_shuffle")
    buffer = getattr(f, "buffer", None)  # decompressed zstd stream in memory
    if buffer is not None:
        u8 = np.frombuffer(buffer, np.uint8, nbytes, data_offset)
        if shuffle is not None:
            _unshuffle_in_place(np, u8, shuffle, dtype.itemsize)
        flat = u8.view(dtype)
        return _finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)
    flat = np.empty(math.prod(shape), dtype=dtype)
    u8 = flat.view(np.uint8)
    if shuffle is None and nbytes >= _bigio.THREADED_MIN and _bigio.available(True):
        # Each thread checks the chunks it reads while they are in cache.
        sums = ctx.block_sums.get(offset)
        _bigio.read_at(f.fileno(), data_offset, u8, ctx.algo, sums)
        return _finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)
    f.seek(data_offset)
    if shuffle is not None:
        _read_shuffled(np, f, flat, shuffle)  # zstd: frames carry checksums
    else:
        _readinto_exact(f, flat, "array data")
        _checksum.check_block(ctx, offset, u8)
    return _finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)


def _read_segment(w: Any, ctx: Any, offset: int, length: int) -> Any:
    """Read (or map) a raw block of a para file, every check spelled out."""
    np, dtype, shape, order, nbytes = _meta(w)
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
    flat = np.frombuffer(small, dtype, count, start + 1 + pad).copy()
    return _finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)


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
    np = _np()
    asanyarray, ndarray, frombuffer = np.asanyarray, np.ndarray, np.frombuffer
    dtype_type = np.dtype
    prod = math.prod
    segments = ctx.segments
    n_segments = len(segments)
    small, starts = ctx.small
    in_memory = ctx.mmap_mode is None
    native = ctx.native

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
        arr = frombuffer(small, dtype, count, start + 1 + pad).copy()
        if len(shape) != 1:
            order = d.get("order", "C")
            if order != "C" and order != "F":
                raise CorruptFileError(
                    f"bad array order {order!r}; expected 'C' or 'F'"
                )
            arr = arr.reshape(shape, order=order)
        if native and not dtype.isnative and _goes_native(dtype):
            arr = arr.astype(dtype.newbyteorder("="))
        return arr

    return unwrap


def _read_stream(w: Any, ctx: Any, unpickler_factory: Any) -> Any:
    """Read the array of a joblib placeholder from where the stream stands."""
    if isinstance(w, NDArrayWrapper):
        return _read_sibling(w, ctx)
    np, dtype, shape, order, nbytes = _meta(w)
    f = ctx.stream
    if dtype.hasobject:
        # joblib pickles object arrays as a nested pickle after the wrapper.
        arr = unpickler_factory(f).load()
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
        arr = _memmap(np, ctx, dtype, shape, order, offset)
        f.seek(offset + nbytes)
        if not aligned and offset % NUMPY_ARRAY_ALIGNMENT_BYTES:
            _warn_unaligned(arr, ctx)
        if big:
            ctx.stream_blocks.append((None, _checksum.count(nbytes)))
        return _finish(np, arr, w.subclass, False)
    flat = np.empty(math.prod(shape), dtype=dtype)
    shuffle = w.__dict__.get("para_shuffle")
    if big:  # checked against the digests at the end of the stream
        u8 = flat.view(np.uint8) if shuffle is None else None
        ctx.stream_blocks.append((u8, _checksum.count(nbytes)))
    if shuffle is not None:
        _read_shuffled(np, f, flat, shuffle)
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
        _readinto_exact(f, flat, "array data", chunk)
    return _finish(np, flat.reshape(shape, order=order), w.subclass, ctx.native)


def _shuffle_step(shuffle: Any, itemsize: int) -> int:
    if (
        not isinstance(shuffle, tuple)
        or len(shuffle) != 2
        or shuffle[0] != itemsize
        or not isinstance(shuffle[1], int)
        or not 0 < shuffle[1] <= 1 << 24
    ):
        raise CorruptFileError(f"bad byte-shuffle metadata {shuffle!r}")
    return shuffle[1] * itemsize


def _unshuffle_in_place(np: Any, u8: Any, shuffle: Any, itemsize: int) -> None:
    """Undo para's zstd byte-shuffle in a buffer, one block of scratch."""
    step = _shuffle_step(shuffle, itemsize)
    if u8.size % itemsize:
        raise CorruptFileError("byte-shuffled block of a partial item")
    for i in range(0, u8.size, step):
        block = u8[i : i + step]
        scratch = block.copy()
        block.reshape(-1, itemsize)[...] = scratch.reshape(itemsize, -1).T


def _read_shuffled(np: Any, f: Any, flat: Any, shuffle: Any) -> None:
    """Read byte-shuffled blocks (para's zstd files) back into item order."""
    itemsize = flat.dtype.itemsize
    step = _shuffle_step(shuffle, itemsize)
    u8 = flat.view(np.uint8)
    scratch = np.empty(min(step, u8.size), dtype=np.uint8)
    for i in range(0, u8.size, step):
        n = min(step, u8.size - i)
        _readinto_exact(f, scratch[:n], "array data")
        u8[i : i + n].reshape(-1, itemsize)[...] = scratch[:n].reshape(itemsize, -1).T


def _sibling_path(w: Any, ctx: Any) -> str:
    name = w.__dict__.get("filename")
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if (
        not isinstance(name, str)
        or not name
        or os.path.basename(name) != name
        or name in (".", "..")
    ):
        raise CorruptFileError(f"bad sibling array file name {name!r}")
    return os.path.join(ctx.dirname, name)


def _read_sibling(w: Any, ctx: Any) -> Any:
    np = _np()
    ctx.sibling_arrays = True  # load warns that the format is deprecated
    path = _sibling_path(w, ctx)
    if isinstance(w, ZNDArrayWrapper):
        init_args = w.__dict__.get("init_args")
        state = w.__dict__.get("state")
        if (
            not isinstance(init_args, tuple)
            or len(init_args) != 3
            or not isinstance(init_args[0], type)
            or not issubclass(init_args[0], np.ndarray)
            or not isinstance(state, tuple)
        ):
            raise CorruptFileError(f"bad compressed array metadata in {path!r}")
        with open(path, "rb") as fh:
            data = read_zfile(fh)
        if ctx.rules is not None:  # safe load: the checking stand-ins
            arr = ctx.rules.reconstruct(*init_args)
            ctx.rules.build(arr, (*state, data))
            return arr
        from ._safe import check_array_state

        arr = _np_reconstruct(np)(*init_args)
        check_array_state(np, arr, (*state, data))
        arr.__setstate__((*state, data))
        return arr
    allow_mmap = w.__dict__.get("allow_mmap", True)
    mode = "r+" if ctx.mmap_mode == "w+" else ctx.mmap_mode  # never truncate
    arr = np.load(
        path,
        mmap_mode=mode if allow_mmap else None,
        allow_pickle=not ctx.safe,
    )
    subclass = w.__dict__.get("subclass", np.ndarray)
    if not (isinstance(subclass, type) and issubclass(subclass, np.ndarray)):
        raise CorruptFileError(f"bad array class {subclass!r}")
    # joblib turns these arrays native whatever load was asked (memory maps
    # included: they become arrays in memory then).
    return _finish(np, arr, subclass, True)


def _np_reconstruct(np: Any) -> Any:
    core = sys.modules.get("numpy._core.multiarray")
    if core is None:
        try:
            from numpy._core import multiarray as core
        except ImportError:  # numpy < 1.26
            from numpy.core import multiarray as core
    return core._reconstruct


def read_zfile(file_handle: Any) -> bytes:
    """Return the bytes held in a joblib < 0.10 zlib "ZF" container.

    Parameters
    ----------
    file_handle : binary file object
        Opened on the container, read from its start.

    Raises
    ------
    CorruptFileError
        If the header or the compressed data is damaged.
    """
    file_handle.seek(0)
    header = file_handle.read(len(_ZFILE_PREFIX) + _ZFILE_LEN_FIELD)
    if not header.startswith(_ZFILE_PREFIX):
        raise CorruptFileError("not a ZF container: missing b'ZF' prefix")
    try:
        length = int(header[len(_ZFILE_PREFIX) :], 16)
    except ValueError:
        raise CorruptFileError(f"bad ZF length field {header[2:]!r}") from None
    if file_handle.read(1) != b" ":
        file_handle.seek(len(header))
    compressed = file_handle.read()
    if length < 0 or length > _ZLIB_MAX_RATIO * len(compressed) + 64:
        raise CorruptFileError(
            f"ZF length field says {length} bytes, impossible for "
            f"{len(compressed)} compressed bytes"
        )
    try:
        data = zlib.decompressobj(15).decompress(compressed, length)
    except zlib.error as exc:
        raise CorruptFileError(f"damaged ZF container: {exc}") from exc
    if len(data) != length:
        raise CorruptFileError(
            f"ZF container holds {len(data)} bytes, header says {length}"
        )
    return data


def write_zfile(file_handle: Any, data: bytes, compress: int = 1) -> None:
    """Write ``data`` as a joblib < 0.10 zlib "ZF" container.

    Parameters
    ----------
    file_handle : binary file object
        Destination, written from its current position.
    data : bytes-like
        Payload.
    compress : int, default 1
        zlib level.
    """
    file_handle.write(_ZFILE_PREFIX)
    file_handle.write(f"{len(data):#x}".ljust(_ZFILE_LEN_FIELD).encode("ascii"))
    file_handle.write(zlib.compress(data, compress))
