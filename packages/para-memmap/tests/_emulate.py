"""Pickling as para-core does it with a transport session, in one process.

Keeps the session and reducer tests independent of para-core's internals: the
caller pickles each task with ``session.reduce_task_object`` first, the worker
pickles its results with ``session.result_reducer`` first.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import cloudpickle


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file: Any, reduce_first: Any) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._reduce_first = reduce_first

    def reducer_override(self, obj: Any) -> Any:
        rv = self._reduce_first(obj)
        if rv is NotImplemented:
            return super().reducer_override(obj)
        return rv


def dumps(obj: Any, reduce_first: Any) -> bytes:
    if reduce_first is None:
        return cloudpickle.dumps(obj)
    buf = io.BytesIO()
    _Pickler(buf, reduce_first).dump(obj)
    return buf.getvalue()
