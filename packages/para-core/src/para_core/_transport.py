"""The transport hook: how another package takes over argument/result transport.

para-core pickles task batches and results with cloudpickle. A *transport*
lets a plug-in (para-memmap is the one we ship) replace selected objects --
typically large numpy arrays -- by cheap references on their way to and from
the worker processes::

    caller process                                   worker process
    --------------                                   --------------
    Parallel.__call__ / __enter__
      hook.open(TransportRequest) -> session
      batch --pickle(session.reduce_task_object)-->  unpickle, run tasks
                                                     results
      results <-- unpickle <-- pickle(session.result_reducer) --+
    end of call:    session.end_call()
    end of context: session.close()

Only process-based backends (loky, multiprocessing) consult the hook; the
threading and sequential backends share memory and never call it. para-core
works the same with no hook installed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TransportHook",
    "TransportRequest",
    "TransportSession",
    "get_transport_hook",
    "set_transport_hook",
]


@dataclass(frozen=True)
class TransportRequest:
    """What a process backend tells a transport hook when it opens a session.

    Attributes
    ----------
    backend : str
        Name of the backend (``"loky"`` or ``"multiprocessing"``).
    n_jobs : int
        Effective number of workers.
    temp_folder : str or None
        Folder requested through ``Parallel(temp_folder=...)`` or
        ``parallel_config``; None lets the transport choose.
    max_nbytes : int or None
        Size threshold in bytes (strings such as ``"1M"`` are already
        converted); None disables the transport of arrays.
    mmap_mode : str
        Mode in which workers open transported arrays (``"r"``, ``"r+"``,
        ``"w+"`` or ``"c"``).
    """

    backend: str
    n_jobs: int
    temp_folder: str | None
    max_nbytes: int | None
    mmap_mode: str


class TransportSession:
    """Per-``Parallel`` transport state; a base class whose hooks do nothing.

    A session lives for one ``Parallel`` call, or for a whole
    ``with Parallel(...)`` block, so that it can keep objects already sent.
    """

    #: A picklable callable run in the workers when results are pickled:
    #: ``result_reducer(obj)`` returns a reduce tuple or ``NotImplemented``.
    #: None (the default) lets results travel by plain pickling.
    result_reducer: Callable[[Any], Any] | None = None

    #: Exact types that :meth:`reduce_task_object` and :attr:`result_reducer`
    #: handle. When not empty, para-core consults them only for objects of
    #: exactly these types (through the pickler's dispatch table), so that
    #: everything else pickles at the C pickler's full speed; ``NotImplemented``
    #: then means "pickle this object as usual". Empty (the default): they
    #: see every object. An entry may also name a type as
    #: ``"module:qualname"`` (e.g. ``"numpy:ndarray"``): it is looked up only
    #: in modules already imported where the pickling happens, so that a
    #: session (and its result reducer, in the workers) never imports a
    #: module the program does not use.
    reduce_types: tuple[type | str, ...] = ()

    def reduce_task_object(self, obj: Any) -> Any:
        """Reduce an object found while pickling a task batch in the caller.

        Called for every object the pickler meets (like
        :meth:`pickle.Pickler.reducer_override`), so it must reject foreign
        types quickly. Return a reduce tuple, or ``NotImplemented`` to let
        cloudpickle handle the object.
        """
        return NotImplemented

    def end_call(self) -> None:
        """Release what one ``Parallel`` call needed; the session stays open."""

    def close(self) -> None:
        """Release everything; called once when the session ends."""


class TransportHook:
    """Factory of transport sessions; install one with :func:`set_transport_hook`."""

    def open(self, request: TransportRequest) -> TransportSession | None:
        """Return a session for ``request``, or None to transport nothing."""
        return None


_hook_lock = threading.Lock()
_hook: TransportHook | None = None


def set_transport_hook(hook: TransportHook | None) -> TransportHook | None:
    """Install ``hook`` for every process backend and return the previous one.

    Parameters
    ----------
    hook : TransportHook or None
        The hook to install; None removes the current one.

    Returns
    -------
    TransportHook or None
        The hook that was installed before.
    """
    global _hook
    if hook is not None and not isinstance(hook, TransportHook):
        raise TypeError(
            f"set_transport_hook expects a TransportHook instance or None, "
            f"got {hook!r} of type {type(hook).__name__}"
        )
    with _hook_lock:
        previous, _hook = _hook, hook
    return previous


def get_transport_hook() -> TransportHook | None:
    """Return the installed transport hook, or None."""
    return _hook
