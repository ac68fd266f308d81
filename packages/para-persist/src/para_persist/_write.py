"""``dump``'s writing: one pickle stream into a file object, or atomically
into a path.

::

    write_file(path) ─► temp file ".<name>.<random>.tmp" in the target folder
        ─► write_to ─► fsync ─► os.replace over the path
        (any error: the temp file is removed, the old file untouched)
    write_to(file object)
        ├─ uncompressed ─► _pickler.write_stream, big arrays of dump's own
        │                  temp file through _bigio.write_at (two threads)
        ├─ zstd ─► ZstdFile ─► write_stream, arrays in slices (byte-shuffled
        │                      where that compresses better)
        └─ other compressors ─► 1 MiB buffer ─► compressor file
                                ─► write_stream, arrays in slices
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from typing import Any

from . import _bigio, _compressors
from ._pickler import write_stream

__all__ = ["write_file", "write_to"]

# Compressors work best on ~1 MiB pieces; the temp file is buffered alike.
_BUFFER = 1024**2


def write_to(
    value: Any,
    raw: Any,
    comp: tuple[str, int | None] | None,
    proto: int,
    own_file: bool = False,
) -> None:
    """Pickle ``value`` into ``raw`` from where it stands (``comp``: method
    and level, None: uncompressed; ``own_file``: the temp file of
    :func:`write_file`, which big arrays may be written into by offset)."""
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


def write_file(
    value: Any, filename: str, comp: tuple[str, int | None] | None, proto: int
) -> None:
    """Write ``value`` to ``filename`` whole or not at all."""
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
            write_to(value, raw, comp, proto, own_file=True)
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
