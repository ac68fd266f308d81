"""Parallel and delayed: joblib's parallel loops on loky, threads or dask.

Less dispatch overhead than joblib, a progress bar, clear crash reports.

>>> from para_core import Parallel, delayed
>>> Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))
[0, 1, 2, 3]

Names are imported from their private modules on first use: a worker
process, which only needs the batch runner, does not pay for the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._batch import BatchedCalls
    from ._completion import (
        BatchCompletionCallBack,
        get_batch_completion_callback,
        set_batch_completion_callback,
    )
    from ._config import parallel_backend, parallel_config
    from ._delayed import delayed
    from ._errors import WorkerTerminatedError
    from ._lifeline import exit_with_caller
    from ._parallel import Parallel
    from ._pickling import wrap_non_picklable_objects
    from ._registry import (
        cpu_count,
        effective_n_jobs,
        get_active_backend,
        register_parallel_backend,
    )
    from ._transport import (
        TransportHook,
        TransportRequest,
        TransportSession,
        get_transport_hook,
        set_transport_hook,
    )
    from .backends._base import (
        AutoBatchingMixin,
        FallbackToBackend,
        ParallelBackendBase,
    )
    from .backends._loky import LokyBackend
    from .backends._multiprocessing import MultiprocessingBackend
    from .backends._threads import SequentialBackend, ThreadingBackend

# public name -> private module defining it
_LAZY = {
    "AutoBatchingMixin": "backends._base",
    "BatchedCalls": "_batch",
    "BatchCompletionCallBack": "_completion",
    "get_batch_completion_callback": "_completion",
    "set_batch_completion_callback": "_completion",
    "FallbackToBackend": "backends._base",
    "ParallelBackendBase": "backends._base",
    "LokyBackend": "backends._loky",
    "MultiprocessingBackend": "backends._multiprocessing",
    "SequentialBackend": "backends._threads",
    "ThreadingBackend": "backends._threads",
    "cpu_count": "_registry",
    "effective_n_jobs": "_registry",
    "get_active_backend": "_registry",
    "parallel_backend": "_config",
    "parallel_config": "_config",
    "register_parallel_backend": "_registry",
    "WorkerTerminatedError": "_errors",
    "exit_with_caller": "_lifeline",
    "Parallel": "_parallel",
    "delayed": "_delayed",
    "wrap_non_picklable_objects": "_pickling",
    "TransportHook": "_transport",
    "TransportRequest": "_transport",
    "TransportSession": "_transport",
    "get_transport_hook": "_transport",
    "set_transport_hook": "_transport",
}


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_BACKEND":
        # Name of the backend used outside any parallel_config; changed by
        # register_parallel_backend(..., make_default=True), so never cached.
        return importlib.import_module("._registry", __name__).DEFAULT_BACKEND
    if name == "BACKENDS" or name == "EXTERNAL_BACKENDS":
        # joblib.parallel's registries, read (and changed) by its tests and
        # by clients; the registry itself stays importable without a backend.
        registry = importlib.import_module("._registry", __name__)
        if name == "BACKENDS":
            return registry.backend_classes()
        return registry.EXTERNAL_BACKENDS
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'para_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "EXTERNAL_BACKENDS",
    "AutoBatchingMixin",
    "BatchCompletionCallBack",
    "BatchedCalls",
    "FallbackToBackend",
    "LokyBackend",
    "MultiprocessingBackend",
    "Parallel",
    "ParallelBackendBase",
    "SequentialBackend",
    "ThreadingBackend",
    "TransportHook",
    "TransportRequest",
    "TransportSession",
    "WorkerTerminatedError",
    "cpu_count",
    "delayed",
    "effective_n_jobs",
    "exit_with_caller",
    "get_active_backend",
    "get_batch_completion_callback",
    "get_transport_hook",
    "parallel_backend",
    "parallel_config",
    "register_parallel_backend",
    "set_batch_completion_callback",
    "set_transport_hook",
    "wrap_non_picklable_objects",
]
