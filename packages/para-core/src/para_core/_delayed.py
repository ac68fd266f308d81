"""``delayed``: capture a call as a ``(function, args, kwargs)`` task.

The wrapper is built once per function and cached (last function only), since
``delayed(f)(x)`` runs once per task in typical code.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

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
    # ``delayed(f)(x)`` runs once per task: the wrapper of the last function
    # is kept (one tuple, read atomically), the rest is a plain closure call.
    last = _LAST_DELAYED
    if last[0] is function:
        return last[1]
    return _new_delayed(function)


def _new_delayed(function: Callable[..., Any]) -> Callable[..., tuple]:
    global _LAST_DELAYED

    def delayed_function(*args: Any, **kwargs: Any) -> tuple:
        return function, args, kwargs

    try:
        functools.update_wrapper(delayed_function, function)
    except (AttributeError, TypeError):  # pragma: no cover - exotic callables
        delayed_function.__wrapped__ = function  # type: ignore[attr-defined]
    if type(function) in _CACHED_TYPES:
        _LAST_DELAYED = (function, delayed_function)
    return delayed_function


def _forget_delayed() -> None:
    """Drop the cached wrapper (and the reference to its function)."""
    global _LAST_DELAYED
    _LAST_DELAYED = (None, None)


# Bound methods are new objects at each ``obj.method`` and would never hit.
_CACHED_TYPES = (types.FunctionType, types.BuiltinFunctionType)
_LAST_DELAYED: tuple[Any, Any] = (None, None)
