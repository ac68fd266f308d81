"""The file objects ``load`` is given: where to start, what size is known.

A user's object may be a file, a ``BytesIO``, a socket or anything with
``read``; ``load`` must look at its first bytes to pick the format::

    start_of(f) ─┬─ seekable ─► first bytes read, f put back where it stood
                 │              (at its end: from its start, as joblib)
                 └─ read only ─► first bytes read once, then a _Prefixed
                                 stream that serves them before the rest
    compressed_size(f) ─► bytes left in a seekable object (read-ahead bound)
    regular_file_size(f) ─► size of a plain file (array sizes are bounded
                            by it); None for every other stream
"""

from __future__ import annotations

import io
import os
import stat
from typing import Any

__all__ = ["CHUNK", "compressed_size", "regular_file_size", "start_of"]

# Reads of no known length (to a stream's end) go this much at a time.
CHUNK = 1024**2


def compressed_size(f: Any) -> int | None:
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


def regular_file_size(f: Any) -> int | None:
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


def start_of(f: Any, n: int) -> tuple[Any, bytes]:
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
        chunk = f.read(CHUNK)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
