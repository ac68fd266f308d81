"""MemorizedFunc: one function's cache.

Data flow of a call ``mf(*args, **kwargs)``::

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
from ._logger import Logger, format_time
from ._results import MemorizedResult
from ._store import CacheWarning
from ._store_registry import _store_backend_factory

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
        return self._args_key(args, kwargs)[1]

    def _args_key(self, args, kwargs) -> tuple[dict, str]:
        """The call's arguments by name (reused for the metadata) and hash."""
        spec = self._spec
        if spec is None:
            spec = self._spec = ArgSpec(self.func)
        filtered = filter_args(self.func, self.ignore, args, kwargs, spec=spec)
        args_id = _hash(
            filtered,
            hash_name=self._hash_name,
            coerce_mmap=self.mmap_mode is not None,
        )
        return filtered, args_id

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
        filtered, args_id = self._args_key(args, kwargs)
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
                if self._verbose > 1:  # loading messages, with time stamps
                    start = time.time()
                    output = self._load_item(call_id)
                    if self._verbose > 4:
                        duration = time.time() - start
                        self._print_duration(duration, context="cache loaded ")
                else:  # the hot path: nothing to print
                    output = self.store_backend.load_item(call_id, self._verbose)
                return output, {}
            except KeyError:
                pass  # cleared by another process meanwhile: just recompute
            except Exception:
                _, signature = format_signature(self.func, *args, **kwargs)
                # joblib's report, through the logger (code that replaces
                # ``warn`` sees it), and a CacheWarning for warning filters.
                self.warn(
                    f"Exception while loading results for {signature}\n "
                    f"{traceback.format_exc()}"
                )
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
        return self._call(call_id, args, kwargs, shelving, filtered)

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
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._cached_call(args, kwargs, shelving=False)[0]

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> MemorizedResult:
        """Call (or look up) the function and return a :class:`MemorizedResult`.

        Returns
        -------
        MemorizedResult
            Small picklable reference; ``.get()`` loads the value.
        """
        return self._cached_call(args, kwargs, shelving=True)[0]

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Return True if this call's result is cached and still valid.

        Hashes the arguments and checks the store; never calls the function.
        """
        call_id = (self.func_id, self._get_args_id(*args, **kwargs))
        return self._is_in_cache_and_valid(call_id)

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict]:
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

    def clear(self, warn: bool = True) -> None:
        """Delete every cached result of this function."""
        if self._verbose > 0 and warn:
            self.warn(f"Clearing function cache identified by {self.func_id}")
        self.store_backend.clear_path([self.func_id])
        func_code, _, first_line = self.func_code_info
        self._write_func_code(func_code, first_line)

    # -- computing ----------------------------------------------------------
    def _call(self, call_id, args, kwargs, shelving=False, filtered=None):
        self._before_call(args, kwargs)
        start = time.time()
        output = self.func(*args, **kwargs)
        return self._after_call(
            call_id, args, kwargs, shelving, output, start, filtered
        )

    def _before_call(self, args, kwargs):
        if self._verbose > 0:
            print(format_call(self.func, args, kwargs))

    def _after_call(
        self, call_id, args, kwargs, shelving, output, start_time, filtered=None
    ):
        duration = time.time() - start_time
        metadata = self._make_metadata(duration, args, kwargs, filtered)
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

    def _make_metadata(self, duration, args, kwargs, filtered=None):
        start = time.time()
        arguments = filtered
        if arguments is None:
            arguments = filter_args(
                self.func, self.ignore, args, kwargs, spec=self._spec
            )
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

    async def _call(self, call_id, args, kwargs, shelving=False, filtered=None):
        self._before_call(args, kwargs)
        start = time.time()
        output = await self.func(*args, **kwargs)
        return self._after_call(
            call_id, args, kwargs, shelving, output, start, filtered
        )
