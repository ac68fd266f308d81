"""How a call that ends early stops the work it started.

A call ends early on an error in a task, on an interruption (Ctrl-C, a
timeout, a dead worker) or when the consumer drops its result generator
before the end. Its batches still waiting are cancelled; those already
running are:

- after an interruption or a dropped generator, stopped, workers and all,
  as in joblib, so that nothing waits for them (a dropped generator leaves
  idle process workers alone: nothing of the call runs there any more);
  threads cannot be stopped: they are left to end on their own;
- after a task's error, on the process backends, left to finish: the
  workers are kept for the next call (joblib replaces them), and the error
  is raised at once all the same; the next call on loky's executor stops
  those still running rather than wait behind them (see
  ``backends._loky``);
- after a task's error, on threads, waited for: when the failed call
  returns, no thread still holds its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._mp import TerminatedWorkerError
from .backends._process import _ProcessBackendMixin
from .backends._threads import ThreadingBackend

__all__: list[str] = []


def stop_work(
    backend: Any, futures: Iterable[Any], exc: BaseException, in_context: bool
) -> None:
    """Cancel ``futures`` and stop ``backend``'s work as ``exc`` requires.

    ``in_context``: the backend serves a ``with Parallel(...)`` block and
    must stay ready for its next call.
    """
    # None: a batch whose submission failed.
    futures = [f for f in futures if f is not None]
    process = isinstance(backend, _ProcessBackendMixin)
    dropped = isinstance(exc, GeneratorExit)
    interrupted = (
        dropped
        or not isinstance(exc, Exception)
        or isinstance(exc, (TimeoutError, TerminatedWorkerError))
    )
    if interrupted and (
        type(backend).abort_everything is ThreadingBackend.abort_everything
    ):
        _cancel(futures)
        backend._abandon()
        return
    if dropped:
        # Read before any cancellation: a batch of the call may still run.
        kill = not process or any(_unfinished(f) for f in futures)
    else:
        kill = interrupted or not process
    if kill:
        # Process workers about to be stopped fail their pending batches
        # themselves: not cancelled first (loky would fail a cancelled one
        # again, and its manager thread die).
        if not process:
            _cancel(futures)
        backend.abort_everything(ensure_ready=in_context)
        return
    _cancel(futures)
    left = [f for f in futures if _unfinished(f)]
    note = getattr(backend, "_note_leftovers", None)
    if left and note is not None:
        note(left)


def _cancel(futures: list[Any]) -> None:
    for future in futures:
        cancel = getattr(future, "cancel", None)
        if cancel is not None:
            cancel()


def _unfinished(future: Any) -> bool:
    done = getattr(future, "done", None)
    return done is None or not done()
