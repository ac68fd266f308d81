"""Where shared files live, how they are written, and who removes them.

Every file para-memmap creates sits in a folder whose name starts with
``para-memmap-<pid>-``. The watchdog process is told once per root folder to
remove whatever this process leaves there under that prefix, so that folders
go even when the caller is killed, without a message per call; the caller
removes them itself on the normal path (and at interpreter exit for anything an
interrupted call left behind).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import tempfile
import threading
import uuid
import warnings
from typing import Any

from . import _watchdog

__all__ = [
    "PREFIX",
    "SHM_FOLDER",
    "SharedFolder",
    "free_bytes",
    "is_ours",
    "resolve_root",
    "write_array",
]

PREFIX = "para-memmap-"
SHM_FOLDER = "/dev/shm"
# Room kept free in /dev/shm on top of the data, so that other users of shared
# memory (semaphores, other processes) are not starved by our files.
SHM_HEADROOM = 64 * 1024 * 1024
# Chunks small enough to stay in the CPU cache between hashing and writing.
CHUNK_BYTES = 1 << 20

_live_lock = threading.Lock()
_live_folders: dict[str, int] = {}  # folder -> pid of its creator
_watched_roots: set[tuple[str, int]] = set()  # (root, pid) the watchdog sweeps
_atexit_registered = False


def free_bytes(path: str) -> int:
    """Bytes an unprivileged process may still write on ``path``'s filesystem."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _writable_dir(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def resolve_root(temp_folder: str | None) -> tuple[str, bool]:
    """Pick the root folder; the flag says whether it is the automatic /dev/shm.

    Order: explicit ``temp_folder``, then ``JOBLIB_TEMP_FOLDER``, then /dev/shm
    when it is writable, then ``tempfile.gettempdir()``. Room for the data is
    checked later, when its size is known.
    """
    if temp_folder is None:
        temp_folder = os.environ.get("JOBLIB_TEMP_FOLDER") or None
    if temp_folder is not None:
        if not isinstance(temp_folder, (str, os.PathLike)):
            raise TypeError(
                f"temp_folder must be a path (str or os.PathLike) or None, "
                f"got {temp_folder!r} of type {type(temp_folder).__name__}"
            )
        return os.path.abspath(os.path.expanduser(os.fspath(temp_folder))), False
    if os.name == "posix" and _writable_dir(SHM_FOLDER):
        return SHM_FOLDER, True
    return os.path.abspath(tempfile.gettempdir()), False


def is_ours(filename: str) -> bool:
    """True for a file that para-memmap created (and will remove)."""
    base = os.path.basename(filename)
    parent = os.path.basename(os.path.dirname(filename))
    return base.startswith(PREFIX) or parent.startswith(PREFIX)


def _remove_folder(path: str) -> None:
    try:
        os.rmdir(path)  # the common case, and much cheaper than rmtree
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
    with _live_lock:
        _live_folders.pop(path, None)


def _remove_live_folders_at_exit() -> None:
    # A forked child inherits this list; only the creator removes its folders.
    with _live_lock:
        folders = [p for p, pid in _live_folders.items() if pid == os.getpid()]
    for path in folders:
        _remove_folder(path)


def _track(path: str) -> None:
    global _atexit_registered
    with _live_lock:
        _live_folders[path] = os.getpid()
        if not _atexit_registered:
            atexit.register(_remove_live_folders_at_exit)
            _atexit_registered = True
    watch_root(os.path.dirname(path))


def watch_root(root: str) -> None:
    """Have the watchdog remove ``root``'s entries named after us if we die."""
    pid = os.getpid()
    with _live_lock:
        if (root, pid) in _watched_roots:
            return
        _watched_roots.add((root, pid))
    _watchdog.track_prefix(root, f"{PREFIX}{pid}-")


class SharedFolder:
    """The folder of one session, created on first use, with a fallback.

    Files go to the primary root; when it is the automatic /dev/shm and lacks
    room, they go to a second folder in the system temp folder, with a warning.
    """

    def __init__(self, temp_folder: str | None = None) -> None:
        self.root, self.auto_shm = resolve_root(temp_folder)
        self.name = f"{PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        self._lock = threading.Lock()
        self._paths: dict[str, str] = {}  # root -> created folder
        self._warned = False

    @property
    def path(self) -> str:
        """The primary folder path (it may not exist yet)."""
        return os.path.join(self.root, self.name)

    def folder_for(self, root: str) -> str:
        """Return the session folder under ``root``, creating it if needed."""
        with self._lock:
            path = self._paths.get(root)
            if path is None:
                path = os.path.join(root, self.name)
                try:
                    try:
                        os.mkdir(path, mode=0o700)
                    except FileNotFoundError:  # a temp_folder yet to be made
                        os.makedirs(path, mode=0o700)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise OSError(
                        exc.errno,
                        f"para-memmap cannot create its temporary folder {path!r} "
                        f"({exc.strerror}); pass temp_folder=... or set "
                        f"JOBLIB_TEMP_FOLDER to a writable folder",
                    ) from exc
                _track(path)
                self._paths[root] = path
            return path

    def fallback_root(self) -> str:
        return os.path.abspath(tempfile.gettempdir())

    def rearm_warning(self) -> None:
        """Warn again at the next fallback (a long-lived folder, a new use)."""
        self._warned = False

    def warn_fallback(self, nbytes: int, reason: str) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"{SHM_FOLDER} {reason} for {nbytes} bytes of shared arrays; "
            f"para-memmap falls back to {self.fallback_root()!r}, which may be "
            f"slower. Pass temp_folder=... or set JOBLIB_TEMP_FOLDER to choose "
            f"another folder.",
            UserWarning,
            stacklevel=4,
        )

    def root_for(self, nbytes: int) -> str:
        """The root that should receive ``nbytes`` more bytes."""
        if self.auto_shm:
            try:
                room = free_bytes(self.root)
            except OSError:
                room = 0
            if room < nbytes + SHM_HEADROOM:
                self.warn_fallback(nbytes, f"has only {room} bytes free")
                return self.fallback_root()
        return self.root

    def write(
        self, chunks: Any, nbytes: int, kind: str = "a", checksum: bool = True
    ) -> tuple[str, Any]:
        """Write ``chunks()`` to a new file; fall back when /dev/shm is full.

        Returns the file name and the checksum state (None if not asked).
        """
        root = self.root_for(nbytes)
        filename = os.path.join(self.folder_for(root), f"{kind}-{uuid.uuid4().hex}.dat")
        try:
            return filename, write_array(filename, chunks(), nbytes, checksum)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.auto_shm or root != self.root:
                raise
        # A race with another user of /dev/shm: the room we saw is gone.
        self.warn_fallback(nbytes, "ran out of space")
        folder = self.folder_for(self.fallback_root())
        filename = os.path.join(folder, f"{kind}-{uuid.uuid4().hex}.dat")
        return filename, write_array(filename, chunks(), nbytes, checksum)

    def write_loose(
        self, chunks: Any, nbytes: int, checksum: bool = True
    ) -> tuple[str, Any]:
        """Like :meth:`write`, into a file of its own in the root, no folder.

        Named ``para-memmap-<pid>-<id>.dat``: the watchdog removes it if the
        process dies; on every other path its writer removes it.
        """
        root = self.root_for(nbytes)
        try:
            return _write_loose(root, chunks, nbytes, checksum)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.auto_shm or root != self.root:
                raise
        self.warn_fallback(nbytes, "ran out of space")
        return _write_loose(self.fallback_root(), chunks, nbytes, checksum)

    def remove(self) -> None:
        """Remove every folder of this session (idempotent)."""
        with self._lock:
            paths = list(self._paths.values())
            self._paths.clear()
        for path in paths:
            _remove_folder(path)


def _write_loose(root: str, chunks: Any, nbytes: int, checksum: bool) -> tuple:
    watch_root(root)
    filename = os.path.join(root, f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex}.dat")
    try:
        try:
            return filename, write_array(filename, chunks(), nbytes, checksum)
        except FileNotFoundError:  # a temp_folder yet to be made
            os.makedirs(root, mode=0o700, exist_ok=True)
            return filename, write_array(filename, chunks(), nbytes, checksum)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        raise OSError(
            exc.errno,
            f"para-memmap cannot create its temporary file {filename!r} "
            f"({exc.strerror}); pass temp_folder=... or set JOBLIB_TEMP_FOLDER "
            f"to a writable folder",
        ) from exc


def write_array(filename: str, chunks: Any, nbytes: int, checksum: bool = True) -> Any:
    """Write the byte chunks to a new file; return the checksum state or None.

    Space is reserved first (posix_fallocate) so that a full tmpfs fails here
    with ENOSPC instead of killing a reader with SIGBUS later.
    """
    hasher = new_hasher() if checksum else None
    fd = os.open(filename, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        if nbytes and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, nbytes)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
        for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            view = memoryview(chunk)
            while view.nbytes:
                written = os.write(fd, view)
                view = view[written:]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(filename)
        raise
    os.close(fd)
    return hasher


class _Crc32:
    """zlib.crc32 behind the hashlib-like interface of xxhash."""

    def __init__(self) -> None:
        import zlib

        self._crc32 = zlib.crc32
        self._value = 0

    def update(self, data: Any) -> None:
        self._value = self._crc32(data, self._value)

    def intdigest(self) -> int:
        return self._value


def new_hasher() -> Any:
    """xxh3-64 when the ``fast-hash`` extra (xxhash) is installed, else crc32."""
    try:
        import xxhash
    except ImportError:
        return _Crc32()
    return xxhash.xxh3_64()
