"""Pickling of task batches in the caller and of results in the workers.

Batches are pickled once, in the caller, with cloudpickle's C-accelerated
pickler (functions importable by reference cost one memo entry per batch);
the worker receives plain bytes. A transport session, when present, sees
every object first (``reduce_task_object``) and may reduce results in the
worker (``result_reducer``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle

_PROTOCOL = pickle.HIGHEST_PROTOCOL


class _SessionPickler(cloudpickle.Pickler):
    """cloudpickle, but the transport session gets the first word."""

    def __init__(self, file: Any, reduce_first: Callable[[Any], Any]) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        self._reduce_first = reduce_first

    def reducer_override(self, obj: Any) -> Any:
        rv = self._reduce_first(obj)
        if rv is NotImplemented:
            return super().reducer_override(obj)
        return rv


def _dump(obj: Any, reduce_first: Callable[[Any], Any] | None) -> bytes:
    buf = io.BytesIO()
    if reduce_first is None:
        cloudpickle.Pickler(buf, protocol=_PROTOCOL).dump(obj)
    else:
        _SessionPickler(buf, reduce_first).dump(obj)
    return buf.getvalue()


def _find_culprit(batch: Any, reduce_first: Callable[[Any], Any] | None) -> str:
    """Name the first function or argument of ``batch`` that does not pickle."""
    for pos, (func, args, kwargs) in enumerate(batch.items):
        task = f"task #{batch.first_index + pos}"
        parts = [("the function", func)]
        parts += [(f"argument {i}", a) for i, a in enumerate(args)]
        parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
        for label, value in parts:
            try:
                _dump(value, reduce_first)
            except Exception as exc:
                return (
                    f"{label} of {task}, {value!r}, cannot be pickled "
                    f"({type(exc).__name__}: {exc})"
                )
    return "an object of the batch"


def dumps_batch(batch: Any, session: Any = None) -> bytes:
    """Pickle ``batch`` for a worker; PicklingError names what failed."""
    reduce_first = None if session is None else session.reduce_task_object
    try:
        return _dump(batch, reduce_first)
    except Exception as exc:
        culprit = _find_culprit(batch, reduce_first)
        raise pickle.PicklingError(
            f"Could not pickle the task to send it to the workers: {culprit}. "
            "Use objects importable from a module, or wrap the function with "
            "wrap_non_picklable_objects."
        ) from exc


class PickledResults:
    """Results pickled in the worker by the transport's result reducer."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self):
        return (PickledResults, (self.data,))

    def load(self) -> list:
        return pickle.loads(self.data)


def run_pickled_batch(payload: bytes, result_reducer: Any = None) -> Any:
    """Worker side: unpickle a batch, run it, return (maybe pickled) results."""
    results = pickle.loads(payload)()
    if result_reducer is None:
        return results
    return PickledResults(_dump(results, result_reducer))


class _CloudFunction:
    """Callable pickled by value with cloudpickle (for non-picklable code)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func
        try:
            self.__wrapped__ = func
            self.__name__ = getattr(func, "__name__", type(func).__name__)
            self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        except AttributeError:  # pragma: no cover - exotic callables
            pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)

    def __reduce__(self):
        return (_load_cloud, (cloudpickle.dumps(self._func),))

    def __repr__(self) -> str:
        return f"wrap_non_picklable_objects({self._func!r})"


def _load_cloud(data: bytes) -> _CloudFunction:
    return _CloudFunction(pickle.loads(data))


def wrap_non_picklable_objects(obj: Any, keep_wrapper: bool = True) -> Any:
    """Make ``obj`` travel to workers by value, pickled with cloudpickle.

    Parameters
    ----------
    obj : callable or class
        A function (lambda, closure, interactively defined) or a class.
    keep_wrapper : bool, default=True
        For classes: keep the wrapper class after unpickling.

    Returns
    -------
    callable
        Behaves like ``obj`` and pickles by value.

    Examples
    --------
    >>> from para_core import wrap_non_picklable_objects
    >>> square = wrap_non_picklable_objects(lambda x: x * x)
    >>> square(3)
    9
    """
    if isinstance(obj, type):

        class _Wrapped(obj):  # type: ignore[valid-type, misc]
            def __reduce__(self):
                return (_rebuild_instance, (cloudpickle.dumps(obj), self.__dict__))

        _Wrapped.__name__ = obj.__name__
        _Wrapped.__qualname__ = obj.__qualname__
        _Wrapped.__module__ = obj.__module__
        return _Wrapped
    if not callable(obj):
        raise TypeError(
            f"wrap_non_picklable_objects expects a function or a class, got {obj!r}"
        )
    return _CloudFunction(obj)


def _rebuild_instance(cls_data: bytes, state: dict) -> Any:
    cls = pickle.loads(cls_data)
    inst = cls.__new__(cls)
    inst.__dict__.update(state)
    return inst
