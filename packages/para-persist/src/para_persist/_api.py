"""``dump`` and ``load``: argument handling, atomic writes, format dispatch.

::

    dump ─► parse compress ─► temp file in the target folder
         ─► [compressor file] ─► _pickler.write_stream ─► fsync ─► os.replace

    load ─► magic bytes ─┬─ "ZF" (joblib < 0.10) ─────────► stream unpickler
                         ├─ compressor magic ─► decompress ► stream unpickler
                         ├─ para HEAD + path ─► check index ► C unpickler
                         └─ anything else (joblib files) ──► stream unpickler
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import pickle
import secrets
import stat
import warnings
from collections.abc import Iterable
from typing import Any

from . import _bigio, _compressors, _zstdframes
from ._compat import read_zfile
from ._compressors import LZ4_NOT_INSTALLED_ERROR, ZSTD_NOT_INSTALLED_ERROR
from ._errors import CorruptFileError, LoadLimitError, UnsafeLoadError
from ._index import (
    BufferFile,
    Resumed,
    SummedStream,
    mark_writable,
    read_ahead,
    read_index,
    skip_trailer,
)
from ._limits import default_max_bytes
from ._pickler import HEAD, write_stream
from ._unpickler import (
    _Ctx,
    _FastUnpickler,
    _SafeUnpickler,
    normalize_allowed,
    stream_unpickler,
)

__all__ = ["dump", "load"]

_MMAP_MODES = (None, "r+", "r", "w+", "c")
_BUFFER = 1024**2
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


def _parse_compress(compress: Any, filename: Any) -> tuple[str, int | None] | None:
    """Return ``(method, level)`` or None for no compression, as joblib does."""
    method: str | None = "zlib"
    explicit = False
    if compress is True:
        level: Any = None
    elif isinstance(compress, tuple):
        if len(compress) != 2:
            raise ValueError(
                "Compress argument tuple should contain exactly 2 elements: "
                f"(compress method, compress level), you passed {compress!r}"
            )
        method, level = compress
        explicit = True
    elif isinstance(compress, str):
        method, level, explicit = compress, None, True
    else:
        level = compress
    # joblib's order for lz4 (availability, then level); zstd is ours, and a
    # bad level is reported first whether or not zstandard is installed.
    if method == "lz4" and not _compressors._is_available("lz4"):
        raise ValueError(LZ4_NOT_INSTALLED_ERROR)
    levels = range(1, 23) if method == "zstd" else range(10)
    if (level is not None and level is not False and level != 0) and (
        isinstance(level, bool) or not isinstance(level, int) or level not in levels
    ):
        raise ValueError(
            f'Non valid compress level given: "{level}". Possible values '
            f"are {list(range(10))} (1 to 22 for zstd), True or False."
        )
    if method == "zstd" and not _compressors._is_available("zstd"):
        raise ValueError(ZSTD_NOT_INSTALLED_ERROR)
    if method not in _compressors._COMPRESSORS:
        raise ValueError(
            f'Non valid compression method given: "{method}". Possible '
            f"values are {sorted(_compressors._COMPRESSORS)}."
        )
    if isinstance(filename, str) and not explicit:
        # The extension picks the method unless compress named one.
        for name, wrapper in _compressors._COMPRESSORS.items():
            if wrapper.extension and filename.endswith(wrapper.extension):
                method = name
                if level == 0:
                    level = None
                break
    if level == 0 or level is False:
        return None
    return method or "zlib", level


def _resolve_protocol(protocol: Any) -> int:
    if protocol is None or (isinstance(protocol, int) and protocol < 0):
        return pickle.HIGHEST_PROTOCOL
    if (
        isinstance(protocol, bool)
        or not isinstance(protocol, int)
        or protocol > pickle.HIGHEST_PROTOCOL
    ):
        raise ValueError(
            f"pickle protocol must be an int <= {pickle.HIGHEST_PROTOCOL} or "
            f"None, got {protocol!r}"
        )
    return protocol


def _write_to(
    value: Any,
    raw: Any,
    comp: tuple[str, int | None] | None,
    proto: int,
    own_file: bool = False,
) -> None:
    try:
        base = raw.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        base = 0
    if comp is None:
        big = None
        if own_file and _bigio.available(reading=False):

            def big(u8: Any, algo: int) -> list[int]:
                # The temp file dump opened: big arrays go in with two
                # threads at their offset, then the file object moves on.
                raw.flush()
                pos = raw.tell()
                digests = _bigio.write_at(raw.fileno(), pos, u8, algo)
                raw.seek(pos + u8.size)
                return digests

        write_stream(value, raw, proto, base, sliced=False, shuffle=False, big=big)
        return
    method, level = comp
    cfile = _compressors._COMPRESSORS[method].compressor_file(raw, compresslevel=level)
    # Compressors work best on ~1 MiB pieces: buffer the pickler's frames,
    # and feed big arrays in slices of that size. zstd keeps what it is
    # given until the stream is big (see ZstdFile): no buffer in front.
    if method == "zstd":
        out = cfile
    else:
        out = io.BufferedWriter(cfile, buffer_size=_BUFFER)
    try:
        # zstd files are para's own (joblib cannot read zstd), so arrays in
        # them may be byte-shuffled when that compresses better.
        write_stream(value, out, proto, 0, sliced=True, shuffle=method == "zstd")
    finally:
        out.close()


def dump(
    value: Any, filename: Any, compress: Any = 0, protocol: int | None = None
) -> list[str] | None:
    """Persist an arbitrary Python object into one file, numpy arrays raw.

    The file is joblib's format: ``joblib.load`` (>= 1.2) reads it, for
    every compressor joblib knows. Writing to a path is atomic: the data goes
    to a temporary file in the same folder, is flushed and fsynced, then
    renamed over ``filename``; on any error the previous file is untouched.

    Parameters
    ----------
    value : object
        The object to store.
    filename : str, os.PathLike or binary file object
        Destination. With a path ending in ``.z .gz .bz2 .lzma .xz .lz4`` or
        ``.zst`` the matching compressor is used unless ``compress`` names one.
    compress : bool, int 0-9, str or (str, int), default 0
        False/0: no compression; True: zlib level 3... as joblib (level
        ``None`` means the compressor's default); an int: zlib at that level;
        a name (``'zlib', 'gzip', 'bz2', 'lzma', 'xz', 'lz4', 'zstd'``) or a
        ``(name, level)`` tuple. zstd accepts levels 1-22 and compresses on
        all cores.
    protocol : int, optional
        Pickle protocol; default the highest. Arrays are written raw (and
        can be memory-mapped on load) with protocol 5.

    Returns
    -------
    list of str or None
        ``[filename]`` when given a path; ``None`` for a file object, as in
        joblib.

    Raises
    ------
    ValueError
        Bad ``compress`` value, unknown method, missing lz4/zstandard, or a
        ``filename`` that is neither a path nor a writable file object.

    Examples
    --------
    >>> import para_persist
    >>> para_persist.dump({"a": [1, 2, 3]}, "data.pkl")  # doctest: +SKIP
    ['data.pkl']
    >>> para_persist.dump(big_array, "data.pkl.zst")  # doctest: +SKIP
    ['data.pkl.zst']
    """
    if isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    is_path = isinstance(filename, str)
    if not is_path and not hasattr(filename, "write"):
        raise ValueError(
            "Second argument should be a filename (str or os.PathLike) or a "
            f"binary file object with a write method, {filename!r} "
            f"(type {type(filename).__name__}) was given."
        )
    comp = _parse_compress(compress, filename)
    proto = _resolve_protocol(protocol)
    if not is_path:
        _write_to(value, filename, comp, proto)
        return None
    folder = os.path.dirname(os.path.abspath(filename))
    base = os.path.basename(filename)
    while True:
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            # Read-write: big arrays are copied in through a shared mapping.
            raw = open(tmp, "xb+", buffering=_BUFFER)  # noqa: SIM115 - closed below
            break
        except FileExistsError:  # pragma: no cover - 48-bit random name
            continue
    try:
        with raw:
            _write_to(value, raw, comp, proto, own_file=True)
            raw.flush()
            os.fsync(raw.fileno())
        old = _bigio.hold_replaced(filename)
        try:
            os.replace(tmp, filename)
        finally:
            _bigio.release(old)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return [filename]


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


def _fast_load(f: Any, size: int, ctx: _Ctx) -> Any:
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
            return _fast_load(BufferFile(head), len(head), ctx)
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
        tail = dec.read(_BUFFER)
        if not tail:
            return obj
        if budget is not None:
            budget.take(len(tail), "data after the end of the pickle")


def _compressed_size(f: Any) -> int | None:
    """Bytes left in seekable ``f`` (None: unknown)."""
    try:
        if not f.seekable():
            return None
        start = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(start)
    except (AttributeError, OSError, ValueError):
        return None
    return end - start


def _regular_file_size(f: Any) -> int | None:
    raw = getattr(f, "raw", f)
    if not isinstance(raw, io.FileIO):
        return None
    try:
        st = os.fstat(raw.fileno())
    except (OSError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _read_exact(f: Any, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end of the stream."""
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _is_seekable(f: Any) -> bool:
    try:
        return bool(f.seekable()) and isinstance(f.tell(), int)
    except (AttributeError, OSError, ValueError):
        return False


def _start_of(f: Any, n: int) -> tuple[Any, bytes]:
    """The stream to unpickle from a user's file object, and its first bytes.

    A seekable object is read from where it stands, except at its end: then
    from its start, as joblib does (it reads a BytesIO right after a dump
    into it). A stream that cannot seek (socket, pipe, any object with only
    ``read``) is read once; the bytes taken to detect the format are put in
    front of the rest.
    """
    if _is_seekable(f):
        start = f.tell()
        head = _read_exact(f, n)
        if not head and start:
            start = 0
            f.seek(0)
            head = _read_exact(f, n)
        f.seek(start)
        return f, head
    head = _read_exact(f, n)
    return _Prefixed(head, f), head


class _Prefixed:
    """A non-seekable stream whose first bytes were read ahead; every read
    returns the asked size unless the stream ends (pipes return less)."""

    def __init__(self, head: bytes, f: Any) -> None:
        self._head = head
        self._f = f
        self.name = getattr(f, "name", None)

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            out = self._head + _read_all(self._f)
            self._head = b""
            return out
        out = self._head[:n]
        self._head = self._head[n:]
        if len(out) < n:
            out += _read_exact(self._f, n - len(out))
        return out

    def readinto(self, b: Any) -> int:
        m = memoryview(b).cast("B")
        data = self.read(len(m))
        m[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            c = self.read(1)
            out += c
            if not c or c == b"\n":
                break
        return bytes(out)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def _read_all(f: Any) -> bytes:
    parts = []
    while True:
        chunk = f.read(_BUFFER)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


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


def _warn_old_format(ctx: _Ctx, stacklevel: int) -> None:
    """joblib's DeprecationWarning for a file written by joblib < 0.10."""
    warnings.warn(
        f"The file '{ctx.filename or ''}' has been generated with a joblib "
        "version less than 0.10. Please regenerate this pickle file.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def _load_from(f: Any, ctx: _Ctx, is_path: bool, mmap_asked: Any = None) -> Any:
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
        f, head = _start_of(f, n)
    kind = _compressors._detect(head)
    if mmap_asked is not None:
        _warn_mmap_ignored(user_f, kind, mmap_asked)
    if kind == "compat":
        _warn_old_format(ctx, stacklevel=4)
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
                    return _fast_load(BufferFile(buf), total, ctx)
                del buf
            f.seek(start)  # the stream unpickler reads the rest
        compressed = _compressed_size(f)
        dec = _compressors._COMPRESSORS[kind].decompressor_file(f)
        try:
            return _load_compressed(dec, ctx, compressed)
        finally:
            dec.close()
    if is_path and head.startswith(HEAD):
        return _fast_load(f, os.fstat(f.fileno()).st_size, ctx)
    # Bounds array sizes by what is left in a regular file; other streams
    # (sockets, pipes, decompressors, user objects) are read to their end.
    ctx.file_size = _regular_file_size(f)
    ctx.para_stream = head.startswith(HEAD)
    stream = SummedStream(f) if ctx.para_stream else f
    ctx.stream = stream
    obj = stream_unpickler(stream, ctx).load()
    if ctx.para_stream:
        skip_trailer(stream, ctx)
    return obj


def _is_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def load(
    filename: Any,
    mmap_mode: str | None = None,
    ensure_native_byte_order: bool | str = "auto",
    *,
    trusted: bool = True,
    allowed_globals: Iterable[Any] = (),
    encoding: str = "ASCII",
    max_bytes: int | str | None = "auto",
) -> Any:
    """Reconstruct an object from a file written by :func:`dump` or joblib.

    Reads every joblib format (>= 0.8, every compressor) without joblib.

    Parameters
    ----------
    filename : str, os.PathLike or binary file object
        The file to read.
    mmap_mode : {None, 'r+', 'r', 'w+', 'c'}, optional
        Memory-map the arrays of an uncompressed file (opened by path)
        instead of reading them; they come back as ``numpy.memmap``.
        Ignored, with a warning, for compressed files.
    ensure_native_byte_order : bool or 'auto', default 'auto'
        Convert arrays to the machine's byte order, as joblib does: those
        stored as array blocks whose whole dtype is in the other order (a
        plain dtype, or a structured one whose top-level fields all are
        plain types in that order); other arrays keep the stored order.
        ``'auto'`` means True without ``mmap_mode`` and False with it; True
        with ``mmap_mode`` is an error.
    trusted : bool, default True
        ``True`` unpickles like joblib: the file may run any code, so only
        load files you trust. ``False`` is the way to open files from
        elsewhere: only numpy arrays and dtypes, builtin containers and
        scalars (and ``allowed_globals``) are admitted; any other global
        raises :class:`UnsafeLoadError` before it is imported or called.
    allowed_globals : iterable, optional
        With ``trusted=False``: more globals to admit, as ``'module.name'``
        strings, ``(module, name)`` tuples or the objects themselves.
    encoding : str, default "ASCII"
        How to decode the ``str`` objects of a file written under Python 2
        (pickle's ``encoding``). With the default, such a file raises
        joblib's ``ValueError``; ``"latin1"`` reads them (as ``str``).
        Files written under Python 3 do not depend on it.
    max_bytes : int, None or 'auto', default 'auto'
        Upper bound on the bytes the load allocates: the pickle stream
        (decompressed), with the bytes/str payloads in it, each array's data
        and any buffer holding a whole decompressed file. Sizes are counted
        from what the file announces *before* allocating or decompressing,
        so a compression bomb is refused after reading at most ``max_bytes``.
        Memory-mapped arrays do not count. ``None``: no limit. ``'auto'``:
        no limit with ``trusted=True`` (as joblib), the machine's physical
        memory with ``trusted=False``.

    Returns
    -------
    object
        The stored object.

    Raises
    ------
    CorruptFileError
        The file is truncated, damaged or not a pickle (the original error is
        chained).
    UnsafeLoadError
        ``trusted=False`` and the file names a global that is not admitted.
    LoadLimitError
        The file asks for more than ``max_bytes``, or (``trusted=False``)
        nests containers deeper than twice ``sys.getrecursionlimit()``.
    ValueError
        Bad ``mmap_mode``, ``ensure_native_byte_order`` or ``max_bytes``, or
        a file written under Python 2 holding text that ``encoding`` cannot
        decode.
    FileNotFoundError
        ``filename`` (or a sibling file of a joblib < 0.10 dump) is missing.

    Examples
    --------
    >>> import para_persist
    >>> obj = para_persist.load("data.pkl")  # doctest: +SKIP
    >>> arr = para_persist.load("data.pkl", mmap_mode="r")  # doctest: +SKIP
    >>> safe = para_persist.load("downloaded.pkl", trusted=False)  # doctest: +SKIP
    >>> para_persist.load("downloaded.pkl.gz", trusted=False, max_bytes=2**30)
    ... # doctest: +SKIP
    """
    if mmap_mode not in _MMAP_MODES:
        raise ValueError(
            f"mmap_mode must be one of {list(_MMAP_MODES)}, got {mmap_mode!r}"
        )
    if ensure_native_byte_order == "auto":
        ensure_native_byte_order = mmap_mode is None
    elif not isinstance(ensure_native_byte_order, bool):
        raise ValueError(
            "ensure_native_byte_order must be True, False or 'auto', got "
            f"{ensure_native_byte_order!r}"
        )
    if ensure_native_byte_order and mmap_mode is not None:
        raise ValueError(
            "Native byte ordering can only be enforced if 'mmap_mode' parameter "
            f"is set to None, but got 'mmap_mode={mmap_mode}' instead."
        )
    if type(allowed_globals) is tuple and not allowed_globals:
        allowed: frozenset[tuple[str, str]] = frozenset()  # the default: no work
    else:
        allowed = normalize_allowed(allowed_globals)
    if allowed and trusted:
        raise ValueError(
            "allowed_globals only applies with trusted=False; pass "
            "trusted=False to restrict loading to the allowed globals."
        )
    if type(filename) is not str and isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    is_path = isinstance(filename, (str, bytes))
    if not is_path and not hasattr(filename, "read"):
        raise ValueError(
            "filename should be a path (str or os.PathLike) or a binary file "
            f"object with a read method, {filename!r} was given."
        )
    if not isinstance(encoding, str) or not _is_codec(encoding):
        # Not "bytes" (pickle's other choice): joblib's placeholders of
        # Python 2 files name their fields with str, which must stay text.
        raise ValueError(
            "encoding must be 'ASCII' (the default), 'latin1' or another "
            f"codec name, got {encoding!r}"
        )
    if max_bytes == "auto":
        max_bytes = None if trusted else default_max_bytes()
    elif max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0
    ):
        raise ValueError(
            "max_bytes must be a number of bytes (int >= 0), None for no limit "
            f"or 'auto', got {max_bytes!r}"
        )
    name = os.fsdecode(filename) if is_path else getattr(filename, "name", None)
    ctx = _Ctx(
        filename=name if is_path else None,
        name=name,
        # joblib maps arrays only when loading by path.
        mmap_mode=mmap_mode if is_path else None,
        native=bool(ensure_native_byte_order),
        safe=not trusted,
        allowed=allowed,
        max_bytes=max_bytes,
    )
    ctx.encoding = encoding
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
    try:
        if buf is not None:
            return _fast_load(BufferFile(buf), len(buf), ctx)
        obj = _load_from(f, ctx, is_path, None if is_path else mmap_mode)
        if ctx.sibling_arrays:  # placeholders of joblib 0.8-0.9, warned once
            _warn_old_format(ctx, stacklevel=3)
        return obj
    except (
        UnsafeLoadError,
        CorruptFileError,
        LoadLimitError,
        FileNotFoundError,
        KeyboardInterrupt,
        Warning,  # a warning turned into an error (-W error) stays itself
    ):
        raise
    except UnicodeDecodeError as exc:
        if codecs.lookup(exc.encoding).name != codecs.lookup(ctx.encoding).name:
            raise CorruptFileError(
                f"cannot load {name or filename!r}: {type(exc).__name__}: {exc}"
            ) from exc
        # A Python 2 str that ``encoding`` cannot decode. CorruptFileError
        # is a ValueError: joblib's type, with joblib's message first.
        raise CorruptFileError(
            "You may be trying to read with python 3 a joblib pickle generated "
            "with python 2. This feature is not supported by joblib. "
            "(para reads it with load(..., encoding='latin1'), which decodes "
            "its Python 2 str as latin-1 text.)"
        ) from exc
    except (Exception, RecursionError) as exc:
        raise CorruptFileError(
            f"cannot load {name or filename!r}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if f is not filename:
            f.close()


def load_compatibility(filename: Any) -> Any:
    """Load a file written by joblib < 0.10 (kept for joblib's API).

    :func:`load` reads these files already; this name exists because joblib
    exposes it.

    Parameters
    ----------
    filename : str or os.PathLike
        The main file of the dump; sibling array files sit next to it.

    Returns
    -------
    object
        The stored object.
    """
    return load(filename)
