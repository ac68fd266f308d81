"""``BatchedCalls``: the unit of work a backend runs, several tasks at once.

``Parallel`` cuts its input into batches; a backend runs each batch as an
argument-less callable returning the list of its tasks' results. The tasks
run inside the settings of nested calls (``_settings._nested_scope``), so a
``Parallel`` call made by a task uses the backend its parent chose for it.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import starmap
from typing import Any

from ._settings import _nested_scope

__all__ = ["BatchedCalls"]


class BatchedCalls:
    """Several ``(function, args, kwargs)`` tasks run as one unit of work.

    The constructor is joblib's, so code building batches the joblib way
    works unchanged.

    Parameters
    ----------
    iterator_slice : iterable of tuple
        The ``(function, args, kwargs)`` triples to run, in order.
    backend_and_jobs : tuple, default=(None, None)
        ``(backend, n_jobs)`` that nested ``Parallel`` calls made by the tasks
        use by default (see :meth:`ParallelBackendBase.get_nested_backend`).
    reducer_callback : callable, optional
        Called without arguments each time the batch is pickled (joblib uses
        it to prepare what the pickled arguments refer to).
    pickle_cache : dict, optional
        joblib's cache of pickled functions shared by the batches of a call;
        accepted for compatibility, para's batch pickling does without it.
    first_index : int, default=0
        Position of the first task in the whole call (for error messages).
    """

    # Batches that call one function without keyword arguments (the usual
    # ``delayed(f)(x)`` loop) are kept as the function and its arguments
    # only: cheaper to gather, to pickle and to run (``map``/``starmap`` in
    # C). ``items`` rebuilds the triples when someone asks for them.
    __slots__ = (
        "_args",
        "_backend",
        "_func",
        "_items",
        "_n_jobs",
        "_reducer_callback",
        "_single",
        "first_index",
    )

    def __init__(
        self,
        iterator_slice: Any,
        backend_and_jobs: tuple[Any, Any] = (None, None),
        reducer_callback: Callable[[], Any] | None = None,
        pickle_cache: dict | None = None,
        *,
        first_index: int = 0,
    ) -> None:
        if type(reducer_callback) is int:
            # A batch pickled by para-core 0.1.0 is rebuilt as
            # BatchedCalls(items, backend_and_jobs, first_index).
            first_index, reducer_callback = reducer_callback, None
        items = iterator_slice
        self._items = items if type(items) is list else list(items)
        self._reducer_callback = reducer_callback
        self._func = self._args = None
        self._single = False
        self._backend, self._n_jobs = backend_and_jobs
        self.first_index = first_index

    @classmethod
    def _from_args(
        cls,
        func: Any,
        args: list,
        single: bool,
        backend_and_jobs: tuple[Any, Any] = (None, None),
        first_index: int = 0,
    ) -> BatchedCalls:
        """``func(*a) for a in args``, or ``func(a)`` when ``single``."""
        self = cls.__new__(cls)
        self._items = None
        self._reducer_callback = None
        self._func, self._args, self._single = func, args, single
        self._backend, self._n_jobs = backend_and_jobs
        self.first_index = first_index
        return self

    @property
    def items(self) -> list:
        """The ``(function, args, kwargs)`` triples of the batch."""
        if self._items is None:
            f = self._func
            if self._single:
                self._items = [(f, (x,), {}) for x in self._args]  # type: ignore[union-attr]
            else:
                self._items = [(f, a, {}) for a in self._args]  # type: ignore[union-attr]
        return self._items

    @items.setter
    def items(self, value: list) -> None:
        self._items = value
        self._func = self._args = None
        self._single = False

    def _run(self) -> list:
        if self._args is None:
            return [f(*a, **kw) for f, a, kw in self._items]
        if self._single:
            return list(map(self._func, self._args))
        return list(starmap(self._func, self._args))

    def __call__(self) -> list:
        if self._backend is None:
            return self._run()
        with _nested_scope(self._backend, self._n_jobs):
            return self._run()

    def __len__(self) -> int:
        return len(self._items if self._args is None else self._args)

    def __reduce__(self):
        if self._reducer_callback is not None:
            self._reducer_callback()
        return (
            _rebuild_batch,
            (self.items, (self._backend, self._n_jobs), self.first_index),
        )

    def describe(self) -> str:
        """Short text naming the tasks of this batch, for error messages."""
        n = len(self)
        last = self.first_index + n - 1
        span = (
            f"task #{self.first_index}"
            if n == 1
            else f"tasks #{self.first_index}-#{last}"
        )
        if n:
            func = self._func if self._args is not None else self._items[0][0]
            name = getattr(func, "__qualname__", None) or repr(func)
            span += f" (calls of {name})"
        return span


def _rebuild_batch(
    items: list, backend_and_jobs: tuple[Any, Any], first_index: int
) -> BatchedCalls:
    """Unpickle a batch (keeps ``first_index``, a keyword-only argument)."""
    return BatchedCalls(items, backend_and_jobs, first_index=first_index)
