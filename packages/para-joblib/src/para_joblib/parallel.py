"""Same public names as ``joblib.parallel``, and the internals clients read.

Parallel, delayed, the backend configuration API, the backend classes (see
``para_joblib._parallel_backends``), and what client libraries reach for:
``mp`` (the multiprocessing module, or None when joblib would run serially:
scikit-learn reads it at import), ``get_active_backend`` (mne, networkx),
``BatchedCalls`` (the batch type backends receive), ``DEFAULT_BACKEND``, the
``TASK_*`` status names and ``BatchCompletionCallBack``, which programs
replace by assignment (the "tqdm_joblib" recipe): this module forwards the
assignment to para-core's ``set_batch_completion_callback``. Names resolve on
first use (see ``para_joblib._lazy``) from the public face of the package
that owns them.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _CORE

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_THREAD_BACKEND",
    "EXTERNAL_BACKENDS",
    "TASK_DONE",
    "TASK_ERROR",
    "TASK_PENDING",
    "VALID_BACKEND_CONSTRAINTS",
    "VALID_BACKEND_HINTS",
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
    "cpu_count",
    "delayed",
    "effective_n_jobs",
    "get_active_backend",
    "mp",
    "parallel_backend",
    "parallel_config",
    "register_parallel_backend",
]

# joblib's status names of a dispatched batch (facts of its API).
TASK_DONE = "Done"
TASK_ERROR = "Error"
TASK_PENDING = "Pending"
DEFAULT_THREAD_BACKEND = "threading"
VALID_BACKEND_HINTS = ("processes", "threads", None)
VALID_BACKEND_CONSTRAINTS = ("sharedmem", None)

_BACKENDS = (f"{__package__}._parallel_backends",)
_TABLE = {
    **dict.fromkeys(
        [
            "BACKENDS",
            "EXTERNAL_BACKENDS",
            "BatchedCalls",
            "Parallel",
            "cpu_count",
            "delayed",
            "effective_n_jobs",
            "get_active_backend",
            "parallel_backend",
            "parallel_config",
            "register_parallel_backend",
        ],
        _CORE,
    ),
    **dict.fromkeys(
        [
            "AutoBatchingMixin",
            "FallbackToBackend",
            "LokyBackend",
            "MultiprocessingBackend",
            "ParallelBackendBase",
            "SequentialBackend",
            "ThreadingBackend",
        ],
        _BACKENDS,
    ),
}

_getattr, _dir = make_lazy_module(__name__, _TABLE)


def _multiprocessing() -> ModuleType | None:
    """joblib's ``mp``: multiprocessing, or None where joblib runs serially.

    None when ``JOBLIB_MULTIPROCESSING=0`` or when the platform has no
    working named semaphores (``multiprocessing.synchronize`` refuses to
    import there).
    """
    if not int(os.environ.get("JOBLIB_MULTIPROCESSING", 1)):
        return None
    try:
        import multiprocessing

        # Refuses to import where named semaphores do not work.
        import multiprocessing.synchronize
    except ImportError:
        return None
    return multiprocessing


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_BACKEND":  # follows make_default=True: not cached
        import para_core

        return para_core.DEFAULT_BACKEND
    if name == "BatchCompletionCallBack":  # the class installed now: not cached
        import para_core

        return para_core.get_batch_completion_callback()
    if name == "mp":
        value = globals()["mp"] = _multiprocessing()
        return value
    return _getattr(name)


def __dir__() -> list[str]:
    return sorted(set(_dir()) | {"BatchCompletionCallBack", "DEFAULT_BACKEND", "mp"})


class _ParallelModule(ModuleType):
    """This module's type: two of its names are assigned by programs.

    ``BatchCompletionCallBack``: programs replace it with a subclass for the
    duration of a call and put the old one back; the class lives in
    para-core's engine, so the assignment (and ``del``, which restores the
    default) goes there instead of this module's namespace.
    ``DEFAULT_BACKEND = name`` (how joblib's tests and some clients restore
    the default) sets para's.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "BatchCompletionCallBack":
            import para_core

            para_core.set_batch_completion_callback(value)
        elif name == "DEFAULT_BACKEND":
            import para_core

            if value not in para_core.BACKENDS:
                raise ValueError(
                    f"DEFAULT_BACKEND must name a registered backend "
                    f"({sorted(para_core.BACKENDS)}), got {value!r}"
                )
            para_core.register_parallel_backend(
                value, para_core.BACKENDS[value], make_default=True
            )
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name == "BatchCompletionCallBack":
            import para_core

            para_core.set_batch_completion_callback(None)
            return
        super().__delattr__(name)


sys.modules[__name__].__class__ = _ParallelModule


if TYPE_CHECKING:  # static analysers see the real objects
    from para_core import (
        BACKENDS,
        EXTERNAL_BACKENDS,
        BatchCompletionCallBack,
        BatchedCalls,
        Parallel,
        cpu_count,
        delayed,
        effective_n_jobs,
        get_active_backend,
        parallel_backend,
        parallel_config,
        register_parallel_backend,
    )

    from ._parallel_backends import (
        AutoBatchingMixin,
        FallbackToBackend,
        LokyBackend,
        MultiprocessingBackend,
        ParallelBackendBase,
        SequentialBackend,
        ThreadingBackend,
    )

    mp: ModuleType | None
    DEFAULT_BACKEND: str
