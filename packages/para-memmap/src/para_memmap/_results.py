"""What workers do with the results they send back: large arrays go by file.

Imports no numpy: a worker unpickles the reducer before its first task, and
a program that never touches numpy must not pay for importing it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ._storage import SHM_HEADROOM, free_bytes, is_ours, write_array

__all__ = ["ResultReducer"]


class ResultReducer:
    """Picklable reducer that workers apply to the results they send back.

    Arrays at least ``max_nbytes`` large are written to a file in the session
    folder and rebuilt in the caller without a copy; arrays that are views of a
    user's own ``np.memmap`` go back by reference.
    """

    def __init__(self, folder: str, max_nbytes: int, check_room: bool) -> None:
        self.folder = folder
        self.max_nbytes = max_nbytes
        self.check_room = check_room

    def __reduce__(self) -> tuple:
        return ResultReducer, (self.folder, self.max_nbytes, self.check_room)

    def __call__(self, obj: Any) -> Any:
        # Called for numpy arrays only (``reduce_types``): numpy is imported.
        from ._arrays import (
            backing_memmap,
            byte_chunks,
            rebuild_result,
            reduce_by_reference,
        )

        np = sys.modules["numpy"]
        cls = type(obj)
        if cls is not np.ndarray and cls is not np.memmap:
            return NotImplemented
        if obj.dtype.hasobject or obj.nbytes == 0:
            return NotImplemented
        m = backing_memmap(obj)
        if m is not None and m.filename is not None and not is_ours(m.filename):
            return reduce_by_reference(obj, m)
        if obj.nbytes < self.max_nbytes:
            return NotImplemented
        if self.check_room:
            try:
                if free_bytes(self.folder) < obj.nbytes + SHM_HEADROOM:
                    return NotImplemented  # no room: the result pipe will do
            except OSError:
                return NotImplemented
        order, chunks = byte_chunks(obj)
        filename = os.path.join(
            self.folder, f"r-{os.getpid()}-{os.urandom(8).hex()}.dat"
        )
        try:
            write_array(filename, chunks(), obj.nbytes, checksum=False)
        except OSError:
            return NotImplemented
        return rebuild_result, (filename, obj.dtype, obj.shape, order)
