"""Compact batches: runs of ``f(x)`` calls kept as ``f`` and a list of ``x``.

A batch whose tasks all call one function without keyword arguments is
pickled, shipped and run as ``(f, [args])``: cheaper at every step than a
list of ``(f, args, kwargs)`` triples (``map``/``starmap`` in the worker).
``take_compact`` reads such a run straight from the caller's iterator;
``compact_calls`` recognises one in a list of tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from types import MethodType
from typing import Any

from ._accel import speedups

__all__ = ["END", "FULL", "compact_calls", "compact_kind", "take_compact"]


def compact_calls(items: list) -> tuple[Any, bool, list | None]:
    """Return ``(f, single, args)`` when every task calls ``f`` without kwargs.

    ``single``: each task has one positional argument and ``args`` holds
    those values; otherwise ``args`` holds the argument tuples. Returns
    ``(None, False, None)`` for anything else (several functions, kwargs,
    args that are not tuples, odd items).
    """
    kind = compact_kind(items[0]) if items else None
    if kind is not None:
        f, one_arg = kind
        # Mixed arities (one argument, then two): the tuples form.
        for single in (True, False) if one_arg else (False,):
            args: list = []
            if take_compact(iter(items), f, single, len(items), args) is FULL:
                return f, single, args
    return None, False, None


def compact_kind(item: Any) -> tuple[Any, bool] | None:
    """``(f, single)`` when the task ``item`` fits a compact batch, else None."""
    try:
        func, args, kwargs = item
        if type(args) is tuple and type(kwargs) is dict and not kwargs:
            return func, len(args) == 1
    except Exception:
        pass
    return None


# -- reading compact batches ------------------------------------------------
#
# ``delayed(f)(x)`` runs once per task and the caller's generator is the
# larger part of the dispatch cost; the loop that reads it must add little.
# One pass, straight from the iterator: each (f, args, kwargs) triple dies
# at once (which spares the garbage collector), the checks are identity and
# type tests. The accelerator runs the same loop in C, about 6x faster.

if speedups is not None:
    FULL: Any = speedups.FULL
    END: Any = speedups.END
else:
    #: ``take_compact`` read ``size`` tasks.
    FULL = object()
    #: ``take_compact``'s input ran out.
    END = object()
_NO_KWARGS: dict = {}


def take_compact_py(
    it: Iterator[Any],
    f: Any,
    single: bool,
    size: int,
    out: list,
    tuple: type = tuple,
    type: type = type,
    MethodType: type = MethodType,
    E: dict = _NO_KWARGS,
) -> Any:
    """Read up to ``size`` calls of ``f`` from ``it`` into ``out``.

    Appends each task's argument (``single``) or argument tuple. Returns
    :data:`FULL`, :data:`END`, or the first task that does not fit (read
    from ``it`` but not added: the caller keeps it for the next batch).
    Arguments that are not tuples are never iterated here: ``f(*args)``
    must see an iterator whole.
    """
    app = out.append
    n0 = len(out)
    if single:
        for item in islice(it, size):
            try:
                func, a, kw = item
                if type(a) is not tuple or kw != E:
                    return item
                (x,) = a
            except Exception:
                return item
            if func is not f and (type(func) is not MethodType or func != f):
                return item
            app(x)
    else:
        for item in islice(it, size):
            try:
                func, a, kw = item
                if type(a) is not tuple or kw != E:
                    return item
            except Exception:
                return item
            if func is not f and (type(func) is not MethodType or func != f):
                return item
            app(a)
    return FULL if len(out) - n0 == size else END


take_compact: Callable[[Iterator[Any], Any, bool, int, list], Any] = (
    speedups.take_compact if speedups is not None else take_compact_py
)
