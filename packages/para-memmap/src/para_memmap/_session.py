"""One transport session: which arrays were sent, and when to forget them.

::

    caller                                         worker
    ------                                         ------
    reduce_task_object(a)
      np.memmap (or a view of one) -> (file, offset, strides) --> np.memmap view
      ndarray >= max_nbytes:
        seen in this call            -> same file
        mmap_mode "r"/"c": the process-wide copy of `a` (_registry): written
          once, reused by later calls, and by later Parallel objects, while
          the array is unchanged
        mmap_mode "r+"/"w+": a file of this session (workers may write it)
                                   ----------------------> np.memmap(mode)
      anything else                  -> NotImplemented (plain pickle)

                                                   ResultReducer(a):
    rebuild_result: map file, unlink  <-- result file --  ndarray >= max_nbytes
    end_call(): drop files of arrays that died or may have been written to
    close():    release the copies, remove the session folder(s)
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._arrays import backing_memmap, byte_chunks, rebuild_shared, reduce_by_reference
from ._options import MODES, check_max_nbytes, check_mmap_mode
from ._registry import Copy, registry
from ._results import ResultReducer
from ._storage import SharedFolder, is_ours

__all__ = [
    "MODES",
    "MemmapSession",
    "ResultReducer",
    "check_max_nbytes",
    "check_mmap_mode",
]

_ndarray = np.ndarray
_memmap = np.memmap


@dataclass
class _Entry:
    """A file of this session holding a copy of one caller array."""

    ref: Any  # weakref to the array
    filename: str
    layout: tuple  # (shape, strides, dtype): an in-place reshape is a change
    order: str
    last_call: int
    nbytes: int = 0


@dataclass
class _Stats:
    """Counters, handy in tests and benchmarks."""

    written: int = 0
    reused: int = 0
    patched: int = 0  # changed in place: only the written pages were copied
    by_reference: int = 0
    bytes_written: int = 0


class MemmapSession:
    """Transport state of one ``Parallel`` call or ``with Parallel(...)`` block.

    Parameters
    ----------
    max_nbytes : int or None
        Arrays at least this large travel through files; None disables it.
    mmap_mode : {"r", "r+", "w+", "c"}
        Mode in which workers open the arrays written for them.
    temp_folder : str or None
        Root folder; None picks JOBLIB_TEMP_FOLDER, /dev/shm or the temp dir.
    folder : SharedFolder, optional
        The session folder, when it was made before the session.
    """

    def __init__(
        self,
        max_nbytes: int | None = 1_000_000,
        mmap_mode: str = "r",
        temp_folder: str | None = None,
        folder: SharedFolder | None = None,
    ) -> None:
        self.max_nbytes = check_max_nbytes(max_nbytes)
        self.mmap_mode = check_mmap_mode(mmap_mode)
        self.folder = folder if folder is not None else SharedFolder(temp_folder)
        self._temp_folder = temp_folder
        # Workers may write into "r+"/"w+" files: their content is no longer
        # the caller's, so they are never reused by a later call. Files that
        # workers only read are the process's shared copies (see _registry).
        self._reuse = mmap_mode in ("r", "c")
        self._lock = threading.RLock()
        self._entries: dict[int, _Entry] = {}
        self._held: dict[int, tuple[Copy, int]] = {}  # id(array) -> (copy, call)
        self._old_holds: list[Copy] = []
        self._retired: list[str] = []
        # Set by begin_call: calls may overlap, so no file is removed early.
        self._overlapping = False
        self._call = 0
        self._closed = False
        self._result_reducer: ResultReducer | None = None
        self._pinned: dict[int, Any] = {}
        self.stats = _Stats()

    # -- caller side, while a task batch is pickled ---------------------------

    def reduce_task_object(self, obj: Any) -> Any:
        """Reduce large arrays and memory maps; NotImplemented for the rest."""
        cls = type(obj)
        if cls is not _ndarray and cls is not _memmap:
            return NotImplemented
        # An array owning its memory cannot be a view of a memory map: most
        # small arrays leave here after two attribute reads.
        if obj.base is not None:
            m = backing_memmap(obj)
            if m is not None and m.filename is not None and obj.nbytes:
                self.stats.by_reference += 1
                if is_ours(m.filename):
                    # Keep arrays from para_memmap.empty alive until the
                    # workers had a chance to open their file.
                    self._pinned[id(m)] = m
                return reduce_by_reference(obj, m)
        nbytes = obj.nbytes
        if (
            self.max_nbytes is None
            or nbytes < self.max_nbytes
            or nbytes == 0
            or obj.dtype.hasobject
        ):
            return NotImplemented
        with self._lock:
            if self._closed:
                raise RuntimeError("this para-memmap session is closed")
            if self._reuse:
                filename, order = self._copy_for(obj)
            else:
                entry = self._file_for(obj)
                filename, order = entry.filename, entry.order
        return rebuild_shared, (
            filename,
            obj.dtype,
            obj.shape,
            order,
            "r+" if self.mmap_mode == "w+" else self.mmap_mode,
        )

    def _copy_for(self, a: np.ndarray) -> tuple[str, str]:
        key = id(a)
        held = self._held.get(key)
        if held is not None and held[1] == self._call and held[0].ref() is a:
            return held[0].filename, held[0].order  # validated for this call
        mine = held[0] if held is not None and not self._overlapping else None
        copy, how = registry().acquire(a, self._temp_folder, mine)
        if held is not None:
            if self._overlapping:  # an earlier call may still read it
                self._old_holds.append(held[0])
            else:
                registry().release(held[0])
        self._held[key] = (copy, self._call)
        if how == "written":
            self.stats.written += 1
            self.stats.bytes_written += a.nbytes
        elif how == "patched":
            self.stats.patched += 1
        else:
            self.stats.reused += 1
        return copy.filename, copy.order

    def _file_for(self, a: np.ndarray) -> _Entry:
        # "r+"/"w+": workers may write the file, so each call gets a new one.
        key = id(a)
        layout = (a.shape, a.strides, a.dtype)
        entry = self._entries.get(key)
        if entry is not None:
            if (
                entry.ref() is a
                and entry.layout == layout
                and entry.last_call == self._call
            ):
                return entry
            self._forget(key)
        order, chunks = byte_chunks(a)
        filename, _ = self.folder.write(chunks, a.nbytes, checksum=False)
        entry = _Entry(
            ref=weakref.ref(a),
            filename=filename,
            layout=layout,
            order=order,
            last_call=self._call,
            nbytes=a.nbytes,
        )
        self._entries[key] = entry
        self.stats.written += 1
        self.stats.bytes_written += a.nbytes
        return entry

    def _forget(self, key: int) -> None:
        entry = self._entries.pop(key)
        if entry.last_call == self._call or self._overlapping:
            self._retired.append(entry.filename)  # may still be in flight
        else:
            _unlink(entry.filename)

    # -- the worker side --------------------------------------------------------

    @property
    def result_reducer(self) -> ResultReducer | None:
        """Reducer the workers use for results (None when disabled)."""
        if self.max_nbytes is None or self._closed:
            return None
        if self._result_reducer is None:
            folder = self.folder.folder_for(self.folder.root)
            self._result_reducer = ResultReducer(
                folder, self.max_nbytes, self.folder.auto_shm
            )
        return self._result_reducer

    # -- life cycle ---------------------------------------------------------------

    def begin_call(self) -> None:
        """Start a call that may overlap earlier ones (a pool's map or apply).

        Arrays seen before are checked for changes again, as after
        :meth:`end_call`, but no file is removed before :meth:`close`: tasks
        of earlier calls may still be reading them.
        """
        with self._lock:
            self._overlapping = True
            self._call += 1

    def end_call(self) -> None:
        """Forget what only the finished call needed; keep reusable files."""
        with self._lock:
            for key, entry in list(self._entries.items()):
                del self._entries[key]
                _unlink(entry.filename)
            for key, (copy, _) in list(self._held.items()):
                if copy.ref() is None:
                    del self._held[key]
                    registry().release(copy)
            for filename in self._retired:
                _unlink(filename)
            self._retired.clear()
            self._pinned.clear()
            self._call += 1
        registry().reap()

    def close(self) -> None:
        """Remove every file and folder of the session (idempotent)."""
        with self._lock:
            self._closed = True
            held = [copy for copy, _ in self._held.values()] + self._old_holds
            self._held, self._old_holds = {}, []
            for copy in held:
                registry().release(copy)
            registry().reap()
            self._entries.clear()
            self._retired.clear()
            self._pinned.clear()
            self._result_reducer = None
        self.folder.remove()

    def __enter__(self) -> MemmapSession:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _unlink(filename: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(filename)
