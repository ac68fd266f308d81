"""Backends by name, and the backend a ``Parallel()`` made here would use.

The registry maps a name to a factory. The built-in backends are registered
as lazy factories (:class:`_Lazy`): their module is imported when a backend
of that name is first made, so this module imports no backend, a process
that never asks for dask never imports it, and the backends' base class can
ask the registry for the backend of nested calls without importing one.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

from ._mp import loky_cpu_count, processes_available
from ._settings import (
    _check_hint,
    _current_config,
    _Default,
    _get_config_param,
    default_parallel_config,
)

__all__ = [
    "cpu_count",
    "effective_n_jobs",
    "get_active_backend",
    "register_parallel_backend",
]


class _Lazy:
    """Factory of a built-in backend: imports its module when first called.

    ``missing``: the text of the ValueError raised when the module cannot be
    imported (an optional dependency is not installed).
    """

    __slots__ = ("_class", "_missing", "_module")

    def __init__(self, module: str, cls: str, missing: str | None = None) -> None:
        self._module, self._class, self._missing = module, cls, missing

    def load(self) -> type:
        try:
            # Imported each time (a dictionary look-up once loaded), so a
            # module made unimportable on purpose is seen as such.
            module = importlib.import_module(self._module, __package__)
        except ImportError as exc:
            if self._missing is None:
                raise
            raise ValueError(self._missing) from exc
        return getattr(module, self._class)

    def __call__(self, **params: Any) -> Any:
        return self.load()(**params)

    def __repr__(self) -> str:
        return f"<lazy {self._module.lstrip('.')}.{self._class}>"


_BUILTIN: dict[str, _Lazy] = {
    "loky": _Lazy(".backends._loky", "LokyBackend"),
    "multiprocessing": _Lazy(".backends._multiprocessing", "MultiprocessingBackend"),
    "threading": _Lazy(".backends._threads", "ThreadingBackend"),
    "sequential": _Lazy(".backends._threads", "SequentialBackend"),
    # joblib's ValueError and text, then how to install what is missing.
    "dask": _Lazy(
        ".backends._dask",
        "DaskDistributedBackend",
        "You are trying to use 'dask' as a joblib parallel backend but dask "
        "is not installed. Please install dask to fix this error: "
        "`pip install para-core[dask]` installs dask and distributed.",
    ),
}

# dask is not listed until first asked for, as in joblib: code that builds
# every listed backend (joblib's own tests do) must not need a dask client.
BACKENDS: dict[str, Callable[..., Any]] = {
    name: factory for name, factory in _BUILTIN.items() if name != "dask"
}


def _register_dask() -> None:
    BACKENDS["dask"] = _BUILTIN["dask"]


#: joblib's hook for backends shipped by other libraries: name -> a function
#: that registers that name (through :func:`register_parallel_backend`); it
#: is called the first time the name is asked for and is not yet registered.
EXTERNAL_BACKENDS: dict[str, Callable[[], Any]] = {"dask": _register_dask}
DEFAULT_BACKEND = "loky"
DEFAULT_THREAD_BACKEND = "threading"
# Where no process can run (see _mp), these names mean threads, as in joblib.
_PROCESS_BACKENDS = ("loky", "multiprocessing")


def backend_classes() -> dict[str, Callable[..., Any]]:
    """The registry as joblib shows it (``joblib.parallel.BACKENDS``).

    Built-in entries become their classes, the form clients read and
    subclass; an optional one (dask) stays lazy until it is first used, so
    reading the registry never imports a dependency the program may lack.
    """
    for name, factory in list(BACKENDS.items()):
        if type(factory) is _Lazy and factory._missing is None:
            BACKENDS[name] = factory.load()
    return BACKENDS


def builtin_backend(name: str, **params: Any) -> Any:
    """A new built-in backend ``name``, even when a user registered that name."""
    return _BUILTIN[name](**params)


def _make_backend(name: str, **params: Any) -> Any:
    if name in _PROCESS_BACKENDS and not processes_available():
        warnings.warn(
            f"joblib backend '{name}' is not available on your system, falling "
            f"back to {DEFAULT_THREAD_BACKEND}.",
            UserWarning,
            stacklevel=3,
        )
        name = DEFAULT_THREAD_BACKEND
    factory = BACKENDS.get(name)
    if factory is None and name in EXTERNAL_BACKENDS:
        EXTERNAL_BACKENDS[name]()
        factory = BACKENDS.get(name)
    if factory is None:
        raise ValueError(f"Invalid backend: {name}, expected one of {sorted(BACKENDS)}")
    return factory(**params)


def register_parallel_backend(
    name: str,
    factory: Callable[..., Any],
    make_default: bool = False,
) -> None:
    """Register a backend factory under ``name``.

    Parameters
    ----------
    name : str
        Name to use as ``Parallel(backend=name)``.
    factory : callable
        Returns a :class:`ParallelBackendBase` instance; receives the
        ``backend_params`` of ``parallel_config`` as keyword arguments.
    make_default : bool, default=False
        Make it the backend used when none is given.

    Examples
    --------
    >>> from para_core import ThreadingBackend, register_parallel_backend
    >>> register_parallel_backend("my_threads", ThreadingBackend)
    """
    global DEFAULT_BACKEND
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {factory!r}")
    BACKENDS[name] = factory
    if make_default:
        DEFAULT_BACKEND = name


def _get_active_backend(
    prefer: Any = None, require: Any = None, verbose: Any = 0
) -> tuple[Any, bool, bool]:
    """Return the backend to use, whether the user chose it explicitly, and
    whether ``prefer``/``require`` forced threads instead of it (then, as in
    joblib, ``n_jobs`` left unset means 1, not the configured value)."""
    cfg = _current_config()
    _check_hint(prefer, require)
    if isinstance(prefer, _Default):
        prefer = _get_config_param(prefer, "prefer")
    if isinstance(require, _Default):
        require = _get_config_param(require, "require")
    if prefer == "processes" and require == "sharedmem":
        raise ValueError(
            "prefer == 'processes' and require == 'sharedmem' are inconsistent settings"
        )
    backend = cfg["backend"]
    explicit = not isinstance(backend, _Default)
    if not explicit:
        name = DEFAULT_BACKEND
        if name in _PROCESS_BACKENDS and not processes_available():
            name = DEFAULT_THREAD_BACKEND  # joblib's default there, no warning
        backend = _make_backend(name, nesting_level=0)
    level = backend.nesting_level or 0
    if require == "sharedmem" and not getattr(backend, "supports_sharedmem", False):
        if explicit and _get_config_param(verbose, "verbose") >= 10:
            print(
                f"Using ThreadingBackend as joblib backend instead of "
                f"{type(backend).__name__} as the latter does not provide "
                "shared memory semantics."
            )
        return builtin_backend("threading", nesting_level=level), explicit, True
    if prefer == "threads" and not explicit and not backend.uses_threads:
        return builtin_backend("threading", nesting_level=level), explicit, True
    return backend, explicit, False


def get_active_backend(
    prefer: Any = default_parallel_config["prefer"],
    require: Any = default_parallel_config["require"],
    verbose: Any = default_parallel_config["verbose"],
) -> tuple[Any, int | None]:
    """Return ``(backend, n_jobs)`` that ``Parallel()`` would use here.

    Parameters
    ----------
    prefer, require, verbose
        As for :class:`~para_core.Parallel`.

    Returns
    -------
    backend : ParallelBackendBase
    n_jobs : int or None

    Examples
    --------
    >>> from para_core import get_active_backend, parallel_config
    >>> with parallel_config("threading", n_jobs=3):
    ...     type(get_active_backend()[0]).__name__, get_active_backend()[1]
    ('ThreadingBackend', 3)
    """
    backend, _, forced_threads = _get_active_backend(prefer, require, verbose)
    if forced_threads:
        return backend, 1
    return backend, _get_config_param(default_parallel_config["n_jobs"], "n_jobs")


def cpu_count(only_physical_cores: bool = False) -> int:
    """Return the number of CPUs this process may use.

    Honours CPU affinity, cgroup quotas and ``LOKY_MAX_CPU_COUNT``.

    Parameters
    ----------
    only_physical_cores : bool, default=False
        Ignore hyperthreading siblings.

    Returns
    -------
    int

    Examples
    --------
    >>> from para_core import cpu_count
    >>> cpu_count() >= 1
    True
    """
    if not processes_available():
        return 1  # as joblib: no worker processes here
    return loky_cpu_count(only_physical_cores=only_physical_cores)


def effective_n_jobs(n_jobs: int | None = -1) -> int:
    """Return how many workers ``n_jobs`` means for the active backend.

    Parameters
    ----------
    n_jobs : int or None, default=-1

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``n_jobs == 0``.

    Examples
    --------
    >>> from para_core import effective_n_jobs
    >>> effective_n_jobs(1)
    1
    """
    if n_jobs == 1:
        return 1
    backend, backend_n_jobs = get_active_backend()
    if n_jobs is None:
        n_jobs = backend_n_jobs
    return backend.effective_n_jobs(n_jobs=n_jobs)
