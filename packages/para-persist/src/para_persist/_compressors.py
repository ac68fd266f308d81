"""Compressor registry and the compressed file objects joblib users know.

Every compressor is a :class:`CompressorWrapper`: a factory of file objects
plus the magic bytes that identify its files and the file extension that
selects it on dump. zlib/gzip use :class:`BinaryZlibFile` /
:class:`BinaryGzipFile` (the format joblib writes), bz2/lzma/xz come from the
standard library, lz4 and zstd are optional and imported only when used.
"""

from __future__ import annotations

import io
import os
import zlib
from typing import Any

from . import _zstdframes

__all__ = [
    "LZ4_NOT_INSTALLED_ERROR",
    "ZSTD_NOT_INSTALLED_ERROR",
    "BZ2CompressorWrapper",
    "BinaryGzipFile",
    "BinaryZlibFile",
    "CompressorWrapper",
    "GzipCompressorWrapper",
    "LZ4CompressorWrapper",
    "LZMACompressorWrapper",
    "XZCompressorWrapper",
    "ZlibCompressorWrapper",
    "ZstdCompressorWrapper",
    "ZstdFile",
    "register_compressor",
]

LZ4_NOT_INSTALLED_ERROR = (
    "LZ4 is not installed. Install it with `pip install lz4` "
    "(or `pip install para-persist[lz4]`)."
)
ZSTD_NOT_INSTALLED_ERROR = (
    "zstandard is not installed. Install it with `pip install zstandard` "
    "(or `pip install para-persist[zstd]`)."
)

# Magic numbers: facts of the file formats, also what joblib checks.
_ZFILE_PREFIX = b"ZF"  # joblib < 0.10 zlib container
_ZLIB_PREFIX = b"\x78"
_GZIP_PREFIX = b"\x1f\x8b"
_BZ2_PREFIX = b"BZ"
_XZ_PREFIX = b"\xfd\x37\x7a\x58\x5a"
_LZMA_PREFIX = b"\x5d\x00"
_LZ4_PREFIX = b"\x04\x22\x4d\x18"
_ZSTD_PREFIX = b"\x28\xb5\x2f\xfd"

# Large inputs are fed to compressors in slices so their output buffers stay
# small; the whole array is never duplicated in memory.
_SLICE = 16 * 1024**2
_READ_CHUNK = 1024**2
# Below this, zstd compresses in one shot on the calling thread (the frame
# then records its size, which lets ``load`` decompress it in memory).
_ZSTD_THREADED_MIN = 32 * 1024**2
# From this size on, that one shot is split in one frame per core.
_ZSTD_MT_MIN = 2 * 1024**2

_COMPRESSORS: dict[str, CompressorWrapper] = {}
#: Every registered compressor by name (``register_compressor`` adds to it);
#: joblib's ``joblib.compressor._COMPRESSORS``. Read it, do not edit it.
COMPRESSORS = _COMPRESSORS


class CompressorWrapper:
    """Describe a compression format to :func:`dump` and :func:`load`.

    Subclass it (or instantiate it with a file-object factory) and pass the
    instance to :func:`register_compressor`.

    Parameters
    ----------
    obj : callable
        File-object factory called as ``obj(fileobj, "wb")``,
        ``obj(fileobj, "wb", compresslevel=level)`` and ``obj(fileobj, "rb")``.
    prefix : bytes
        Magic bytes that start every file of this format; used by
        :func:`load` to recognise it.
    extension : str
        File extension (with the dot) that selects this compressor on dump.

    Examples
    --------
    >>> import bz2
    >>> from para_persist import CompressorWrapper, register_compressor
    >>> class MyBz2(CompressorWrapper):
    ...     def __init__(self):
    ...         super().__init__(bz2.BZ2File, prefix=b"BZh", extension=".mybz")
    >>> register_compressor("mybz2", MyBz2())  # doctest: +SKIP
    """

    def __init__(self, obj: Any, prefix: bytes = b"", extension: str = "") -> None:
        self.fileobj_factory = obj
        self.prefix = prefix
        self.extension = extension

    def compressor_file(self, fileobj: Any, compresslevel: int | None = None) -> Any:
        """Return a file object compressing what is written into ``fileobj``."""
        if compresslevel is None:
            return self.fileobj_factory(fileobj, "wb")
        return self.fileobj_factory(fileobj, "wb", compresslevel=compresslevel)

    def decompressor_file(self, fileobj: Any) -> Any:
        """Return a file object reading the decompressed bytes of ``fileobj``."""
        return self.fileobj_factory(fileobj, "rb")


def register_compressor(
    compressor_name: str, compressor: CompressorWrapper, force: bool = False
) -> None:
    """Register a compressor usable as ``dump(..., compress=(name, level))``.

    Parameters
    ----------
    compressor_name : str
        Name used in ``compress=``.
    compressor : CompressorWrapper
        The compressor description.
    force : bool, default False
        Replace an already registered compressor of that name.

    Raises
    ------
    ValueError
        If the name is not a string, the compressor is not a
        :class:`CompressorWrapper`, its factory does not look like a file
        object factory, or the name is taken and ``force`` is False.
    """
    if not isinstance(compressor_name, str):
        raise ValueError(
            f"Compressor name should be a string, {compressor_name!r} given."
        )
    if not isinstance(compressor, CompressorWrapper):
        raise ValueError(
            "Compressor should be an instance of para_persist.CompressorWrapper, "
            f"{compressor!r} given."
        )
    factory = compressor.fileobj_factory
    if factory is not None and not all(
        hasattr(factory, attr) for attr in ("read", "write", "seek", "tell")
    ):
        raise ValueError(
            "Compressor 'fileobj_factory' attribute should implement the file "
            f"object interface (read, write, seek and tell); {factory!r} given."
        )
    if compressor_name in _COMPRESSORS and not force:
        raise ValueError(
            f"Compressor {compressor_name!r} already registered; "
            "pass force=True to replace it."
        )
    _COMPRESSORS[compressor_name] = compressor


class _DecompressReader(io.RawIOBase):
    """Raw reader producing the decompressed bytes of one zlib/gzip stream."""

    def __init__(self, fp: Any, make_decompressor: Any) -> None:
        self._fp = fp
        self._dec = make_decompressor()
        self._in = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b: Any) -> int:
        with memoryview(b) as view, view.cast("B") as out:
            want = len(out)
            while want and not self._dec.eof:
                if not self._in:
                    self._in = self._fp.read(_READ_CHUNK)
                    if not self._in:
                        raise EOFError(
                            "compressed file ended before the end-of-stream marker"
                        )
                data = self._dec.decompress(self._in, want)
                self._in = self._dec.unconsumed_tail
                if data:
                    n = len(data)
                    out[:n] = data
                    self._pos += n
                    return n
            return 0


def _open_target(filename: Any, mode: str) -> tuple[Any, bool]:
    if isinstance(filename, (str, bytes, os.PathLike)):
        return open(filename, mode), True
    if hasattr(filename, "read") or hasattr(filename, "write"):
        return filename, False
    raise TypeError(
        "filename must be a str or bytes object, or a file (os.PathLike too), "
        f"got {filename!r}"
    )


class _StreamFile(io.BufferedIOBase):
    """A compressed file open for reading or writing, position = uncompressed."""

    def __init__(self, filename: Any, mode: str) -> None:
        if mode not in ("r", "rb", "w", "wb", "a", "ab", "x", "xb"):
            raise ValueError(
                f"Invalid mode: {mode!r}; accepted: 'rb', 'wb', 'ab', 'xb'."
            )
        self._reading = mode.startswith("r")
        self._fp, self._owns = _open_target(
            filename, mode if mode.endswith("b") else mode + "b"
        )
        self._pos = 0
        self._reader: Any = None
        self._writer: Any = None
        self._closed = False
        if self._reading:
            self._reader = self._open_reader()

    # Subclasses provide these two.
    def _open_reader(self) -> Any:  # pragma: no cover - abstract
        raise TypeError("abstract")

    def _compress(self, data: Any) -> bytes:  # pragma: no cover - abstract
        raise TypeError("abstract")

    def _finish(self) -> bytes:  # pragma: no cover - abstract
        raise TypeError("abstract")

    @property
    def closed(self) -> bool:
        return self._closed

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return not self._reading

    def seekable(self) -> bool:
        return self._reading

    def fileno(self) -> int:
        return self._fp.fileno()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed file")

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        if not self._reading:
            raise io.UnsupportedOperation("File not open for reading")
        return self._reader.read(size)

    def read1(self, size: int = -1) -> bytes:
        self._check_open()
        return self._reader.read1(size)

    def readinto(self, b: Any) -> int:
        self._check_open()
        if not self._reading:
            raise io.UnsupportedOperation("File not open for reading")
        return self._reader.readinto(b)

    def readline(self, size: int | None = -1) -> bytes:
        self._check_open()
        return self._reader.readline(size)

    def peek(self, size: int = 0) -> bytes:
        self._check_open()
        return self._reader.peek(size)

    def tell(self) -> int:
        self._check_open()
        return self._reader.tell() if self._reading else self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if not self._reading:
            raise io.UnsupportedOperation("seek is only supported when reading")
        current = self._reader.tell()
        if whence == io.SEEK_CUR:
            offset += current
        elif whence != io.SEEK_SET:
            raise ValueError(f"Invalid whence ({whence}); accepted: 0 or 1.")
        if offset < current:
            # Compressed streams only go forward: restart from the beginning.
            self._fp.seek(0)
            self._reader = self._open_reader()
            current = 0
        while current < offset:
            chunk = self._reader.read(min(offset - current, _READ_CHUNK))
            if not chunk:
                break
            current += len(chunk)
        return current

    def write(self, data: Any) -> int:
        self._check_open()
        if self._reading:
            raise io.UnsupportedOperation("File not open for writing")
        with memoryview(data) as view, view.cast("B") as flat:
            n = len(flat)
            for start in range(0, n, _SLICE):
                out = self._compress(flat[start : start + _SLICE])
                if out:
                    self._fp.write(out)
        self._pos += n
        return n

    def close(self) -> None:
        if self._closed:
            return
        try:
            if not self._reading:
                tail = self._finish()
                # Pieces (zstd's frames) go out as they are: no joined copy.
                for piece in tail if isinstance(tail, list) else [tail]:
                    if len(piece):
                        self._fp.write(piece)
                if hasattr(self._fp, "flush"):
                    self._fp.flush()
        finally:
            self._closed = True
            if self._owns:
                self._fp.close()


class BinaryZlibFile(_StreamFile):
    """A file object reading or writing one zlib stream (joblib's ``.z``).

    Parameters
    ----------
    filename : str, os.PathLike or file object
        Where the compressed bytes are read from or written to.
    mode : {'rb', 'wb', 'ab', 'xb'}
        Open mode.
    compresslevel : int, default 3
        zlib level, from 1 to 9 (write modes only).
    """

    wbits = zlib.MAX_WBITS

    def __init__(self, filename: Any, mode: str = "rb", compresslevel: int = 3):
        if not isinstance(compresslevel, int) or not 1 <= compresslevel <= 9:
            raise ValueError(
                "'compresslevel' must be an integer between 1 and 9. "
                f"You provided 'compresslevel={compresslevel}'"
            )
        self.compresslevel = compresslevel
        super().__init__(filename, mode)
        if not self._reading:
            self._writer = zlib.compressobj(
                compresslevel, zlib.DEFLATED, self.wbits, zlib.DEF_MEM_LEVEL, 0
            )

    def _open_reader(self) -> Any:
        raw = _DecompressReader(self._fp, lambda: zlib.decompressobj(self.wbits))
        return io.BufferedReader(raw, buffer_size=_READ_CHUNK)

    def _compress(self, data: Any) -> bytes:
        return self._writer.compress(data)

    def _finish(self) -> bytes:
        return self._writer.flush()


class BinaryGzipFile(BinaryZlibFile):
    """Like :class:`BinaryZlibFile` with a gzip header (joblib's ``.gz``)."""

    wbits = 31


class ZstdFile(_StreamFile):
    """A file object reading or writing a Zstandard frame.

    Compression runs on zstandard's own worker threads (one per core).

    Parameters
    ----------
    filename : str, os.PathLike or file object
        Where the compressed bytes are read from or written to.
    mode : {'rb', 'wb', 'ab', 'xb'}
        Open mode.
    compresslevel : int, default 3
        Zstandard level, from 1 to 22 (write modes only).
    threads : int, default -1
        Compression threads; -1 means one per logical core.
    """

    def __init__(
        self, filename: Any, mode: str = "rb", compresslevel: int = 3, threads: int = -1
    ):
        try:
            import zstandard
        except ImportError:
            raise ValueError(ZSTD_NOT_INSTALLED_ERROR) from None
        if not isinstance(compresslevel, int) or not 1 <= compresslevel <= 22:
            raise ValueError(
                "'compresslevel' must be an integer between 1 and 22 for zstd. "
                f"You provided 'compresslevel={compresslevel}'"
            )
        self._zstd = zstandard
        self._level = compresslevel
        self._threads = threads
        # What was written, kept until close while it stays moderate: one
        # buffer that grows in place (the only copy of the pickle before it
        # is compressed).
        self._pending: bytearray | None = bytearray()
        super().__init__(filename, mode)

    def _open_reader(self) -> Any:
        reader = self._zstd.ZstdDecompressor().stream_reader(
            self._fp, read_size=_READ_CHUNK, closefd=False, read_across_frames=True
        )
        return io.BufferedReader(reader, buffer_size=_READ_CHUNK)

    def _compress(self, data: Any) -> bytes:
        if self._pending is not None:
            # Moderate outputs are compressed in one go at the end (and the
            # frame records their size, for ``load``'s in-memory path).
            self._pending += data
            if len(self._pending) < _ZSTD_THREADED_MIN:
                return b""
            pending, self._pending = self._pending, None
            self._writer = self._zstd.ZstdCompressor(
                level=self._level, threads=self._threads, write_checksum=True
            ).compressobj()
            return self._writer.compress(pending)
        return self._writer.compress(data)

    def _finish(self) -> Any:
        if self._pending is not None:
            return self._one_shot(self._pending)
        return self._writer.flush()

    def _one_shot(self, data: bytearray) -> Any:
        """Compress ``data`` as frames that record their size."""
        zstd = self._zstd
        workers = self._threads if self._threads >= 0 else (os.cpu_count() or 1)
        if len(data) < _ZSTD_MT_MIN or workers < 2:
            # Starting zstd's workers would cost more than they save.
            return zstd.ZstdCompressor(level=self._level, write_checksum=True).compress(
                data
            )
        # One frame per core: ``load`` decompresses them side by side.
        return _zstdframes.compress_frames(zstd, self._level, data, workers)


class ZlibCompressorWrapper(CompressorWrapper):
    """zlib stream (``.z``), joblib's default compressor."""

    def __init__(self) -> None:
        super().__init__(BinaryZlibFile, prefix=_ZLIB_PREFIX, extension=".z")


class GzipCompressorWrapper(CompressorWrapper):
    """gzip stream (``.gz``)."""

    def __init__(self) -> None:
        super().__init__(BinaryGzipFile, prefix=_GZIP_PREFIX, extension=".gz")


class BZ2CompressorWrapper(CompressorWrapper):
    """bzip2 (``.bz2``) through the standard library."""

    def __init__(self) -> None:
        import bz2

        super().__init__(bz2.BZ2File, prefix=_BZ2_PREFIX, extension=".bz2")


class LZMACompressorWrapper(CompressorWrapper):
    """Legacy ``.lzma`` container (``FORMAT_ALONE``)."""

    _format_name = "FORMAT_ALONE"

    def __init__(self) -> None:
        import lzma

        super().__init__(lzma.LZMAFile, prefix=_LZMA_PREFIX, extension=".lzma")
        self._format = getattr(lzma, self._format_name)

    def compressor_file(self, fileobj: Any, compresslevel: int | None = None) -> Any:
        if compresslevel is None:
            return self.fileobj_factory(fileobj, "wb", format=self._format)
        return self.fileobj_factory(
            fileobj, "wb", format=self._format, preset=compresslevel
        )


class XZCompressorWrapper(LZMACompressorWrapper):
    """``.xz`` container."""

    _format_name = "FORMAT_XZ"

    def __init__(self) -> None:
        super().__init__()
        self.prefix = _XZ_PREFIX
        self.extension = ".xz"


class LZ4CompressorWrapper(CompressorWrapper):
    """LZ4 frame (``.lz4``); needs the optional ``lz4`` package."""

    def __init__(self) -> None:
        super().__init__(None, prefix=_LZ4_PREFIX, extension=".lz4")

    # lz4's file class, as in joblib, looked up on access so that importing
    # para_persist does not import lz4; None when lz4 is not installed.
    @property
    def fileobj_factory(self) -> Any:
        if self._given is not None:
            return self._given
        try:
            return self._factory()
        except ValueError:
            return None

    @fileobj_factory.setter
    def fileobj_factory(self, value: Any) -> None:
        self._given = value

    def _factory(self) -> Any:
        try:
            from lz4.frame import LZ4FrameFile
        except ImportError:
            raise ValueError(LZ4_NOT_INSTALLED_ERROR) from None
        return LZ4FrameFile

    def compressor_file(self, fileobj: Any, compresslevel: int | None = None) -> Any:
        factory = self._factory()
        # Independent blocks: the high-compression levels (3+) no longer
        # search the previous block, which makes them about 1.5x faster for
        # a slightly larger file; any lz4 frame reader (joblib's too) reads
        # them, as the frame header says so.
        if compresslevel is None:
            return factory(fileobj, "wb", block_linked=False)
        return factory(
            fileobj, "wb", compression_level=compresslevel, block_linked=False
        )

    def decompressor_file(self, fileobj: Any) -> Any:
        return self._factory()(fileobj, "rb")


class ZstdCompressorWrapper(CompressorWrapper):
    """Zstandard frame (``.zst``); needs the optional ``zstandard`` package."""

    def __init__(self) -> None:
        super().__init__(ZstdFile, prefix=_ZSTD_PREFIX, extension=".zst")


def _is_available(name: str) -> bool:
    """Whether the optional module behind a built-in compressor imports."""
    module = {"lz4": "lz4.frame", "zstd": "zstandard"}.get(name)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


for _name, _wrapper in (
    ("zlib", ZlibCompressorWrapper()),
    ("gzip", GzipCompressorWrapper()),
    ("bz2", BZ2CompressorWrapper()),
    ("lzma", LZMACompressorWrapper()),
    ("xz", XZCompressorWrapper()),
    ("lz4", LZ4CompressorWrapper()),
    ("zstd", ZstdCompressorWrapper()),
):
    _COMPRESSORS[_name] = _wrapper
del _name, _wrapper


def _detect(first_bytes: bytes) -> str | None:
    """Name of the registered compressor whose magic starts ``first_bytes``."""
    if first_bytes.startswith(_ZFILE_PREFIX):
        return "compat"
    for name, wrapper in _COMPRESSORS.items():
        if wrapper.prefix and first_bytes.startswith(wrapper.prefix):
            return name
    return None


def _max_prefix_len() -> int:
    return max([len(_ZFILE_PREFIX)] + [len(c.prefix) for c in _COMPRESSORS.values()])
