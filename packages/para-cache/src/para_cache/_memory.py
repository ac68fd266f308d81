"""Memory: cache a function's results on disk, keyed by its arguments.

Data flow of a call ``mf(*args, **kwargs)`` on a :class:`MemorizedFunc`::

    args, kwargs --filter_args--> {name: value} --hash (xxh3/md5)--> args_id
    call_id = (func_id, args_id)   func_id = "<module path>/<function name>"
        |
        |-- function code changed since func_code.py was written? -> clear
        |-- store has <location>/<func_id>/<args_id>/output.pkl ?
        |       yes -> para_persist.load  (corrupt -> CacheWarning, recompute)
        |       no  -> run func -> metadata.json, output.pkl (temp + rename)
        v
    output
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import inspect
import logging
import os
import pydoc
import re
import textwrap
import time
import tokenize
import traceback
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from ._hashing import fast_hash_name
from ._hashing import hash as _hash
from ._inspect import (
    ArgSpec,
    filter_args,
    format_call,
    format_signature,
    get_func_code,
    get_func_name,
)
from ._logger import Logger, format_time, pformat
from ._store import CacheWarning, StoreBackendBase, _store_backend_factory

FIRST_LINE_TEXT = "# first line:"

# Functions whose code was already checked against func_code.py in this
# process: skips a file read on every call.
_FUNCTION_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class JobLibCollisionWarning(UserWarning):
    """Warn that two different functions may share one cache folder."""


def extract_first_line(func_code: str) -> tuple[str, int]:
    """Split the ``# first line: N`` header off a stored function code."""
    if func_code.startswith(FIRST_LINE_TEXT):
        header, _, body = func_code.partition("\n")
        return body, int(header[len(FIRST_LINE_TEXT) :])
    return func_code, -1


def _build_func_identifier(func: Callable) -> str:
    modules, name = get_func_name(func)
    return os.path.join(*modules, name)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
class MemorizedResult(Logger):
    """Picklable reference to one cached output.

    Parameters
    ----------
    location : str or StoreBackendBase
        The store (or its location) holding the entry.
    call_id : tuple of str
        ``(func_id, args_id)``.
    backend : str, default "local"
        Store backend name used when ``location`` is a str.
    mmap_mode : {None, "r+", "r", "w+", "c"}, optional
        Memory-map arrays when loading.
    verbose : int, default 0
        Verbosity.
    timestamp, metadata : optional
        Internal.
    """

    def __init__(
        self,
        location,
        call_id,
        backend="local",
        mmap_mode=None,
        verbose=0,
        timestamp=None,
        metadata=None,
    ):
        Logger.__init__(self)
        self._call_id = call_id
        self.store_backend = _store_backend_factory(
            backend, location, verbose=verbose, backend_options={"mmap_mode": mmap_mode}
        )
        self.mmap_mode = mmap_mode
        if metadata is None:
            metadata = self.store_backend.get_metadata(call_id)
        self.metadata = metadata
        self.duration = metadata.get("duration", None)
        self.verbose = verbose
        self.timestamp = timestamp

    @property
    def func(self) -> str:
        """The function identifier."""
        return self.func_id

    @property
    def func_id(self) -> str:
        """The function identifier (its folder below the store)."""
        return self._call_id[0]

    @property
    def args_id(self) -> str:
        """The argument hash (the entry's folder name)."""
        return self._call_id[1]

    def get(self) -> Any:
        """Load and return the cached value.

        Raises
        ------
        KeyError
            If the entry was cleared or is corrupted.
        """
        try:
            return self.store_backend.load_item(
                self._call_id,
                timestamp=self.timestamp,
                metadata=self.metadata,
                verbose=self.verbose,
            )
        except (KeyError, ValueError) as exc:
            path = os.path.join(self.store_backend.location, *self._call_id)
            raise KeyError(
                "Error while trying to load a MemorizedResult's value. "
                f"It seems that this folder is corrupted : {path}"
            ) from exc

    def clear(self) -> None:
        """Delete the cached value."""
        self.store_backend.clear_item(self._call_id)

    def __repr__(self) -> str:
        func_id, args_id = self._call_id
        return (
            f'{type(self).__name__}(location="{self.store_backend.location}", '
            f'func="{func_id}", args_id="{args_id}")'
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["timestamp"] = None
        return state


class NotMemorizedResult:
    """Holds a value in memory; what ``call_and_shelve`` returns without a cache.

    Parameters
    ----------
    value : object
        The function's output.
    """

    __slots__ = ("valid", "value")

    def __init__(self, value):
        self.value = value
        self.valid = True

    def get(self) -> Any:
        """Return the value; KeyError once cleared."""
        if not self.valid:
            raise KeyError("No value stored.")
        return self.value

    def clear(self) -> None:
        """Forget the value."""
        self.valid = False
        self.value = None

    def __repr__(self) -> str:
        if self.valid:
            return f"{type(self).__name__}({pformat(self.value)})"
        return f"{type(self).__name__} with no value"

    def __getstate__(self) -> dict:
        return {"valid": self.valid, "value": self.value}

    def __setstate__(self, state: dict) -> None:
        self.valid = state["valid"]
        self.value = state["value"]


# ---------------------------------------------------------------------------
# Functions without a cache
# ---------------------------------------------------------------------------
class NotMemorizedFunc:
    """Pass-through wrapper used when ``Memory(location=None)``.

    Parameters
    ----------
    func : callable
        The wrapped function.
    """

    def __init__(self, func):
        self.func = func

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def call_and_shelve(self, *args, **kwargs):
        """Call the function and wrap its output in a NotMemorizedResult."""
        return NotMemorizedResult(self.func(*args, **kwargs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(func={self.func})"

    def clear(self, warn=True):
        """Nothing to clear."""

    def call(self, *args, **kwargs):
        """Call the function; return ``(output, {})``."""
        return self.func(*args, **kwargs), {}

    def check_call_in_cache(self, *args, **kwargs):
        """Always False: nothing is cached."""
        return False


class AsyncNotMemorizedFunc(NotMemorizedFunc):
    """:class:`NotMemorizedFunc` for coroutine functions."""

    async def call_and_shelve(self, *args, **kwargs):
        """Await the function and wrap its output in a NotMemorizedResult."""
        return NotMemorizedResult(await self.func(*args, **kwargs))


# ---------------------------------------------------------------------------
# Cached functions
# ---------------------------------------------------------------------------
class MemorizedFunc(Logger):
    """A function whose results are cached in a store.

    Parameters
    ----------
    func : callable
        The function to cache.
    location : str, PathLike or StoreBackendBase
        The store or where it lives.
    backend : str, default "local"
        Store backend name.
    ignore : list of str, optional
        Argument names left out of the cache key.
    mmap_mode : {None, "r+", "r", "w+", "c"}, optional
        Memory-map arrays when loading outputs.
    compress : bool, int or (str, int), default False
        Compression of the stored outputs.
    verbose : int, default 1
        Verbosity of the messages.
    timestamp : float, optional
        Reference time for the messages.
    cache_validation_callback : callable, optional
        Called with an entry's metadata; a false result recomputes it.
    """

    def __init__(
        self,
        func,
        location,
        backend="local",
        ignore=None,
        mmap_mode=None,
        compress=False,
        verbose=1,
        timestamp=None,
        cache_validation_callback=None,
    ):
        Logger.__init__(self)
        self.mmap_mode = mmap_mode
        self.compress = compress
        self.func = func
        self.cache_validation_callback = cache_validation_callback
        self.func_id = _build_func_identifier(func)
        self.ignore = ignore if ignore is not None else []
        self._verbose = verbose
        self.store_backend = _store_backend_factory(
            backend,
            location,
            verbose=verbose,
            backend_options={"compress": compress, "mmap_mode": mmap_mode},
        )
        if self.store_backend is not None:
            self.store_backend.store_cached_func_code([self.func_id])
        self.timestamp = timestamp if timestamp is not None else time.time()
        with contextlib.suppress(Exception):  # e.g. numpy ufuncs
            functools.update_wrapper(self, func)
        if inspect.isfunction(func):
            doc = pydoc.TextDoc().document(func).replace("\n", "\n\n", 1)
            doc = re.sub("\x08.", "", doc)
        else:
            doc = func.__doc__
        self.__doc__ = f"Memoized version of {doc}"
        self._func_code_info = None
        self._func_code_id = None
        self._spec: ArgSpec | None = None
        self._hash_name = fast_hash_name()

    # -- keys ---------------------------------------------------------------
    def _get_args_id(self, *args, **kwargs) -> str:
        spec = self._spec
        if spec is None:
            spec = self._spec = ArgSpec(self.func)
        filtered = filter_args(self.func, self.ignore, args, kwargs, spec=spec)
        return _hash(
            filtered,
            hash_name=self._hash_name,
            coerce_mmap=self.mmap_mode is not None,
        )

    # -- code change detection ----------------------------------------------
    @property
    def func_code_info(self):
        """``(source, source file, first line)`` of the function, cached."""
        code = getattr(self.func, "__code__", None)
        if code is not None:
            if self._func_code_id is None:
                self._func_code_id = id(code)
            elif id(code) != self._func_code_id:
                self._func_code_info = None
                self._func_code_id = id(code)
        if self._func_code_info is None:
            # Read in the defining process: child processes may lack the source.
            self._func_code_info = get_func_code(self.func)
        return self._func_code_info

    def _hash_func(self):
        code_hash = hash(getattr(self.func, "__code__", None))
        return id(self.func), hash(self.func), code_hash

    def _write_func_code(self, func_code, first_line):
        text = f"{FIRST_LINE_TEXT} {first_line}\n{func_code}"
        self.store_backend.store_cached_func_code([self.func_id], text)
        named = getattr(self.func, "__name__", "<lambda>") != "<lambda>"
        if named:
            # Unhashable or not weak-referenceable callables are just re-read.
            with contextlib.suppress(TypeError):
                _FUNCTION_HASHES[self.func] = self._hash_func()

    def _check_previous_func_code(self, stacklevel=2):
        try:
            known = _FUNCTION_HASHES.get(self.func)
            if known is not None and known == self._hash_func():
                return True
        except TypeError:
            pass
        func_code, source_file, first_line = self.func_code_info
        try:
            old_code, old_first_line = extract_first_line(
                self.store_backend.get_cached_func_code([self.func_id])
            )
        except OSError:
            self._write_func_code(func_code, first_line)
            return False
        if old_code == func_code:
            try:
                if getattr(self.func, "__name__", "<lambda>") != "<lambda>":
                    _FUNCTION_HASHES[self.func] = self._hash_func()
            except TypeError:
                pass
            return True
        self._warn_collision(
            func_code, source_file, first_line, old_code, old_first_line, stacklevel
        )
        if self._verbose > 10:
            _, name = get_func_name(self.func, resolv_alias=False)
            self.warn(f"Function {name} (identified by {self.func_id}) has changed.")
        self.clear(warn=True)
        return False

    def _warn_collision(
        self, func_code, source_file, first_line, old_code, old_first_line, stacklevel
    ):
        _, name = get_func_name(self.func, resolv_alias=False, win_characters=False)
        if old_first_line == first_line == -1 or name == "<lambda>":
            where = name if first_line == -1 else f"{name} ({source_file}:{first_line})"
            warnings.warn(
                JobLibCollisionWarning(
                    f"Cannot detect name collisions for function '{where}'"
                ),
                stacklevel=stacklevel,
            )
        if old_first_line == first_line or source_file is None:
            return
        if os.path.exists(source_file):
            n_lines = len(func_code.split("\n"))
            try:
                with tokenize.open(source_file) as f:
                    lines = f.readlines()
            except (OSError, SyntaxError):
                return
            on_disk = "".join(lines[old_first_line - 1 : old_first_line + n_lines - 2])
            collision = on_disk.rstrip() == old_code.rstrip()
        else:
            collision = source_file.startswith("<doctest ")
        if collision:
            warnings.warn(
                JobLibCollisionWarning(
                    f"Possible name collisions between functions '{name}' "
                    f"({source_file}:{old_first_line}) and '{name}' "
                    f"({source_file}:{first_line})"
                ),
                stacklevel=stacklevel,
            )

    # -- cache lookup -------------------------------------------------------
    def _is_in_cache_and_valid(self, call_id):
        if not self._check_previous_func_code(stacklevel=4):
            return False
        if not self.store_backend.contains_item(call_id):
            return False
        callback = self.cache_validation_callback
        if callback is not None and not callback(
            self.store_backend.get_metadata(call_id)
        ):
            self.store_backend.clear_item(call_id)
            return False
        return True

    def _cached_call(self, args, kwargs, shelving):
        args_id = self._get_args_id(*args, **kwargs)
        call_id = (self.func_id, args_id)
        if self._verbose >= 20:
            self._log_query(call_id, args, kwargs)
        if shelving or self.cache_validation_callback is not None:
            usable = self._is_in_cache_and_valid(call_id)
        else:
            # Hot path: skip the existence check, a missing file is a miss.
            usable = self._check_previous_func_code(stacklevel=3)
        if usable:
            if shelving:
                return self._get_memorized_result(call_id), {}
            try:
                start = time.time()
                output = self._load_item(call_id)
                if self._verbose > 4:
                    self._print_duration(time.time() - start, context="cache loaded ")
                return output, {}
            except KeyError:
                pass  # cleared by another process meanwhile: just recompute
            except Exception:
                _, signature = format_signature(self.func, *args, **kwargs)
                warnings.warn(
                    f"Corrupted cache entry {'/'.join(call_id)} for {signature}; "
                    "it is removed and recomputed. Cause:\n"
                    f"{traceback.format_exc()}",
                    CacheWarning,
                    stacklevel=3,
                )
                self.store_backend.clear_item(call_id)
        if self._verbose > 10:
            _, name = get_func_name(self.func)
            location = self.store_backend.get_cached_func_info([self.func_id])
            self.warn(
                f"Computing func {name}, argument hash {args_id} "
                f"in location {location['location']}"
            )
        return self._call(call_id, args, kwargs, shelving)

    def _log_query(self, call_id, args, kwargs):
        logging.basicConfig(level=logging.INFO)
        _, name = get_func_name(self.func)
        _, signature = format_signature(self.func, *args, **kwargs)
        location = self.store_backend.get_cached_func_info([self.func_id])["location"]
        self.info(
            textwrap.dedent(
                f"""
                Querying {name} with signature
                {signature}.

                (argument hash {call_id[1]})

                The store location is {location}.
                """
            )
        )

    # -- public API ---------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self._cached_call(args, kwargs, shelving=False)[0]

    def call_and_shelve(self, *args, **kwargs):
        """Call (or look up) the function and return a :class:`MemorizedResult`.

        Returns
        -------
        MemorizedResult
            Small picklable reference; ``.get()`` loads the value.
        """
        return self._cached_call(args, kwargs, shelving=True)[0]

    def check_call_in_cache(self, *args, **kwargs):
        """Return True if this call's result is cached and still valid.

        Hashes the arguments and checks the store; never calls the function.
        """
        call_id = (self.func_id, self._get_args_id(*args, **kwargs))
        return self._is_in_cache_and_valid(call_id)

    def call(self, *args, **kwargs):
        """Run the function even if cached, store and return the result.

        Returns
        -------
        output : object
            The function's output.
        metadata : dict
            ``duration``, ``input_args`` (reprs) and ``time`` of the call.
        """
        call_id = (self.func_id, self._get_args_id(*args, **kwargs))
        return self._call(call_id, args, kwargs)

    def clear(self, warn=True):
        """Delete every cached result of this function."""
        if self._verbose > 0 and warn:
            self.warn(f"Clearing function cache identified by {self.func_id}")
        self.store_backend.clear_path([self.func_id])
        func_code, _, first_line = self.func_code_info
        self._write_func_code(func_code, first_line)

    # -- computing ----------------------------------------------------------
    def _call(self, call_id, args, kwargs, shelving=False):
        self._before_call(args, kwargs)
        start = time.time()
        output = self.func(*args, **kwargs)
        return self._after_call(call_id, args, kwargs, shelving, output, start)

    def _before_call(self, args, kwargs):
        if self._verbose > 0:
            print(format_call(self.func, args, kwargs))

    def _after_call(self, call_id, args, kwargs, shelving, output, start_time):
        duration = time.time() - start_time
        metadata = self._make_metadata(duration, args, kwargs)
        self.store_backend.store_entry(call_id, output, metadata, verbose=self._verbose)
        if self._verbose > 0:
            self._print_duration(time.time() - start_time)
        if shelving:
            return self._get_memorized_result(call_id, metadata), metadata
        if self.mmap_mode is not None:
            # Same kind of object (memmap) on the first call as on later hits.
            # If the entry was not written (warned already), keep the value.
            with contextlib.suppress(Exception):
                output = self._load_item(call_id, metadata)
        return output, metadata

    def _make_metadata(self, duration, args, kwargs):
        start = time.time()
        arguments = filter_args(self.func, self.ignore, args, kwargs, spec=self._spec)
        metadata = {
            "duration": duration,
            "input_args": {k: repr(v) for k, v in arguments.items()},
            "time": start,
        }
        spent = time.time() - start
        if spent > 0.5:
            warnings.warn(
                f"Persisting input arguments took {spent:.2f}s to run. If this "
                "happens often in your code, it can cause performance problems "
                "(results will be correct in all cases). The reason for this is "
                "probably some large input arguments for a wrapped function.",
                stacklevel=5,
            )
        return metadata

    def _persist_input(self, duration, call_id, args, kwargs, this_duration_limit=0.5):
        metadata = self._make_metadata(duration, args, kwargs)
        self.store_backend.store_metadata(call_id, metadata)
        return metadata

    def _get_memorized_result(self, call_id, metadata=None):
        return MemorizedResult(
            self.store_backend,
            call_id,
            metadata=metadata,
            timestamp=self.timestamp,
            verbose=self._verbose - 1,
        )

    def _load_item(self, call_id, metadata=None):
        return self.store_backend.load_item(
            call_id, metadata=metadata, timestamp=self.timestamp, verbose=self._verbose
        )

    def _print_duration(self, duration, context=""):
        _, name = get_func_name(self.func)
        msg = f"{name} {context}- {format_time(duration)}"
        print(max(0, 80 - len(msg)) * "_" + msg)

    def __getstate__(self):
        _ = self.func_code_info  # introspect here: children may lack sources
        state = self.__dict__.copy()
        state["timestamp"] = None
        state["_func_code_id"] = None
        return state

    def __repr__(self):
        return (
            f"{type(self).__name__}(func={self.func}, "
            f"location={self.store_backend.location})"
        )


class AsyncMemorizedFunc(MemorizedFunc):
    """:class:`MemorizedFunc` for coroutine functions: calls are awaited."""

    async def __call__(self, *args, **kwargs):
        out = self._cached_call(args, kwargs, shelving=False)
        if asyncio.iscoroutine(out):
            out = await out
        return out[0]

    async def call_and_shelve(self, *args, **kwargs):
        """Await (or look up) the call and return a :class:`MemorizedResult`."""
        out = self._cached_call(args, kwargs, shelving=True)
        if asyncio.iscoroutine(out):
            out = await out
        return out[0]

    async def call(self, *args, **kwargs):
        """Await the function even if cached; return ``(output, metadata)``."""
        out = super().call(*args, **kwargs)
        if asyncio.iscoroutine(out):
            out = await out
        return out

    async def _call(self, call_id, args, kwargs, shelving=False):
        self._before_call(args, kwargs)
        start = time.time()
        output = await self.func(*args, **kwargs)
        return self._after_call(call_id, args, kwargs, shelving, output, start)


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
    >>> import tempfile
    >>> memory = Memory(tempfile.mkdtemp(), verbose=0)  # doctest: +SKIP
    >>> @memory.cache
    ... def square(x):
    ...     return x * x
    >>> square(3)  # doctest: +SKIP
    9
    """

    def __init__(
        self,
        location=None,
        backend="local",
        mmap_mode=None,
        compress=False,
        verbose=1,
        backend_options=None,
    ):
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
        func=None,
        ignore=None,
        verbose=None,
        mmap_mode=False,
        cache_validation_callback=None,
    ):
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

    def clear(self, warn=True):
        """Delete the whole cache."""
        if warn:
            self.warn("Flushing completely the cache")
        if self.store_backend is not None:
            self.store_backend.clear()
            # Functions must rewrite their code file after a full wipe.
            _FUNCTION_HASHES.clear()

    def reduce_size(self, bytes_limit=None, items_limit=None, age_limit=None):
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

    def eval(self, func, *args, **kwargs):
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
    days=0, seconds=0, microseconds=0, milliseconds=0, minutes=0, hours=0, weeks=0
):
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
        return time.time() - metadata["time"] < limit

    return cache_validation_callback


__all__ = [
    "AsyncMemorizedFunc",
    "AsyncNotMemorizedFunc",
    "JobLibCollisionWarning",
    "MemorizedFunc",
    "MemorizedResult",
    "Memory",
    "NotMemorizedFunc",
    "NotMemorizedResult",
    "StoreBackendBase",
    "expires_after",
]
