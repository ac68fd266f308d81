"""``delayed``: capture a call as a ``(function, args, kwargs)`` task.

``delayed(f)(x)`` runs once per task in typical code, so both calls are
kept cheap: the wrapper of the last plain function is cached, and with the
C accelerator (``_accel``) both ``delayed`` and its wrappers are C objects
that behave as the Python versions below.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

from ._accel import speedups

__all__ = ["delayed"]


def delayed(function: Callable[..., Any]) -> Callable[..., tuple]:
    """Capture a call ``function(*args, **kwargs)`` for :class:`Parallel`.

    Parameters
    ----------
    function : callable

    Returns
    -------
    callable
        Returns the tuple ``(function, args, kwargs)`` when called; it
        carries the wrapped function's name, docstring and ``__wrapped__``.

    Examples
    --------
    >>> from para_core import delayed
    >>> delayed(pow)(2, 5)
    (<built-in function pow>, (2, 5), {})
    """
    # The wrapper of the last function is kept (one tuple, read atomically).
    last = _LAST_DELAYED
    if last[0] is function:
        return last[1]
    return _new_delayed(function)


def _with_identity(wrapper: Any, function: Callable[..., Any]) -> Any:
    """``wrapper`` with ``function``'s name, docstring and ``__wrapped__``."""
    try:
        functools.update_wrapper(wrapper, function)
    except (AttributeError, TypeError):  # pragma: no cover - exotic callables
        wrapper.__wrapped__ = function
    return wrapper


def _new_delayed(function: Callable[..., Any]) -> Callable[..., tuple]:
    global _LAST_DELAYED

    def delayed_function(*args: Any, **kwargs: Any) -> tuple:
        return function, args, kwargs

    _with_identity(delayed_function, function)
    if type(function) in _CACHED_TYPES:
        _LAST_DELAYED = (function, delayed_function)
    return delayed_function


def _forget_delayed() -> None:
    """Drop the cached wrapper (and the reference to its function)."""
    global _LAST_DELAYED
    _LAST_DELAYED = (None, None)
    if delayed is not delayed_py:
        delayed.forget()


# Bound methods are new objects at each ``obj.method`` and would never hit.
_CACHED_TYPES = (types.FunctionType, types.BuiltinFunctionType)
_LAST_DELAYED: tuple[Any, Any] = (None, None)

delayed_py = delayed
if speedups is not None:
    # Same caching rule, in C; the public face (docstring, signature through
    # __wrapped__, pickling by reference) is the Python function's.
    delayed = speedups.Delayer(  # type: ignore[assignment]
        lambda function: _with_identity(speedups.DelayedFunction(function), function)
    )
    functools.update_wrapper(delayed, delayed_py)
