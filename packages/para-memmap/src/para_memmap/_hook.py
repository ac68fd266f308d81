"""The para-core transport hook: one MemmapSession per Parallel call/context.

Imports no numpy: sessions name their types ``"numpy:ndarray"``, so that
para-core hands them arrays only once numpy is imported, in the caller as in
the workers, and a program without numpy arrays never imports it for us.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from para_core import (
    TransportHook,
    TransportRequest,
    TransportSession,
    get_transport_hook,
    set_transport_hook,
)

__all__ = ["CoreSession", "MemmapHook", "disable", "enable", "is_enabled"]


class CoreSession(TransportSession):
    """para-core's view of a :class:`~para_memmap._session.MemmapSession`.

    The session itself (and numpy) is made when the first array is met.
    """

    # The only types our reducers act on: para-core then calls them for these
    # objects alone instead of for every object it pickles.
    reduce_types = ("numpy:ndarray", "numpy:memmap")

    def __init__(self, request: TransportRequest) -> None:
        # Imported here, not with the hook: a first call starts its workers
        # before it opens its session, and they boot while this loads.
        from ._options import check_max_nbytes, check_mmap_mode
        from ._storage import SharedFolder

        self._max_nbytes = check_max_nbytes(request.max_nbytes)
        self._mmap_mode = check_mmap_mode(request.mmap_mode)
        self._temp_folder = request.temp_folder
        self._folder = SharedFolder(request.temp_folder)
        self._session: Any = None
        self._lock = threading.Lock()
        self._result_reducer: Any = None

    @property
    def session(self) -> Any:
        """The MemmapSession (made on first use)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    from ._session import MemmapSession

                    self._session = MemmapSession(
                        self._max_nbytes,
                        self._mmap_mode,
                        self._temp_folder,
                        folder=self._folder,
                    )
        return self._session

    @property
    def stats(self) -> Any:
        return self.session.stats

    def reduce_task_object(self, obj: Any) -> Any:
        session = self._session
        if session is None:
            session = self.session
        return session.reduce_task_object(obj)

    @property
    def result_reducer(self) -> Any:  # type: ignore[override]
        if self._session is not None:
            return self._session.result_reducer
        if self._max_nbytes is None:
            return None
        if self._result_reducer is None:
            from ._results import ResultReducer

            folder = self._folder.folder_for(self._folder.root)
            self._result_reducer = ResultReducer(
                folder, self._max_nbytes, self._folder.auto_shm
            )
        return self._result_reducer

    def end_call(self) -> None:
        if self._session is not None:
            self._session.end_call()
        elif "numpy" in sys.modules:
            from ._registry import registry

            registry().reap()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._result_reducer = None
        self._folder.remove()


class MemmapHook(TransportHook):
    """Opens a :class:`CoreSession` for every process-backed Parallel."""

    def open(self, request: TransportRequest) -> CoreSession:
        return CoreSession(request)

    def __repr__(self) -> str:
        return "para_memmap.MemmapHook()"


_lock = threading.Lock()


def enable() -> None:
    with _lock:
        if not isinstance(get_transport_hook(), MemmapHook):
            set_transport_hook(MemmapHook())


def disable() -> None:
    with _lock:
        if isinstance(get_transport_hook(), MemmapHook):
            set_transport_hook(None)


def is_enabled() -> bool:
    return isinstance(get_transport_hook(), MemmapHook)
