"""``wrap_non_picklable_objects``: functions and classes pickled by value.

A wrapped function pickles as its cloudpickle bytes and unpickles into a
new wrapper (``_load_cloud``); instances of a wrapped class rebuild their
class the same way (``_rebuild_instance``). Those two names are inside the
pickles: they stay in this module.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = ["wrap_non_picklable_objects"]


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
