"""A store on any fsspec file system (``Memory(url, backend="fsspec")``).

fsspec is imported when the store is configured, never at package import.
Paths handed around by the mixin keep the URL's protocol, which fsspec file
systems strip themselves; outputs are read through file objects, except on
the local file system where memory mapping needs a real path.
"""

from __future__ import annotations

import contextlib
import datetime
import posixpath
from typing import Any

from . import _persist
from ._files import temp_name
from ._store import (
    _ENTRY_NAME,
    CacheItemInfo,
    StoreBackendBase,
    StoreBackendMixin,
)


class FsspecStoreBackend(StoreBackendBase, StoreBackendMixin):
    """Store entries on an fsspec file system (S3, GCS, memory, local, ...).

    ``backend_options`` understood: ``compress``, ``mmap_mode`` (local file
    systems only) and ``storage_options`` (dict passed to fsspec).
    """

    fs: Any = None

    def _open_item(self, f, mode):
        return self.fs.open(f, mode)

    def _item_exists(self, location):
        return self.fs.exists(location)

    def _move_item(self, src, dst):
        self.fs.mv(src, dst)

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.location, *parts)

    def _output_path(self, call_id) -> str:
        return posixpath.join(self.location, *call_id, "output.pkl")

    def create_location(self, location):
        """Create the folder ``location`` (a no-op on object stores)."""
        self.fs.makedirs(location, exist_ok=True)

    def clear_location(self, location):
        """Delete ``location``; the store root itself is only emptied."""
        if location.rstrip("/") == self.location.rstrip("/"):
            targets = self.fs.ls(location, detail=False)
        else:
            targets = [location]
        for target in targets:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(target, recursive=True)

    def _is_local(self) -> bool:
        protocol = self.fs.protocol
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return "file" in protocols or "local" in protocols

    def _load_output(self, filename, mmap_mode):
        if mmap_mode is not None and self._is_local():
            return _persist.load(self.fs._strip_protocol(filename), mmap_mode=mmap_mode)
        with self.fs.open(filename, "rb") as f:
            return _persist.load(f)

    def get_items(self):
        """Return a :data:`CacheItemInfo` for each entry folder."""
        try:
            found = self.fs.find(self.location, detail=True)
        except FileNotFoundError:
            return []
        sizes: dict[str, int] = {}
        stamps: dict[str, float] = {}
        for path, info in found.items():
            folder = posixpath.dirname(path)
            if not _ENTRY_NAME.fullmatch(posixpath.basename(folder)):
                continue
            sizes[folder] = sizes.get(folder, 0) + int(info.get("size") or 0)
            stamp = _stamp(info)
            if posixpath.basename(path) == "output.pkl" or folder not in stamps:
                stamps[folder] = stamp
        return [
            CacheItemInfo(folder, sizes[folder], datetime.datetime.fromtimestamp(t))
            for folder, t in stamps.items()
        ]

    def configure(self, location, verbose=0, backend_options=None):
        """Resolve ``location`` (a URL or path) to an fsspec file system."""
        try:
            import fsspec
        except ImportError:
            raise ImportError(
                "backend='fsspec' needs fsspec: pip install 'para-cache[fsspec]'"
            ) from None
        options = dict(backend_options or {})
        storage_options = options.get("storage_options") or {}
        self.fs, _ = fsspec.core.url_to_fs(location, **storage_options)
        self.location = location.rstrip("/")
        self.fs.makedirs(self.location, exist_ok=True)
        root = self.location
        if posixpath.basename(root) == "joblib":
            root = posixpath.dirname(root)
        gitignore = posixpath.join(root, ".gitignore")
        if not self.fs.exists(gitignore):
            tmp = temp_name(gitignore)
            with self.fs.open(tmp, "wb") as f:
                f.write(b"# Created by joblib automatically.\n*\n")
            self.fs.mv(tmp, gitignore)
        self.compress = options.get("compress", False)
        self.mmap_mode = options.get("mmap_mode")
        self.verbose = verbose


def _stamp(info: dict) -> float:
    for key in ("atime", "mtime", "LastModified", "created", "last_modified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0


__all__ = ["FsspecStoreBackend"]
