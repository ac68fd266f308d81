"""``dump`` and ``load``: the public entry points.

Each checks its arguments first (``_args``), then hands over to its path;
``load`` turns what goes wrong while reading into :class:`CorruptFileError`::

    dump ─► dump_options ─┬─ file object ─► _write.write_to
                          └─ path ─► _write.write_file (temp file, fsync,
                                     os.replace: whole or not at all)

    load ─► load_options ─► _Ctx (what the readers share) ─►
            _read.open_source ─┬─ small para file, read whole ─► fast_load
                               └─ file by path or object ─► load_from
         ─► errors: UnsafeLoadError, LoadLimitError, CorruptFileError,
            FileNotFoundError, KeyboardInterrupt and warnings raised as
            errors pass; a Python 2 str that ``encoding`` cannot decode gets
            joblib's message; anything else becomes CorruptFileError
            (chained)
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable
from typing import Any

from . import _read
from ._args import dump_options, load_options
from ._errors import CorruptFileError, LoadLimitError, UnsafeLoadError
from ._index import BufferFile
from ._unpickler import _Ctx
from ._write import write_file, write_to

__all__ = ["dump", "load"]


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
    filename, comp, proto = dump_options(filename, compress, protocol)
    if not isinstance(filename, str):
        write_to(value, filename, comp, proto)
        return None
    write_file(value, filename, comp, proto)
    return [filename]


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
    filename, is_path, native, allowed, max_bytes = load_options(
        filename,
        mmap_mode,
        ensure_native_byte_order,
        trusted,
        allowed_globals,
        encoding,
        max_bytes,
    )
    name = os.fsdecode(filename) if is_path else getattr(filename, "name", None)
    ctx = _Ctx(
        filename=name if is_path else None,
        name=name,
        # joblib maps arrays only when loading by path.
        mmap_mode=mmap_mode if is_path else None,
        native=native,
        safe=not trusted,
        allowed=allowed,
        max_bytes=max_bytes,
    )
    ctx.encoding = encoding
    f, buf = _read.open_source(filename, ctx, is_path, mmap_mode)
    try:
        if buf is not None:
            return _read.fast_load(BufferFile(buf), len(buf), ctx)
        obj = _read.load_from(f, ctx, is_path, None if is_path else mmap_mode)
        if ctx.sibling_arrays:  # placeholders of joblib 0.8-0.9, warned once
            _read.warn_old_format(ctx, stacklevel=3)
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
