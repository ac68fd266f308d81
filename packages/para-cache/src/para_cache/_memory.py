"""Memory: cache a function's results in a store, keyed by its arguments.

Data flow::

    Memory(location, backend) --_store_registry._store_backend_factory--> store
    memory.cache(func) --> MemorizedFunc(func, store)   (see _memorized)
                       --> NotMemorizedFunc(func)       when location is None
    memory.reduce_size(...) --> store.enforce_store_limits (LRU by access time)
"""

from __future__ import annotations

import datetime
import functools
import inspect
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._logger import Logger
from ._memorized import _FUNCTION_HASHES, AsyncMemorizedFunc, MemorizedFunc
from ._results import AsyncNotMemorizedFunc, NotMemorizedFunc
from ._store_registry import _store_backend_factory


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------
class Memory(Logger):
    """Cache function results in a store, keyed by their arguments.

    Parameters
    ----------
    location : str, PathLike or None
        Folder (or URL with ``backend="fsspec"``) of the cache; None disables
        caching. A str location gets a ``joblib`` sub-folder, like joblib.
    backend : str, default "local"
        Store backend: ``"local"``, ``"fsspec"`` or a registered name.
    mmap_mode : {None, "r+", "r", "w+", "c"}, optional
        Memory-map numpy arrays when loading cached outputs.
    compress : bool, int or (str, int), default False
        Compression of stored outputs (not memory-mappable).
    verbose : int, default 1
        Verbosity: 0 silent, 1 prints misses, >10 prints hits too.
    backend_options : dict, optional
        Extra store options (e.g. ``{"storage_options": {...}}`` for fsspec).

    Examples
    --------
    >>> import shutil, tempfile
    >>> location = tempfile.mkdtemp()
    >>> memory = Memory(location, verbose=0)
    >>> @memory.cache
    ... def square(x):
    ...     return x * x
    >>> square(3)
    9
    >>> shutil.rmtree(location)
    """

    def __init__(
        self,
        location: str | os.PathLike | None = None,
        backend: str = "local",
        mmap_mode: str | None = None,
        compress: bool | int | tuple[str, int] = False,
        verbose: int = 1,
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        Logger.__init__(self)
        self._verbose = verbose
        self.mmap_mode = mmap_mode
        self.timestamp = time.time()
        self.backend = backend
        self.compress = compress
        self.backend_options = {} if backend_options is None else backend_options
        if compress and mmap_mode is not None:
            warnings.warn("Compressed results cannot be memmapped", stacklevel=2)
        self.location = location
        if isinstance(location, str):
            location = os.path.join(location, "joblib")
        self.store_backend = _store_backend_factory(
            backend,
            location,
            verbose=self._verbose,
            backend_options={
                "compress": compress,
                "mmap_mode": mmap_mode,
                **self.backend_options,
            },
        )

    def cache(
        self,
        func: Callable | None = None,
        ignore: list[str] | None = None,
        verbose: int | None = None,
        mmap_mode: str | bool | None = False,
        cache_validation_callback: Callable[[dict], bool] | None = None,
    ) -> Any:
        """Wrap ``func`` so its results are cached; usable as a decorator.

        Parameters
        ----------
        func : callable, optional
            Function (plain, method, lambda, nested, async) to wrap. Omit it to
            get a decorator taking the other options.
        ignore : list of str, optional
            Argument names left out of the cache key.
        verbose : int, optional
            Verbosity for this function; defaults to the Memory's.
        mmap_mode : {None, "r+", "r", "w+", "c"}, optional
            Defaults to the Memory's.
        cache_validation_callback : callable, optional
            Called with an entry's metadata; a false result recomputes the
            entry (see :func:`expires_after`).

        Returns
        -------
        MemorizedFunc or NotMemorizedFunc
            The wrapper (``Async*`` variants for coroutine functions).

        Raises
        ------
        ValueError
            If ``cache_validation_callback`` is not callable.
        """
        if cache_validation_callback is not None and not callable(
            cache_validation_callback
        ):
            raise ValueError(
                "cache_validation_callback needs to be callable. "
                f"Got {cache_validation_callback}."
            )
        if func is None:
            return functools.partial(
                self.cache,
                ignore=ignore,
                mmap_mode=mmap_mode,
                verbose=verbose,
                cache_validation_callback=cache_validation_callback,
            )
        if self.store_backend is None:
            if inspect.iscoroutinefunction(func):
                return AsyncNotMemorizedFunc(func)
            return NotMemorizedFunc(func)
        if verbose is None:
            verbose = self._verbose
        if mmap_mode is False:
            mmap_mode = self.mmap_mode
        if isinstance(func, MemorizedFunc):
            func = func.func
        cls = AsyncMemorizedFunc if inspect.iscoroutinefunction(func) else MemorizedFunc
        return cls(
            func,
            location=self.store_backend,
            backend=self.backend,
            ignore=ignore,
            mmap_mode=mmap_mode,
            compress=self.compress,
            verbose=verbose,
            timestamp=self.timestamp,
            cache_validation_callback=cache_validation_callback,
        )

    def clear(self, warn: bool = True) -> None:
        """Delete the whole cache."""
        if warn:
            self.warn("Flushing completely the cache")
        if self.store_backend is not None:
            self.store_backend.clear()
            # Functions must rewrite their code file after a full wipe.
            _FUNCTION_HASHES.clear()

    def reduce_size(
        self,
        bytes_limit: int | str | None = None,
        items_limit: int | None = None,
        age_limit: datetime.timedelta | None = None,
    ) -> None:
        """Delete least recently used entries until the cache fits the limits.

        Parameters
        ----------
        bytes_limit : int or str, optional
            Maximum total size, in bytes or like ``"1G"``, ``"500M"``.
        items_limit : int, optional
            Maximum number of entries.
        age_limit : datetime.timedelta, optional
            Entries last used longer ago are deleted.

        Raises
        ------
        ValueError
            On a negative ``age_limit`` or a malformed ``bytes_limit``.
        """
        if self.store_backend is None:
            return
        if bytes_limit is None and items_limit is None and age_limit is None:
            return
        self.store_backend.enforce_store_limits(bytes_limit, items_limit, age_limit)

    def eval(self, func: Callable, *args: Any, **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` through the cache."""
        if self.store_backend is None:
            return func(*args, **kwargs)
        return self.cache(func)(*args, **kwargs)

    def __repr__(self):
        location = None if self.store_backend is None else self.store_backend.location
        return f"{type(self).__name__}(location={location})"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["timestamp"] = None
        return state


def expires_after(
    days: float = 0,
    seconds: float = 0,
    microseconds: float = 0,
    milliseconds: float = 0,
    minutes: float = 0,
    hours: float = 0,
    weeks: float = 0,
) -> Callable[[dict], bool]:
    """Return a ``cache_validation_callback`` that expires entries after a time.

    Parameters
    ----------
    days, seconds, microseconds, milliseconds, minutes, hours, weeks : float
        Passed to :class:`datetime.timedelta`.

    Returns
    -------
    callable
        ``callback(metadata) -> bool``: True while the entry is younger.

    Examples
    --------
    >>> valid = expires_after(seconds=10)
    >>> import time
    >>> valid({"time": time.time()})
    True
    """
    limit = datetime.timedelta(
        days=days,
        seconds=seconds,
        microseconds=microseconds,
        milliseconds=milliseconds,
        minutes=minutes,
        hours=hours,
        weeks=weeks,
    ).total_seconds()

    def cache_validation_callback(metadata):
        # Unreadable metadata ({}, e.g. torn by a power loss): expired.
        stamp = metadata.get("time")
        return stamp is not None and time.time() - stamp < limit

    return cache_validation_callback


__all__ = ["Memory", "expires_after"]
