"""``load``'s reading: what the file is, and which path reads it.

::

    open_source ─► small para file by path: read whole (one read)
                └► else the file opened by path, or the user's object
    load_from ─► first bytes ─┬─ "ZF" (joblib < 0.10) ─► read_zfile ─► stream
                              │                          unpickler
                              ├─ compressor magic ─► zstd frames of known
                              │    size: decompressed side by side into one
                              │    buffer; else the decompressor ─►
                              │    _load_compressed
                              ├─ para HEAD, by path ─► fast_load
                              └─ anything else (joblib files, para files
                                 given as objects) ─► stream unpickler
    _load_compressed ─► para stream of moderate size: read ahead, whole ─►
                        fast_load; else the stream unpickler, then the
                        decompressor read to its end (its checksum)
    fast_load ─► _index.read_index (footer, table, sums) ─► C unpickler
                 (or the safe one) on the checked pickle bytes

The byte budget (``ctx.budget``) is charged where each whole buffer is
made: ``fast_load`` for a file or stream held in memory, ``load_from``
before it decompresses zstd frames, ``read_zfile`` before it inflates a ZF
container, ``_load_compressed`` for bytes after the end of the pickle.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from typing import Any

from . import _compressors, _zstdframes
from ._compat import read_zfile
from ._errors import CorruptFileError
from ._fileobj import CHUNK, compressed_size, regular_file_size, start_of
from ._index import (
    BufferFile,
    Resumed,
    SummedStream,
    mark_writable,
    read_ahead,
    read_index,
    skip_trailer,
)
from ._pickler import HEAD
from ._unpickler import _Ctx, _FastUnpickler, _SafeUnpickler, stream_unpickler

__all__ = ["fast_load", "load_from", "open_source", "warn_old_format"]

# Reading: big enough for the pickle opcodes between arrays (array data is
# read straight into its buffer), small enough that peeking at the header
# of a memory-mapped load does not read a megabyte of it.
_READ_BUFFER = 64 * 1024
# zstd para streams of known size up to this are decompressed in memory and
# checked before the C unpickler reads them. dump writes the size for streams
# under the same bound; a forged size costs at most this much memory.
_IN_MEMORY = _compressors._ZSTD_THREADED_MIN
# Other compressed para streams that may be this small are read ahead into
# memory: whole if they are, else the look-ahead is the extra memory a load
# holds.
_READ_AHEAD = 8 * 1024**2
# Uncompressed para files up to this size are read whole by ``load``.
_WHOLE_FILE = 1024**2
_O_FLAGS = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_readv = getattr(os, "readv", None)


def _read_small(filename: Any) -> bytearray | None:
    """The bytes of a regular file of at most ``_WHOLE_FILE`` bytes, else None.

    Plain descriptor calls: no file object, a single fstat, one read.
    """
    fd = os.open(filename, os.O_RDONLY | _O_FLAGS)
    try:
        st = os.fstat(fd)
        size = st.st_size
        if size > _WHOLE_FILE or not stat.S_ISREG(st.st_mode):
            return None
        if _readv is None:  # Windows
            return bytearray(os.read(fd, size))
        buf = bytearray(size)
        view, got = memoryview(buf), 0
        while got < size:
            n = _readv(fd, [view[got:]])
            if not n:
                break  # shrank meanwhile: the index check reports it
            got += n
        del view
        del buf[got:]
        return buf
    finally:
        os.close(fd)


def open_source(
    filename: Any, ctx: _Ctx, is_path: bool, mmap_mode: str | None
) -> tuple[Any, bytearray | None]:
    """What ``load`` reads: the whole of a small para file (second item), else
    the file opened by path (first item: the caller closes it) or the user's
    object itself."""
    buf = None
    if is_path and mmap_mode is None:
        # Small para files (every cache hit of a scalar result): open, fstat,
        # one read, close; index, CRC and unpickling then run in memory.
        buf = _read_small(filename)
        if buf is not None and not buf.startswith(HEAD):
            buf = None
    f = filename
    if is_path and buf is None:
        f = open(filename, "rb", buffering=_READ_BUFFER)  # noqa: SIM115
        ctx.mapfile = f
    return f, buf


def fast_load(f: Any, size: int, ctx: _Ctx) -> Any:
    """Check the index of a para file and run the C unpickler on it."""
    if ctx.budget is not None and getattr(f, "buffer", None) is not None:
        ctx.budget.take(size, "the file held in memory")  # read or decompressed
    data = read_index(f, size, ctx)
    ctx.in_memory = True  # the pickle bytes were counted by read_index
    if ctx.mmap_mode in ("r+", "w+"):
        mark_writable(ctx, size)
    # Big arrays are read with plain syscalls straight into their buffer;
    # the buffered reader is not used past this point.
    ctx.file = getattr(f, "raw", f)
    # Safe loads: the same checked bytes, read by the checking unpickler.
    unpickler = _SafeUnpickler if ctx.safe else _FastUnpickler
    stream = io.BytesIO(data)
    obj = unpickler(stream, ctx).load()
    if ctx.seg_i != len(ctx.segments or ()):
        raise CorruptFileError("file has more raw array blocks than arrays")
    if stream.tell() != len(data):
        raise CorruptFileError("file has data after the end of its pickle")
    if ctx.rules is not None and ctx.rules.placeholders:
        raise CorruptFileError("array placeholder without its data")
    return obj


def _load_compressed(dec: Any, ctx: _Ctx, compressed: int | None = None) -> Any:
    """Unpickle a decompressed stream (``compressed``: its size in the file,
    if known)."""
    peek = getattr(dec, "peek", None)
    para = peek is not None and peek(len(HEAD))[: len(HEAD)] == HEAD
    if para and (compressed is None or compressed <= _READ_AHEAD):
        # Most compressed para files are small (a fitted model): read whole,
        # checked, and run through the C unpickler, several times faster
        # than the pure-Python one a stream needs. A stream that turns out
        # bigger is read on from where the look-ahead stopped.
        head, whole = read_ahead(dec, _READ_AHEAD)
        if whole:
            return fast_load(BufferFile(head), len(head), ctx)
        dec = Resumed(head, dec)
    stream = SummedStream(dec) if para else dec
    ctx.stream = stream
    ctx.para_stream = para
    obj = stream_unpickler(stream, ctx).load()
    if para:
        skip_trailer(stream, ctx)
    # Read to the end so the compressor checks its end marker and checksum:
    # a truncated file must not pass unnoticed.
    budget = ctx.budget
    while True:
        if budget is not None:  # trailing bytes count: a bomb may hide there
            budget.check(1, "data after the end of the pickle")
        tail = dec.read(CHUNK)
        if not tail:
            return obj
        if budget is not None:
            budget.take(len(tail), "data after the end of the pickle")


def _warn_mmap_ignored(f: Any, kind: str | None, mmap_mode: str) -> None:
    """joblib's warnings for ``mmap_mode`` with a file object (never mapped)."""
    if kind is not None and kind != "compat":
        msg = (
            f'mmap_mode "{mmap_mode}" is not compatible with compressed file '
            f'{getattr(f, "name", "")}. "{mmap_mode}" flag will be ignored.'
        )
    elif isinstance(f, io.BytesIO):
        msg = (
            f'In memory persistence is not compatible with mmap_mode "{mmap_mode}" '
            "flag passed. mmap_mode option will be ignored."
        )
    elif not isinstance(getattr(f, "raw", f), io.FileIO):
        msg = (
            f'"{f!r}" is not a raw file, mmap_mode "{mmap_mode}" flag will be ignored.'
        )
    else:
        return  # an open file: read in memory, silently, as joblib does
    warnings.warn(msg, stacklevel=4)


def warn_old_format(ctx: _Ctx, stacklevel: int) -> None:
    """joblib's DeprecationWarning for a file written by joblib < 0.10."""
    warnings.warn(
        f"The file '{ctx.filename or ''}' has been generated with a joblib "
        "version less than 0.10. Please regenerate this pickle file.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def load_from(f: Any, ctx: _Ctx, is_path: bool, mmap_asked: Any = None) -> Any:
    n = max(_compressors._max_prefix_len(), len(HEAD))
    user_f = f
    if is_path:
        if hasattr(f, "peek"):
            head = f.peek(n)[:n]
        else:
            start = f.tell()
            head = f.read(n)
            f.seek(start)
    else:
        f, head = start_of(f, n)
    kind = _compressors._detect(head)
    if mmap_asked is not None:
        _warn_mmap_ignored(user_f, kind, mmap_asked)
    if kind == "compat":
        warn_old_format(ctx, stacklevel=4)
        stream = io.BytesIO(read_zfile(f, ctx.budget))
        ctx.stream, ctx.file_size, ctx.mmap_mode = stream, None, None
        ctx.in_memory = True  # counted by read_zfile
        obj = stream_unpickler(stream, ctx).load()
        ctx.sibling_arrays = False  # warned already
        return obj
    if kind is not None:
        if ctx.mmap_mode is not None:
            warnings.warn(
                f'mmap_mode "{ctx.mmap_mode}" is not compatible with compressed '
                f'file {ctx.filename}. "{ctx.mmap_mode}" flag will be ignored.',
                stacklevel=3,
            )
            ctx.mmap_mode = None
        if kind == "zstd" and hasattr(f, "seekable") and f.seekable():
            start = f.tell()
            found = _zstdframes.frames(f, start, f.seek(0, io.SEEK_END))
            total = sum(size for _, _, size in found)
            if 0 < total <= _IN_MEMORY and all(size >= 0 for _, _, size in found):
                # Frames of known, moderate size: decompressed (side by side)
                # straight into the buffer the arrays will be views of.
                if ctx.budget is not None:
                    ctx.budget.check(total, "the decompressed zstd stream")
                buf = _zstdframes.decompress_into(f, found)
                if buf.startswith(HEAD):
                    return fast_load(BufferFile(buf), total, ctx)
                del buf
            f.seek(start)  # the stream unpickler reads the rest
        compressed = compressed_size(f)
        dec = _compressors._COMPRESSORS[kind].decompressor_file(f)
        try:
            return _load_compressed(dec, ctx, compressed)
        finally:
            dec.close()
    if is_path and head.startswith(HEAD):
        return fast_load(f, os.fstat(f.fileno()).st_size, ctx)
    # Bounds array sizes by what is left in a regular file; other streams
    # (sockets, pipes, decompressors, user objects) are read to their end.
    ctx.file_size = regular_file_size(f)
    ctx.para_stream = head.startswith(HEAD)
    stream = SummedStream(f) if ctx.para_stream else f
    ctx.stream = stream
    obj = stream_unpickler(stream, ctx).load()
    if ctx.para_stream:
        skip_trailer(stream, ctx)
    return obj
