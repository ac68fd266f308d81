"""The para-core transport hook: one MemmapSession per Parallel call/context."""

from __future__ import annotations

import threading

import numpy as np

from para_core import (
    TransportHook,
    TransportRequest,
    TransportSession,
    get_transport_hook,
    set_transport_hook,
)

from ._session import MemmapSession

__all__ = ["MemmapHook", "disable", "enable", "is_enabled"]


class CoreSession(MemmapSession, TransportSession):
    """A MemmapSession speaking para-core's TransportSession protocol."""

    # The only types our reducers act on: para-core then calls them for these
    # objects alone instead of for every object it pickles.
    reduce_types = (np.ndarray, np.memmap)


class MemmapHook(TransportHook):
    """Opens a :class:`CoreSession` for every process-backed Parallel."""

    def open(self, request: TransportRequest) -> CoreSession:
        return CoreSession(
            max_nbytes=request.max_nbytes,
            mmap_mode=request.mmap_mode,
            temp_folder=request.temp_folder,
        )

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
