"""How a call that ends early stops the work it started.

A call ends early on an error in a task, on an interruption (Ctrl-C, a
timeout, a dead worker) or when the consumer drops its result generator
before the end. Its batches still waiting are cancelled; those already
running are, as in joblib:

- stopped, workers and all, after an interruption or a dropped generator,
  so that the next call does not wait for them (a dropped generator leaves
  idle process workers alone: nothing of the call runs there any more);
- left to finish after a task's error on the process backends, whose
  workers are reused (the error is raised at once all the same);
- for threads, which cannot be stopped: waited for after an error (no thread
  still holds the failed call's arguments when it returns), abandoned when
  the generator is dropped.
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
    futures = list(futures)
    process = isinstance(backend, _ProcessBackendMixin)
    if isinstance(exc, GeneratorExit):
        if type(backend).abort_everything is ThreadingBackend.abort_everything:
            _cancel(futures)
            backend._abandon()
            return
        # Read before any cancellation: a batch of the call may still run.
        kill = not process or any(_unfinished(f) for f in futures)
    else:
        kill = (
            not process
            or not isinstance(exc, Exception)
            or isinstance(exc, (TimeoutError, TerminatedWorkerError))
        )
    if not (kill and process):
        # Workers about to be stopped fail their pending batches themselves
        # (loky would fail a cancelled one again, and its manager thread die).
        _cancel(futures)
    if kill:
        backend.abort_everything(ensure_ready=in_context)


def _cancel(futures: list[Any]) -> None:
    for future in futures:
        cancel = getattr(future, "cancel", None)
        if cancel is not None:
            cancel()


def _unfinished(future: Any) -> bool:
    done = getattr(future, "done", None)
    return done is None or not done()
