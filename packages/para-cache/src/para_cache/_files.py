"""Writing entry files: temporary names, bare-descriptor writes, metadata.

A cache miss writes two small files; their Python cost is part of every miss,
so these helpers avoid file objects, ``json.dumps``'s encoder set-up and
per-name system calls where they can, and fall back to the general tools for
anything unusual.
"""

from __future__ import annotations

import itertools
import json
import os
from json.encoder import encode_basestring_ascii as _quote
from math import isfinite
from typing import Any

__all__ = ["FdFile", "encode_metadata", "temp_name", "write_all"]

_WBUF = 256 * 1024  # writes up to this size are gathered before a syscall


# -- descriptors ----------------------------------------------------------------


def write_all(fd: int, data: Any) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less)."""
    with memoryview(data) as view, view.cast("B") as rest:
        while rest:
            rest = rest[os.write(fd, rest) :]


class FdFile:
    """The binary file ``dump`` needs, on a bare descriptor.

    A cache entry is mostly a few small pieces: they are gathered and written
    with one system call, without the file object machinery of ``open``; big
    array blocks go straight to the descriptor.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0
        self._pending = bytearray()

    def write(self, data: Any) -> int:
        with memoryview(data) as view:
            n = view.nbytes
            if n >= _WBUF:
                self.flush()
                write_all(self._fd, view)
            else:
                self._pending += view
                if len(self._pending) >= _WBUF:
                    self.flush()
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if self._pending:
            write_all(self._fd, self._pending)
            self._pending.clear()

    def close(self) -> None:  # the descriptor is the caller's to close
        self.flush()


# -- temporary names --------------------------------------------------------------
#
# 64 random bits drawn once per process (again in a forked child) and a
# counter: unique across hosts sharing a network folder, across processes
# and threads, without a random draw and two lookups per name.

_PREFIX = [os.urandom(8).hex()]
_COUNTER = itertools.count()


def _new_prefix() -> None:
    _PREFIX[0] = os.urandom(8).hex()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def temp_name(filename: str) -> str:
    """A name next to ``filename`` that no other writer uses: ``<name>.<id>.tmp``."""
    return f"{filename}.{_PREFIX[0]}-{next(_COUNTER):x}.tmp"


# -- metadata ---------------------------------------------------------------------


def encode_metadata(metadata: dict) -> bytes:
    """``json.dumps(metadata)`` as UTF-8 bytes.

    Memory's own metadata (finite ``duration`` and ``time``, ``input_args``
    of strings) is written directly; anything else goes through ``json``.
    Both give the same bytes.
    """
    if list(metadata) == _KEYS:
        duration, args, when = metadata.values()
        if (
            type(duration) is float
            and type(when) is float
            and type(args) is dict
            and isfinite(duration)
            and isfinite(when)
            and all(type(k) is str and type(v) is str for k, v in args.items())
        ):
            pairs = ", ".join([f"{_quote(k)}: {_quote(v)}" for k, v in args.items()])
            return (
                f'{{"duration": {duration!r}, "input_args": {{{pairs}}}, '
                f'"time": {when!r}}}'
            ).encode()
    return json.dumps(metadata).encode("utf-8")


_KEYS = ["duration", "input_args", "time"]
