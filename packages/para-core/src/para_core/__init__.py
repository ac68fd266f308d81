"""Parallel and delayed: joblib's parallel loops on loky, threads or dask.

Less dispatch overhead than joblib, a progress bar, clear crash reports.

>>> from para_core import Parallel, delayed
>>> Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))
[0, 1, 2, 3]
"""

from ._backend_base import (
    AutoBatchingMixin,
    BatchedCalls,
    FallbackToBackend,
    ParallelBackendBase,
)
from ._backends import (
    LokyBackend,
    MultiprocessingBackend,
    SequentialBackend,
    ThreadingBackend,
)
from ._config import (
    cpu_count,
    effective_n_jobs,
    get_active_backend,
    parallel_backend,
    parallel_config,
    register_parallel_backend,
)
from ._errors import WorkerTerminatedError
from ._parallel import Parallel, delayed
from ._pickling import wrap_non_picklable_objects
from ._transport import (
    TransportHook,
    TransportRequest,
    TransportSession,
    get_transport_hook,
    set_transport_hook,
)

__version__ = "0.1.0"

__all__ = [
    "AutoBatchingMixin",
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
    "get_active_backend",
    "get_transport_hook",
    "parallel_backend",
    "parallel_config",
    "register_parallel_backend",
    "set_transport_hook",
    "wrap_non_picklable_objects",
]
