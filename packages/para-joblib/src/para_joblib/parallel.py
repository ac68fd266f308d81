"""Same public names as ``joblib.parallel``, re-exported from para's packages.

Parallel, delayed and the backend configuration API. Names resolve on first use
(see ``para_joblib._lazy``) from the public face of the package that owns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _CORE

__all__ = [
    "AutoBatchingMixin",
    "FallbackToBackend",
    "LokyBackend",
    "MultiprocessingBackend",
    "Parallel",
    "ParallelBackendBase",
    "SequentialBackend",
    "ThreadingBackend",
    "cpu_count",
    "delayed",
    "effective_n_jobs",
    "get_active_backend",
    "parallel_backend",
    "parallel_config",
    "register_parallel_backend",
]

# joblib.parallel.BatchedCalls is not offered: para_core's class of that name
# takes different arguments, and a same-named object that cannot be called
# the joblib way would break code instead of failing clearly at import.
# Every name of this module comes from one package.
_TABLE = dict.fromkeys(__all__, _CORE)

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_core import (
        AutoBatchingMixin,
        FallbackToBackend,
        LokyBackend,
        MultiprocessingBackend,
        Parallel,
        ParallelBackendBase,
        SequentialBackend,
        ThreadingBackend,
        cpu_count,
        delayed,
        effective_n_jobs,
        get_active_backend,
        parallel_backend,
        parallel_config,
        register_parallel_backend,
    )
