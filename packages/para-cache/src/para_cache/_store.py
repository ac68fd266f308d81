"""Where cache entries live: the store interface and the file-system store.

An entry is the folder ``<location>/<func_id>/<args_id>/`` holding
``metadata.json`` and ``output.pkl``. The file-system store writes both in a
private sibling folder and publishes it with one rename::

    <func_id>/<args_id>.<random>.tmp/{output.pkl, metadata.json}
        --rename--> <func_id>/<args_id>/          (a reader sees all or nothing)
        entry exists already? --os.replace each file--> metadata, then output

Generic stores (the mixin) write every file under a unique temporary name and
rename it into place, metadata first, so that a reader that finds
``output.pkl`` always finds a complete entry, and concurrent writers of the
same entry each publish a whole, valid file (the last rename wins).
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import errno
import functools
import json
import os
import re
import shutil
import warnings
from abc import ABCMeta, abstractmethod
from pickle import PicklingError
from typing import Any

from . import _persist
from ._files import FdFile, encode_metadata, temp_name, write_all
from ._limits import check_age_limit, items_to_delete
from ._logger import format_time

CacheItemInfo = collections.namedtuple("CacheItemInfo", "path size last_access")

_ENTRY_NAME = re.compile(r"[a-f0-9]{32}|[a-f0-9]{40}")
# Names inside an entry folder, joined by concatenation on the miss path.
_OUTPUT = os.sep + "output.pkl"
_METADATA = os.sep + "metadata.json"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def _warn_not_cached(exc: Exception) -> None:
    """Report an output that could not be stored: the call's result stands."""
    if isinstance(exc, PicklingError):
        message = f"Unable to cache to disk: failed to pickle output. Exception: {exc}."
    else:
        message = f"Unable to cache to disk. Exception: {exc!r}."
    warnings.warn(message, CacheWarning, stacklevel=3)


class CacheWarning(Warning):
    """Warning about a cache entry that could not be written or read back."""


class StoreBackendBase(metaclass=ABCMeta):
    """Abstract store: the operations Memory needs from a storage system.

    Subclass it together with :class:`StoreBackendMixin` and implement the
    abstract methods below, then :func:`register_store_backend` it.
    """

    location = None

    @abstractmethod
    def _open_item(self, f, mode):
        """Open the item at path ``f`` in ``mode`` ('rb' or 'wb'), return a file."""

    @abstractmethod
    def _item_exists(self, location):
        """Return True if an item or folder exists at ``location``."""

    @abstractmethod
    def _move_item(self, src, dst):
        """Move the item ``src`` to ``dst``, replacing ``dst`` atomically if able."""

    @abstractmethod
    def create_location(self, location):
        """Create the folder ``location`` (and its parents) if missing."""

    @abstractmethod
    def clear_location(self, location):
        """Delete ``location`` and everything below it."""

    @abstractmethod
    def get_items(self):
        """Return a list of :data:`CacheItemInfo` for every cache entry."""

    @abstractmethod
    def configure(self, location, verbose=0, backend_options={}):  # noqa: B006
        """Point the store at ``location`` with ``backend_options``."""


def _overrides_joblib_writers(store: Any) -> bool:
    """True when a subclass overrides joblib's ``dump_item``/``store_metadata``.

    joblib's Memory writes an entry with those two calls; para's stores
    publish it in one step (``store_entry``). A client store that overrides
    either of joblib's methods must see them called, as joblib calls them.
    """
    cls = type(store)
    return (
        cls.dump_item is not StoreBackendMixin.dump_item
        or cls.store_metadata is not StoreBackendMixin.store_metadata
    )


def _store_the_joblib_way(store, call_id, item, metadata, verbose) -> None:
    # joblib 1.6 order: the output, then the metadata.
    store.dump_item(call_id, item, verbose=verbose)
    store.store_metadata(call_id, metadata)


class StoreBackendMixin:
    """Entry-level logic written once on top of :class:`StoreBackendBase`."""

    compress: Any = False
    mmap_mode: str | None = None
    verbose: int = 0

    # -- reading ------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return os.path.join(self.location, *parts)

    def _output_path(self, call_id) -> str:
        # Hot path of every cache hit: one join instead of three.
        return os.path.join(self.location, *call_id, "output.pkl")

    def _load_output(self, filename: str, mmap_mode: str | None) -> Any:
        # Generic stores hand over a file object; memmapping needs a real path.
        with self._open_item(filename, "rb") as f:
            return _persist.load(f)

    def load_item(self, call_id, verbose=1, timestamp=None, metadata=None):
        """Return the output stored for ``call_id``.

        Raises
        ------
        KeyError
            If the entry does not exist (it may have been cleared meanwhile).
        """
        if verbose > 1:
            full_path = self._path(*call_id)
            self._print_loading(call_id, full_path, verbose, timestamp, metadata)
        filename = self._output_path(call_id)
        try:
            return self._load_output(filename, self.mmap_mode)
        except FileNotFoundError:
            raise KeyError(
                "Non-existing item (may have been cleared).\n"
                f"File {filename} does not exist"
            ) from None

    def _print_loading(self, call_id, full_path, verbose, timestamp, metadata):
        import time

        stamp = ""
        if timestamp is not None:
            stamp = f"{format_time(time.time() - timestamp): <16}"
        signature = os.path.basename(call_id[0])
        if metadata is not None and "input_args" in metadata:
            args = ", ".join(f"{k}={v}" for k, v in metadata["input_args"].items())
            signature += f"({args})"
        msg = f"[Memory]{stamp}: Loading {signature}"
        print(f"{msg}..." if verbose < 10 else f"{msg} from {full_path}")

    def contains_item(self, call_id):
        """Return True if an output is stored for ``call_id``."""
        return self._item_exists(self._output_path(call_id))

    def get_item_info(self, call_id):
        """Return ``{"location": path}`` of the entry."""
        return {"location": self._path(*call_id)}

    def get_metadata(self, call_id):
        """Return the entry's metadata dict, or ``{}`` if unreadable."""
        try:
            with self._open_item(self._path(*call_id, "metadata.json"), "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except Exception:
            return {}

    # -- writing ------------------------------------------------------------
    def _write_atomic(self, filename: str, write) -> None:
        self._retrying(filename, lambda: self._write_once(filename, write))

    def _retrying(self, filename: str, action) -> None:
        # The entry folder may be removed under us (reduce_size, clear in
        # another process): recreate it and try again a couple of times.
        for attempt in range(3):
            try:
                action()
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self.create_location(os.path.dirname(filename))

    def _write_once(self, filename: str, write) -> None:
        tmp = temp_name(filename)
        try:
            write(tmp)
            self._move_item(tmp, filename)
        except BaseException:
            try:
                if self._item_exists(tmp):
                    self.clear_location(tmp)
            except Exception:
                pass
            raise

    def _dump_output(self, filename: str, item: Any) -> None:
        def write(tmp):
            with self._open_item(tmp, "wb") as f:
                _persist.dump(item, f, compress=self.compress)

        self._write_atomic(filename, write)

    def dump_item(self, call_id, item, verbose=1, _created=False):
        """Store ``item`` as the output of ``call_id``; warn instead of failing."""
        try:
            item_path = self._path(*call_id)
            if not _created:  # a vanished folder is re-created on retry
                self.create_location(item_path)
            if verbose > 10:
                print(f"Persisting in {item_path}")
            filename = os.path.join(item_path, "output.pkl")
            self._dump_output(filename, item)
        except Exception as exc:
            _warn_not_cached(exc)

    def store_metadata(self, call_id, metadata):
        """Store the metadata dict of ``call_id`` (best effort)."""
        try:
            item_path = self._path(*call_id)
            self.create_location(item_path)
            data = encode_metadata(metadata)

            def write(tmp):
                with self._open_item(tmp, "wb") as f:
                    f.write(data)

            self._write_atomic(os.path.join(item_path, "metadata.json"), write)
        except Exception:
            pass

    def store_entry(self, call_id, item, metadata, verbose=1):
        """Publish a whole entry: metadata first, then the output.

        ``contains_item`` looks for the output only, so once it is visible the
        metadata is there as well.
        """
        if _overrides_joblib_writers(self):
            _store_the_joblib_way(self, call_id, item, metadata, verbose)
            return
        self.store_metadata(call_id, metadata)
        self.dump_item(call_id, item, verbose=verbose, _created=True)

    # -- clearing -----------------------------------------------------------
    def clear_item(self, call_id):
        """Delete the entry of ``call_id``."""
        item_path = self._path(*call_id)
        if self._item_exists(item_path):
            self.clear_location(item_path)

    def contains_path(self, call_id):
        """Return True if the function folder exists."""
        return self._item_exists(self._path(*call_id))

    def clear_path(self, call_id):
        """Delete every entry below a function folder."""
        func_path = self._path(*call_id)
        if self._item_exists(func_path):
            self.clear_location(func_path)

    def clear(self):
        """Delete the whole store content."""
        self.clear_location(self.location)

    # -- function code ------------------------------------------------------
    def store_cached_func_code(self, call_id, func_code=None):
        """Create the function folder and, if given, write ``func_code.py``."""
        func_path = self._path(*call_id)
        if not self._item_exists(func_path):
            self.create_location(func_path)
        if func_code is None:
            return
        data = func_code.encode("utf-8")

        def write(tmp):
            with self._open_item(tmp, "wb") as f:
                f.write(data)

        # A reader seeing half a file would take it for changed code and wipe
        # the cache of every other process.
        self._write_atomic(os.path.join(func_path, "func_code.py"), write)

    def get_cached_func_code(self, call_id):
        """Return the text of ``func_code.py``; raise OSError if missing."""
        with self._open_item(self._path(*call_id, "func_code.py"), "rb") as f:
            return f.read().decode("utf-8")

    def get_cached_func_info(self, call_id):
        """Return ``{"location": path}`` of the function folder."""
        return {"location": self._path(*call_id)}

    # -- size limits --------------------------------------------------------
    def enforce_store_limits(self, bytes_limit, items_limit=None, age_limit=None):
        """Delete least recently used entries until every limit holds."""
        for item in self._get_items_to_delete(bytes_limit, items_limit, age_limit):
            if self.verbose > 10:
                print(f"Deleting item {item}")
            # Another process may be deleting the same entry.
            with contextlib.suppress(OSError):
                self.clear_location(item.path)

    def _get_items_to_delete(self, bytes_limit, items_limit=None, age_limit=None):
        check_age_limit(age_limit)  # before listing the entries, maybe many
        return items_to_delete(self.get_items(), bytes_limit, items_limit, age_limit)

    def _concurrency_safe_write(self, to_write, filename, write_func):
        self._write_atomic(filename, lambda tmp: write_func(to_write, tmp))

    def __repr__(self):
        return f'{type(self).__name__}(location="{self.location}")'


class FileSystemStoreBackend(StoreBackendBase, StoreBackendMixin):
    """Store on a local or network file system (the ``"local"`` backend).

    ``backend_options`` understood: ``compress``, ``mmap_mode`` and ``fsync``
    (default False; True fsyncs ``output.pkl`` and ``metadata.json`` before
    the entry is published).

    Why no fsync by default: entries are published by rename, so a crashed
    *process* never leaves a partial entry (the page cache survives it); only
    a power loss or kernel crash can leave an entry whose files never reached
    the disk (empty or torn). Such an output fails para-persist's index and
    CRC check on the next hit, which reports a ``CacheWarning`` and
    recomputes it, and a cache can always be recomputed. An fsync costs
    milliseconds per file, 10x the rest of a cache miss, which joblib (that
    never fsyncs) users would pay on every call.
    """

    _open_item = staticmethod(open)
    _item_exists = staticmethod(os.path.exists)

    @staticmethod
    def _move_item(src, dst):
        os.replace(src, dst)

    # Entry paths are built on every hit and miss: concatenation, which is
    # what os.path.join gives for these relative, non-empty parts.
    _prefix = ""

    def _path(self, *parts: str) -> str:
        if len(parts) == 2 and self._prefix:
            return f"{self._prefix}{parts[0]}{os.sep}{parts[1]}"
        return os.path.join(self.location, *parts)

    def _output_path(self, call_id) -> str:
        if len(call_id) == 2 and self._prefix:
            return f"{self._prefix}{call_id[0]}{os.sep}{call_id[1]}{_OUTPUT}"
        return os.path.join(self.location, *call_id, "output.pkl")

    def clear_location(self, location):
        """Delete ``location``; the store root itself is only emptied."""
        if location == self.location:
            for name in os.listdir(location):
                path = os.path.join(location, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
        elif os.path.isdir(location):
            shutil.rmtree(location, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(location)

    def create_location(self, location):
        """Create the folder ``location`` and its parents."""
        for attempt in range(3):
            try:
                os.makedirs(location, exist_ok=True)
                return
            except FileExistsError:
                # makedirs saw the folder, then a concurrent rmtree removed it.
                if attempt == 2:
                    raise

    def _load_output(self, filename, mmap_mode):
        return _persist.load(filename, mmap_mode=mmap_mode)

    def store_entry(self, call_id, item, metadata, verbose=1):
        """Publish a whole entry folder with one rename.

        ``output.pkl`` and ``metadata.json`` are written in a private sibling
        folder, which is then renamed to ``<func_id>/<args_id>``: a reader
        finds no entry or a complete one, and no per-file temp name or rename
        is needed. If the entry exists already (a concurrent writer won the
        race, or ``call()`` recomputes a cached result), each file is moved
        over the old one with an atomic ``os.replace``, metadata first.
        """
        if _overrides_joblib_writers(self):
            _store_the_joblib_way(self, call_id, item, metadata, verbose)
            return
        item_path = self._path(*call_id)
        if verbose > 10:
            print(f"Persisting in {item_path}")
        try:
            meta = encode_metadata(metadata)
        except Exception:
            meta = None  # metadata is best effort, as in store_metadata
        try:
            self._retrying(item_path, lambda: self._publish(item_path, item, meta))
        except Exception as exc:
            _warn_not_cached(exc)

    def _publish(self, item_path, item, meta):
        tmp = temp_name(item_path)
        os.mkdir(tmp)  # FileNotFoundError: function folder cleared, retried
        try:
            fd = os.open(tmp + _OUTPUT, _NEW_FILE, 0o666)
            try:
                out = FdFile(fd)
                _persist.dump(item, out, compress=self.compress)
                out.flush()
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            names = ("output.pkl",)
            if meta is not None:
                fd = os.open(tmp + _METADATA, _NEW_FILE, 0o666)
                try:
                    write_all(fd, meta)
                    if self._fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                names = ("metadata.json", "output.pkl")
            try:
                self._move_item(tmp, item_path)
                tmp = None
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                    raise
                for name in names:
                    self._move_item(
                        os.path.join(tmp, name), os.path.join(item_path, name)
                    )
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _dump_output(self, filename, item):
        if self._fsync:
            # para_persist writes a path atomically itself: temp file in the
            # same folder, flush, fsync, rename.
            action = functools.partial(
                _persist.dump, item, filename, compress=self.compress
            )
            self._retrying(filename, action)
            return

        def write(tmp):
            with open(tmp, "wb") as f:
                _persist.dump(item, f, compress=self.compress)

        self._write_atomic(filename, write)

    def get_items(self):
        """Return a :data:`CacheItemInfo` for each entry folder."""
        items = []
        for dirpath, _, filenames in os.walk(self.location):
            if not _ENTRY_NAME.fullmatch(os.path.basename(dirpath)):
                continue
            try:
                last_access = os.path.getatime(os.path.join(dirpath, "output.pkl"))
            except OSError:
                try:
                    last_access = os.path.getatime(dirpath)
                except OSError:
                    continue  # deleted meanwhile
            try:
                size = sum(
                    os.path.getsize(os.path.join(dirpath, fn)) for fn in filenames
                )
            except OSError:
                continue  # being deleted by another process
            items.append(
                CacheItemInfo(
                    dirpath, size, datetime.datetime.fromtimestamp(last_access)
                )
            )
        return items

    def configure(self, location, verbose=1, backend_options=None):
        """Create ``location`` (with a ``.gitignore`` at the cache root)."""
        options = dict(backend_options or {})
        self.location = location
        self._prefix = os.path.join(location, "")
        os.makedirs(location, exist_ok=True)
        # Memory appends "joblib" to str locations: the .gitignore goes one up.
        root = location
        if os.path.basename(location) == "joblib" and os.path.dirname(location):
            root = os.path.dirname(location)
        gitignore = os.path.join(root, ".gitignore")
        if not os.path.exists(gitignore):
            try:
                tmp = temp_name(gitignore)
                with open(tmp, "w") as f:
                    f.write("# Created by joblib automatically.\n*\n")
                os.replace(tmp, gitignore)
            except OSError as exc:
                warnings.warn(
                    f"Unable to write {gitignore}. Exception: {exc}.", stacklevel=2
                )
        self.compress = options.get("compress", False)
        mmap_mode = options.get("mmap_mode")
        if self.compress and mmap_mode is not None:
            warnings.warn(
                "Compressed items cannot be memmapped in a filesystem store. "
                "Option will be ignored.",
                stacklevel=2,
            )
        self.mmap_mode = mmap_mode
        self._fsync = bool(options.get("fsync", False))
        self.verbose = verbose


_STORE_BACKENDS: dict[str, type] = {"local": FileSystemStoreBackend}


def _fsspec_backend() -> type:
    from ._fsspec_store import FsspecStoreBackend

    return FsspecStoreBackend


def register_store_backend(backend_name: str, backend: type) -> None:
    """Make a store class available to ``Memory(..., backend=backend_name)``.

    Parameters
    ----------
    backend_name : str
        Name to pass as ``backend``; ``"local"`` and ``"fsspec"`` are built in.
    backend : type
        A subclass of :class:`StoreBackendBase` (usually also of
        :class:`StoreBackendMixin`).

    Raises
    ------
    ValueError
        If the name is not a str or the class does not inherit
        :class:`StoreBackendBase`.

    Examples
    --------
    >>> class MyStore(FileSystemStoreBackend):
    ...     pass
    >>> register_store_backend("mine", MyStore)
    """
    if not isinstance(backend_name, str):
        raise ValueError(
            f"Store backend name should be a string, '{backend_name}' given."
        )
    if not (isinstance(backend, type) and issubclass(backend, StoreBackendBase)):
        raise ValueError(
            f"Store backend should inherit StoreBackendBase, '{backend}' given."
        )
    _STORE_BACKENDS[backend_name] = backend


def _store_backend_factory(backend, location, verbose=0, backend_options=None):
    """Return a configured store for ``location``, or None when disabled."""
    if isinstance(location, StoreBackendBase):
        return location
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if isinstance(location, str):
        location = os.path.expanduser(location)
        cls = _STORE_BACKENDS.get(backend)
        if cls is None and backend == "fsspec":
            cls = _fsspec_backend()
        if cls is None:
            known = sorted({*_STORE_BACKENDS, "fsspec"})
            raise TypeError(
                f"Unknown location {location} or backend {backend}: "
                f"registered backends are {known}."
            )
        store = cls()
        options = backend_options or {}
        store.configure(location, verbose=verbose, backend_options=options)
        return store
    if location is not None:
        warnings.warn(
            f"Instantiating a backend using a {type(location).__name__} as a "
            "location is not supported by joblib. Returning None instead.",
            UserWarning,
            stacklevel=2,
        )
    return None
