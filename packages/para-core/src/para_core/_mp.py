"""Whether this interpreter can run worker processes; loky when it can.

Some sandboxes and serverless runtimes (Pyodide, AWS Lambda, ...) lack the
``_multiprocessing`` module, and then loky cannot even be imported, or lack
POSIX semaphores, and then no pool of processes can start. joblib runs
sequentially there, the second case with a warning, and so does para_core:
:func:`processes_available` is False, process and thread backends run one
worker (the sequential backend), ``cpu_count()`` is 1, and naming "loky" or
"multiprocessing" warns that threads are used instead. The environment
variable ``JOBLIB_MULTIPROCESSING=0`` asks for the same, as in joblib.

The rest of para_core takes loky's names from here, so that importing it
never needs ``_multiprocessing``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

__all__ = [
    "ShutdownExecutorError",
    "TerminatedWorkerError",
    "loky",
    "loky_cpu_count",
    "processes_available",
    "resource_tracker",
]

loky: Any
resource_tracker: Any
try:
    import _multiprocessing  # noqa: F401  # what loky needs and may lack

    import loky
    from loky.backend import resource_tracker
    from loky.process_executor import ShutdownExecutorError, TerminatedWorkerError
except ImportError:
    loky = resource_tracker = None

    class TerminatedWorkerError(Exception):  # type: ignore[no-redef]
        """Stands for loky's class, which cannot be imported here (no
        worker process can run, so none can die)."""

    class ShutdownExecutorError(RuntimeError):  # type: ignore[no-redef]
        """Stands for loky's class, which cannot be imported here (no
        executor can run, so none is shut down)."""


def loky_cpu_count(only_physical_cores: bool = False) -> int:
    """loky's CPU count (affinity, cgroups, ``LOKY_MAX_CPU_COUNT``), 1 when
    loky cannot be imported."""
    if loky is None:
        return 1
    return loky.cpu_count(only_physical_cores=only_physical_cores)


# Whether named semaphores work here: probed once, on first need.
_SEMAPHORES: bool | None = None


def processes_available() -> bool:
    """Whether worker processes can run here (see the module docstring)."""
    global _SEMAPHORES
    if loky is None or os.environ.get("JOBLIB_MULTIPROCESSING", "1").strip() == "0":
        return False
    if _SEMAPHORES is None:
        _SEMAPHORES = _probe_semaphores()
    return _SEMAPHORES


def _probe_semaphores() -> bool:
    # Every process pool needs named semaphores (multiprocessing's locks and
    # loky's): create one, unlinked at once, to learn whether they work.
    import secrets

    try:
        from _multiprocessing import SemLock

        for _ in range(100):
            name = f"/para-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                SemLock(1, 1, 1, name, True)  # kind: semaphore, unlink now
                return True
            except FileExistsError:
                continue
        raise FileExistsError("cannot find a free name for a semaphore")
    except (OSError, ImportError, AttributeError) as exc:
        warnings.warn(
            f"{exc}.  para_core will operate in serial mode: worker processes "
            "need semaphores, which this system does not provide.",
            stacklevel=2,
        )
        return False
