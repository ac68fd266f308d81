"""Worker processes that end with the process that started them.

A caller killed by SIGKILL (or by the OOM killer) runs no clean-up. Its loky
workers would finish the task they run, maybe for minutes, then wait for
loky's idle timeout (5 minutes); a ``multiprocessing`` pool's workers wait
for their next task forever. All that time they hold their memory, and the
resource trackers, which remove the caller's semaphores and folders once
every process sharing their pipe is gone, wait for them.

So each worker that para_core starts (loky, the multiprocessing backend, and
any pool given :func:`exit_with_caller` as its initializer, such as
para-memmap's ``MemmappingPool``) watches its caller from a daemon thread and
ends itself (``os._exit``) as soon as the caller is gone, even in the middle
of a task. How the death is seen, by platform:

- Linux 5.3 and later: the thread waits in ``poll()`` on a pidfd of the
  caller, which becomes readable when the caller exits; the worker is gone
  within milliseconds.
- Windows: the thread waits on a handle of the caller's process (the same
  promptness).
- Other POSIX systems (macOS, the BSDs) and older Linux kernels: the thread
  checks every 0.5 s whether its parent changed (an orphan is adopted by
  another process); exit within half a second. This watches the parent,
  which is the caller for loky and multiprocessing's "fork" and "spawn";
  under "forkserver" it is the fork server, which exits when its caller
  does.

The thread needs the GIL to act: a task stuck in native code that holds the
GIL (rare: numpy and most libraries release it) is stopped when it lets go.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["exit_with_caller"]

# Poll period of the fallback watch (seconds).
_POLL = 0.5
# Exit status of a worker whose caller died (nobody is left to read it).
_EXIT_CODE = 1
# {caller pid: pid of the process watching it}, so that a pool's workers
# start one watch each, and a process forked by a worker starts its own.
_watching: dict[int, int] = {}
_lock = threading.Lock()


def exit_with_caller(
    initializer: Callable[..., Any] | None = None, initargs: Any = ()
) -> tuple[Callable[..., None], tuple]:
    """Make the workers of a process pool end when this process dies.

    Returns the ``(initializer, initargs)`` to give the pool: in each worker
    it starts a daemon thread that ends the worker as soon as the process
    calling this function is gone (killed by SIGKILL included, even in the
    middle of a task), then runs ``initializer(*initargs)``. para_core's
    loky and multiprocessing backends use it for their workers.

    Linux and Windows see the death at once; other POSIX systems within half
    a second, by watching the worker's parent process. A task holding the
    GIL in native code is stopped when it releases it.

    Parameters
    ----------
    initializer : callable, optional
        The pool's own initializer, run after the watch started.
    initargs : tuple, default=()
        Its arguments.

    Returns
    -------
    initializer : callable
    initargs : tuple
        To pass as the pool's ``initializer`` and ``initargs`` (picklable
        when ``initializer`` and ``initargs`` are).

    Examples
    --------
    >>> import multiprocessing
    >>> from para_core import exit_with_caller
    >>> with multiprocessing.Pool(2, *exit_with_caller()) as pool:
    ...     pool.map(abs, [-1, -2])
    [1, 2]
    """
    return bind(initializer, initargs)


def bind(
    initializer: Callable[..., Any] | None, initargs: Any, remove: tuple = ()
) -> tuple[Callable[..., None], tuple]:
    """:func:`exit_with_caller`, and the first worker to see the caller die
    removes the folders ``remove`` (which only the caller's exit would)."""
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be callable or None, got {initializer!r}")
    return _start, (os.getpid(), initializer, tuple(initargs), tuple(remove))


def _start(
    caller: int,
    initializer: Callable[..., Any] | None,
    initargs: tuple,
    remove: tuple = (),
) -> None:
    """Pool initializer made by :func:`bind` (runs in the worker)."""
    watch(caller, remove)
    if initializer is not None:
        initializer(*initargs)


def watch(caller: int, remove: tuple = ()) -> None:
    """End this process when the process ``caller`` is gone (idempotent),
    after removing the folders ``remove``."""
    me = os.getpid()
    if caller == me:
        return  # run in the caller itself: nothing to outlive
    with _lock:
        if _watching.get(caller) == me:
            return
        _watching[caller] = me
    wait = _waiter(caller)
    if wait is None:
        return
    thread = threading.Thread(
        target=_exit_after,
        args=(wait, remove),
        name="para-exit-with-caller",
        daemon=True,
    )
    thread.start()


def _exit_after(wait: Callable[[], None], remove: tuple) -> None:
    wait()
    if remove:
        import shutil

        for folder in remove:  # the other workers may be at it too
            shutil.rmtree(folder, ignore_errors=True)
    os._exit(_EXIT_CODE)


def _waiter(caller: int) -> Callable[[], None] | None:
    """A function that returns once ``caller`` is gone; None if this system
    gives no way to watch it."""
    if sys.platform == "win32":
        return _windows_waiter(caller)
    try:
        os.kill(caller, 0)
    except ProcessLookupError:
        return _gone  # died before this worker could watch it
    except OSError:
        pass  # alive, not ours to signal
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(caller)
        except ProcessLookupError:
            return _gone
        except OSError:  # kernel before 5.3, or a seccomp filter
            pass
        else:
            return lambda: _wait_readable(fd)
    return _parent_change_waiter()


def _gone() -> None:
    return None


def _wait_readable(fd: int) -> None:
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not poller.poll():  # no timeout: the GIL is released meanwhile
        pass


def _parent_change_waiter() -> Callable[[], None]:
    import time

    parent = os.getppid()

    def wait() -> None:
        while os.getppid() == parent:
            time.sleep(_POLL)

    return wait


def _windows_waiter(caller: int) -> Callable[[], None] | None:
    import _winapi  # type: ignore[import-not-found]

    synchronize = 0x00100000  # the right to wait on a process handle
    try:
        handle = _winapi.OpenProcess(synchronize, False, caller)
    except OSError as exc:
        # ERROR_INVALID_PARAMETER: no such process any more. Anything else
        # (access denied...): no watch, rather than ending a live worker.
        return _gone if getattr(exc, "winerror", None) == 87 else None
    return lambda: _winapi.WaitForSingleObject(handle, _winapi.INFINITE)
