"""A tiny process that removes our files if the caller dies without doing it.

Why not loky's resource tracker: loky's workers inherit the tracker's pipe, so
it only cleans up once every worker has exited, and a worker busy in a long
task keeps a killed caller's files alive for as long as the task runs. The
watchdog's pipe is close-on-exec: only the caller holds it.

::

    caller --"+<hex path>\\n"--> watchdog   (track)
    caller --"-<hex path>\\n"--> watchdog   (forget: the caller removed it)
    caller --"*<hex folder NUL prefix>\\n"--> (track every entry of folder
                                             whose name starts with prefix)
    caller dies / exits    -->  EOF: the watchdog removes what is still tracked

A prefix is sent once per folder and process: the per-call folders, named
after the caller's pid, then cost the caller no message at all.

The watchdog is started on first use, in its own session so that a Ctrl-C in
the terminal does not kill it before the caller had a chance to clean up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading
import warnings
from typing import IO

__all__ = ["forget", "track", "track_prefix"]

# Self-contained on purpose: the child imports nothing of ours, so it works
# from a vendored copy too.
_SOURCE = r"""
import os, shutil, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
tracked = {}
prefixes = set()
for line in sys.stdin.buffer:
    op, path = line[:1], os.fsdecode(bytes.fromhex(line[1:].strip().decode()))
    if op == b"+":
        tracked[path] = tracked.get(path, 0) + 1
    elif op == b"-":
        tracked.pop(path, None)
    elif op == b"*":
        prefixes.add(tuple(path.split("\0", 1)))
for folder, prefix in prefixes:
    try:
        names = os.listdir(folder)
    except OSError:
        continue
    for name in names:
        if name.startswith(prefix):
            tracked[os.path.join(folder, name)] = 1
for path in sorted(tracked, key=len, reverse=True):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass
"""

_lock = threading.Lock()
_pipe: IO[bytes] | None = None
_owner_pid = -1
_exiting = False


def _close_at_exit() -> None:
    # EOF tells the watchdog to remove what is left, then exit.
    global _pipe, _exiting
    with _lock:
        _exiting = True
        if _pipe is not None and _owner_pid == os.getpid():
            with contextlib.suppress(OSError):
                _pipe.close()
        _pipe = None


def _send(op: bytes, path: str) -> None:
    global _pipe, _owner_pid, _exiting
    line = op + os.fsencode(path).hex().encode() + b"\n"
    with _lock:
        if _exiting:
            return
        if _pipe is None or _owner_pid != os.getpid():
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _SOURCE],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as exc:
                # Embedded interpreters may have no usable sys.executable:
                # cleanup then relies on the normal path and atexit only.
                _exiting = True
                warnings.warn(
                    f"para-memmap could not start its cleanup watchdog ({exc}); "
                    f"temporary files may outlive a killed process",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return
            # Never waited for: it outlives us by design and exits on EOF.
            proc.returncode = 0
            if _owner_pid == -1:
                atexit.register(_close_at_exit)
            _pipe, _owner_pid = proc.stdin, os.getpid()
        try:
            _pipe.write(line)
            _pipe.flush()
        except (BrokenPipeError, ValueError, OSError):
            _pipe = None  # it died; the next call starts a new one


def track(path: str) -> None:
    """Have ``path`` (file or folder) removed if this process dies first."""
    _send(b"+", path)


def track_prefix(folder: str, prefix: str) -> None:
    """Have every entry of ``folder`` named ``prefix...`` removed if we die."""
    _send(b"*", f"{folder}\0{prefix}")


def forget(path: str) -> None:
    """``path`` was removed by us: the watchdog can forget it."""
    _send(b"-", path)
