"""The arguments of ``dump`` and ``load``, checked and normalised as joblib does.

Every check runs before a file is opened, in joblib's order and with
joblib's messages where joblib has one::

    dump_options: filename ─► a str path, or an object with ``write``
                  compress ─► (method, level), or None for no compression:
                              bool / level / name / (name, level), then the
                              path's extension picks the method unless named
                  protocol ─► an int (None or < 0: the highest)
    load_options: mmap_mode, ensure_native_byte_order ('auto': True unless
                  mapped), allowed_globals ─► (module, name) pairs (only
                  with trusted=False), filename ─► a str/bytes path or an
                  object with ``read``, encoding ─► a codec name,
                  max_bytes ─► an int or None ('auto': no limit when
                  trusted, else the machine's memory, see ``_limits``)
"""

from __future__ import annotations

import codecs
import os
import pickle
from collections.abc import Iterable
from typing import Any

from . import _compressors
from ._compressors import LZ4_NOT_INSTALLED_ERROR, ZSTD_NOT_INSTALLED_ERROR
from ._limits import default_max_bytes
from ._unpickler import normalize_allowed

__all__ = ["dump_options", "load_options"]

_MMAP_MODES = (None, "r+", "r", "w+", "c")


def dump_options(
    filename: Any, compress: Any, protocol: Any
) -> tuple[Any, tuple[str, int | None] | None, int]:
    """``dump``'s destination (a str path or a file object), compression and
    protocol."""
    if isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    is_path = isinstance(filename, str)
    if not is_path and not hasattr(filename, "write"):
        raise ValueError(
            "Second argument should be a filename (str or os.PathLike) or a "
            f"binary file object with a write method, {filename!r} "
            f"(type {type(filename).__name__}) was given."
        )
    return filename, _parse_compress(compress, filename), _resolve_protocol(protocol)


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


def load_options(
    filename: Any,
    mmap_mode: Any,
    ensure_native_byte_order: Any,
    trusted: bool,
    allowed_globals: Iterable[Any],
    encoding: Any,
    max_bytes: Any,
) -> tuple[Any, bool, bool, frozenset[tuple[str, str]], int | None]:
    """``load``'s source (a path or a file object), whether it is a path,
    whether arrays go native, the admitted globals and the byte limit."""
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
    return filename, is_path, bool(ensure_native_byte_order), allowed, max_bytes


def _is_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True
