"""Which worker ran which batch: to name the tasks of a worker that died.

loky tells that a worker died, not which one, and fails every pending future
alike: the engine would name whichever failed batch it looks at first. So
each loky worker stamps, in a small file it maps when it starts, the token
of every batch it starts (slot ``token % _SLOTS``: the token, its pid). When
loky reports a death, the caller reads the stamps: the tokens whose worker is
no longer there ran on the dead worker. It looks right away, from the failed
future's callback: loky has reaped the dead worker then, and has not yet
killed the others.

The file lives in a folder of /dev/shm (or the temp folder) for as long as
this process may start loky workers, like loky's own semaphores; it is
removed at exit, or by loky's resource tracker if this process is killed.
POSIX only (a pid's absence is checked with ``kill(pid, 0)``); elsewhere the
engine names the batch it saw fail first, as before.
"""

from __future__ import annotations

import atexit
import mmap
import os
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["attach", "dead_tokens", "path", "stamp"]

_SLOTS = 4096
_SLOT = struct.Struct("qq")  # token, pid
_SIZE = _SLOTS * _SLOT.size

# caller side: the folder, the file's path and a read-only map, once made
_lock = threading.Lock()
_caller: tuple[str, str, Any] | None = None
_failed = False


def path() -> str | None:
    """The ledger's file, made on first call; None where unsupported."""
    global _caller, _failed
    if sys.platform == "win32" or _failed:
        return None
    with _lock:
        if _caller is None:
            try:
                _caller = _create()
            except OSError:
                _failed = True  # no room: deaths are named less precisely
                return None
        return _caller[1]


def _create() -> tuple[str, str, Any]:
    import shutil
    import tempfile

    from ._mp import resource_tracker

    root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="para-ledger-", dir=root)
    try:
        file = os.path.join(folder, "slots")
        with open(file, "wb") as fh:
            fh.truncate(_SIZE)
        with open(file, "rb") as fh:
            view = mmap.mmap(fh.fileno(), _SIZE, access=mmap.ACCESS_READ)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if resource_tracker is not None:
        resource_tracker.register(folder, "folder")  # if this process is killed
    atexit.register(_remove, folder, os.getpid())
    return folder, file, view


def _remove(folder: str, owner: int) -> None:
    import shutil

    from ._mp import resource_tracker

    if os.getpid() != owner:
        return  # a forked child exiting: the folder is its parent's
    shutil.rmtree(folder, ignore_errors=True)
    if resource_tracker is not None:
        resource_tracker.unregister(folder, "folder")


def dead_tokens() -> set[int]:
    """Tokens stamped by workers that are gone (caller side)."""
    if _caller is None or sys.platform == "win32":
        return set()
    view = _caller[2]
    stamps = [_SLOT.unpack_from(view, i * _SLOT.size) for i in range(_SLOTS)]
    alive: dict[int, bool] = {}
    for _token, pid in stamps:
        if pid and pid not in alive:
            try:
                os.kill(pid, 0)
                alive[pid] = True
            except ProcessLookupError:
                alive[pid] = False
            except OSError:
                alive[pid] = True
    return {token for token, pid in stamps if pid and not alive[pid]}


# worker side: the map of the caller's file
_worker_view: Any = None
_worker_pid = 0


def attach(
    file: str | None, initializer: Callable[..., Any] | None, initargs: tuple
) -> None:
    """Worker initializer: map the ledger, then run ``initializer``."""
    global _worker_view, _worker_pid
    if file is not None:
        try:
            with open(file, "r+b") as fh:
                _worker_view = mmap.mmap(fh.fileno(), _SIZE)
            _worker_pid = os.getpid()
        except (OSError, ValueError):
            _worker_view = None  # the batches go unstamped
    if initializer is not None:
        initializer(*initargs)


def stamp(token: int) -> None:
    """Worker side: this process starts the batch ``token``."""
    if _worker_view is not None:
        _SLOT.pack_into(_worker_view, (token % _SLOTS) * _SLOT.size, token, _worker_pid)
