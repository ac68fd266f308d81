"""What the dask backend runs on the workers, and how a failure comes back.

A batch travels as ``_run_batch(items, ...)``; large arguments arrive as
scattered ``_Shared`` envelopes, opened here. A task's exception is returned
as a ``_TaskFailure`` (exception and traceback text) instead of failing the
dask task, and the caller re-raises it with its original type.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle

from ._backend_base import BatchedCalls

__all__ = ["_Shared", "_TaskFailure", "_run_batch", "_run_callable"]


class _RemoteTraceback(Exception):
    """Carries the worker-side traceback text as the ``__cause__`` of an error."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _TaskFailure:
    """An exception raised by a task, shipped back as a result with its traceback.

    Returning the error (rather than letting dask mark the task as failed)
    keeps the worker's traceback text, which ``Parallel`` shows to the user,
    and spares the worker log one "Compute Failed" entry per failed task.
    """

    __slots__ = ("exc", "text")

    def __init__(self, exc: BaseException, text: str) -> None:
        self.exc = exc
        self.text = text

    def __reduce__(self):
        return (_TaskFailure, (self.exc, self.text))

    def reraise(self) -> None:
        exc = self.exc
        exc.__cause__ = _RemoteTraceback(f'\n"""\n{self.text}"""')
        raise exc


class _Shared:
    """Envelope of a scattered object, so that dask pickles it in one piece.

    dask serialises a bare list, tuple or dict item by item when it is
    scattered or moved between workers, which is orders of magnitude slower
    than pickling it whole (seconds for a list of 20 000 ints). Buffers of
    arrays inside still travel out-of-band (pickle protocol 5).
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __reduce__(self):
        return (_Shared, (self.value,))


def _open(obj: Any) -> Any:
    return obj.value if type(obj) is _Shared else obj


def _run_batch(items: list, backend_and_jobs: tuple, first_index: int) -> Any:
    """Worker side: run one batch; a failure comes back as a ``_TaskFailure``."""
    items = [
        (f, [_open(a) for a in args], {k: _open(v) for k, v in kwargs.items()})
        for f, args, kwargs in items
    ]
    try:
        return BatchedCalls(items, backend_and_jobs, first_index=first_index)()
    except Exception as exc:
        return _failure(exc)


def _run_callable(func: Callable[[], Any]) -> Any:
    """Worker side, for batches that are not ``BatchedCalls``."""
    try:
        return func()
    except Exception as exc:
        return _failure(exc)


def _failure(exc: Exception) -> Any:
    """The task's exception and traceback text, to be re-raised in the caller.

    Called while ``exc`` is being handled. An exception that cannot be
    pickled is raised again instead, and dask reports it its own way.
    """
    text = traceback.format_exc()
    try:
        cloudpickle.dumps(exc)
    except Exception:
        raise exc from None
    return _TaskFailure(exc, text)
