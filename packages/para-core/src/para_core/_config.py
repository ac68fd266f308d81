"""Thread-local configuration: ``parallel_config``, backend registry, cpu counts.

``parallel_config`` pushes a dict of settings on a per-thread slot; ``Parallel``
reads it for every argument left at its default. Worker threads of nested
calls get their own scope through :func:`_nested_scope`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import loky

from ._backend_base import ParallelBackendBase

__all__ = [
    "cpu_count",
    "effective_n_jobs",
    "get_active_backend",
    "parallel_backend",
    "parallel_config",
    "register_parallel_backend",
]

VALID_BACKEND_HINTS = ("processes", "threads", None)
VALID_BACKEND_CONSTRAINTS = ("sharedmem", None)


class _Default:
    """Marks an argument left at its default so configuration can fill it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"default({self.value!r})"


default_parallel_config: dict[str, _Default] = {
    "backend": _Default(None),
    "n_jobs": _Default(None),
    "verbose": _Default(0),
    "temp_folder": _Default(None),
    "max_nbytes": _Default("1M"),
    "mmap_mode": _Default("r"),
    "prefer": _Default(None),
    "require": _Default(None),
}

_local = threading.local()

BACKENDS: dict[str, Callable[..., ParallelBackendBase]] = {}
DEFAULT_BACKEND = "loky"
DEFAULT_THREAD_BACKEND = "threading"


def _register_dask() -> None:
    try:
        from ._dask import DaskDistributedBackend
    except ImportError as exc:
        raise ImportError(
            "backend='dask' needs dask.distributed; install it with "
            "`pip install para-core[dask]`"
        ) from exc
    register_parallel_backend("dask", DaskDistributedBackend)


EXTERNAL_BACKENDS: dict[str, Callable[[], None]] = {"dask": _register_dask}


def _current_config() -> dict[str, Any]:
    return getattr(_local, "config", default_parallel_config)


def _get_config_param(value: Any, key: str) -> Any:
    """Resolve an argument: explicit value, else configuration, else default."""
    if isinstance(value, _Default):
        value = _current_config()[key]
        if isinstance(value, _Default):
            return value.value
    return value


def _check_hint(prefer: Any, require: Any) -> None:
    if prefer not in VALID_BACKEND_HINTS and not isinstance(prefer, _Default):
        raise ValueError(
            f"prefer={prefer} is not a valid backend hint, expected one of "
            f"{VALID_BACKEND_HINTS}"
        )
    if require not in VALID_BACKEND_CONSTRAINTS and not isinstance(require, _Default):
        raise ValueError(
            f"require={require} is not a valid backend constraint, expected one "
            f"of {VALID_BACKEND_CONSTRAINTS}"
        )


def _make_backend(name: str, **params: Any) -> ParallelBackendBase:
    if name not in BACKENDS:
        # The built-in backends register themselves when their module is
        # first imported, which parallel_config("multiprocessing") may precede.
        from . import _backends  # noqa: F401
    if name not in BACKENDS and name in EXTERNAL_BACKENDS:
        EXTERNAL_BACKENDS[name]()
    if name not in BACKENDS:
        raise ValueError(f"Invalid backend: {name}, expected one of {sorted(BACKENDS)}")
    return BACKENDS[name](**params)


def register_parallel_backend(
    name: str,
    factory: Callable[..., ParallelBackendBase],
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
    >>> from para_core import register_parallel_backend
    >>> from para_core._backends import ThreadingBackend
    >>> register_parallel_backend("my_threads", ThreadingBackend)
    """
    global DEFAULT_BACKEND
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {factory!r}")
    BACKENDS[name] = factory
    if make_default:
        DEFAULT_BACKEND = name


class parallel_config:
    """Set the defaults of :class:`~para_core.Parallel` in this thread.

    Usable as a context manager (restores the previous settings on exit) and
    nestable. Arguments left at their default keep the enclosing value.

    Parameters
    ----------
    backend : str or ParallelBackendBase, optional
        Backend name ("loky", "threading", "multiprocessing", "sequential",
        "dask" or a registered name) or an instance.
    n_jobs, verbose, temp_folder, max_nbytes, mmap_mode, prefer, require
        Defaults for the ``Parallel`` arguments of the same name.
    inner_max_num_threads : int, optional
        Cap on BLAS/OpenMP threads in each worker (process backends).
    **backend_params
        Passed to the backend's constructor (``backend`` must be a name).
        ``progress_bar`` (True or a tqdm-like factory) is kept for
        ``Parallel`` instead (see :class:`~para_core.Parallel`).

    Raises
    ------
    ValueError
        Unknown backend name, bad ``prefer``/``require``, or backend
        parameters given without a backend.

    Examples
    --------
    >>> from para_core import Parallel, delayed, parallel_config
    >>> with parallel_config(backend="threading", n_jobs=2):
    ...     Parallel()(delayed(abs)(-i) for i in range(3))
    [0, 1, 2]
    """

    def __init__(
        self,
        backend: Any = default_parallel_config["backend"],
        *,
        n_jobs: Any = default_parallel_config["n_jobs"],
        verbose: Any = default_parallel_config["verbose"],
        temp_folder: Any = default_parallel_config["temp_folder"],
        max_nbytes: Any = default_parallel_config["max_nbytes"],
        mmap_mode: Any = default_parallel_config["mmap_mode"],
        prefer: Any = default_parallel_config["prefer"],
        require: Any = default_parallel_config["require"],
        inner_max_num_threads: int | None = None,
        **backend_params: Any,
    ) -> None:
        self.old_parallel_config = _current_config()
        progress = backend_params.pop("progress_bar", _Default(None))
        _check_hint(prefer, require)
        backend = self._check_backend(backend, inner_max_num_threads, **backend_params)
        new = dict(self.old_parallel_config)
        given = {
            "backend": backend,
            "n_jobs": n_jobs,
            "verbose": verbose,
            "temp_folder": temp_folder,
            "max_nbytes": max_nbytes,
            "mmap_mode": mmap_mode,
            "prefer": prefer,
            "require": require,
            "progress_bar": progress,
        }
        for key, value in given.items():
            if not isinstance(value, _Default):
                new[key] = value
        self.parallel_config = new
        _local.config = new

    def _check_backend(
        self, backend: Any, inner_max_num_threads: int | None, **params: Any
    ) -> Any:
        if isinstance(backend, _Default):
            if inner_max_num_threads is not None or params:
                raise ValueError(
                    "inner_max_num_threads and other constructor parameters "
                    "backend_params are only supported when backend is not None."
                )
            return backend
        if isinstance(backend, str):
            backend = _make_backend(backend, **params)
        elif params:
            raise ValueError(
                "Constructor parameters backend_params are only supported when "
                f"backend is a string, got backend={backend!r}."
            )
        if not isinstance(backend, ParallelBackendBase):
            raise ValueError(
                f"backend must be a registered name or a ParallelBackendBase "
                f"instance, got {backend!r}"
            )
        if inner_max_num_threads is not None:
            if not backend.supports_inner_max_num_threads:
                raise AssertionError(
                    f"{type(backend).__name__} does not accept setting the "
                    "inner_max_num_threads argument."
                )
            backend.inner_max_num_threads = inner_max_num_threads
        if backend.nesting_level is None:
            parent = self.old_parallel_config["backend"]
            backend.nesting_level = (
                0 if isinstance(parent, _Default) else parent.nesting_level
            )
        return backend

    def __enter__(self) -> dict[str, Any]:
        return self.parallel_config

    def __exit__(self, *exc: object) -> None:
        self.unregister()

    def unregister(self) -> None:
        """Restore the settings that were active before this one."""
        _local.config = self.old_parallel_config


class parallel_backend(parallel_config):
    """Legacy form of :class:`parallel_config` for a backend and ``n_jobs``.

    Parameters
    ----------
    backend : str or ParallelBackendBase
        Backend name or instance.
    n_jobs : int, default=-1
        Default number of workers.
    inner_max_num_threads : int, optional
        Cap on BLAS/OpenMP threads in workers.
    **backend_params
        Passed to the backend's constructor.

    Examples
    --------
    >>> from para_core import parallel_backend
    >>> with parallel_backend("threading", n_jobs=2) as (backend, n_jobs):
    ...     n_jobs
    2
    """

    def __init__(
        self,
        backend: Any,
        n_jobs: int = -1,
        inner_max_num_threads: int | None = None,
        **backend_params: Any,
    ) -> None:
        super().__init__(
            backend=backend,
            n_jobs=n_jobs,
            inner_max_num_threads=inner_max_num_threads,
            **backend_params,
        )
        self.new_backend_and_jobs = (self.parallel_config["backend"], n_jobs)

    def __enter__(self) -> tuple[Any, int]:  # type: ignore[override]
        return self.new_backend_and_jobs


class _nested_scope:
    """Configuration seen by tasks of a batch: the parent's nested backend."""

    __slots__ = ("_new", "_old")

    def __init__(self, backend: ParallelBackendBase, n_jobs: int | None) -> None:
        self._new = (backend, n_jobs)

    def __enter__(self) -> None:
        self._old = _current_config()
        cfg = dict(self._old)
        cfg["backend"] = self._new[0]
        if self._new[1] is not None:
            cfg["n_jobs"] = self._new[1]
        _local.config = cfg

    def __exit__(self, *exc: object) -> None:
        _local.config = self._old


def _get_active_backend(
    prefer: Any = None, require: Any = None, verbose: Any = 0
) -> tuple[ParallelBackendBase, bool]:
    """Return the backend to use and whether the user chose it explicitly."""
    from ._backends import ThreadingBackend

    cfg = _current_config()
    _check_hint(prefer, require)
    if isinstance(prefer, _Default):
        prefer = _get_config_param(prefer, "prefer")
    if isinstance(require, _Default):
        require = _get_config_param(require, "require")
    backend = cfg["backend"]
    explicit = not isinstance(backend, _Default)
    if not explicit:
        backend = _make_backend(DEFAULT_BACKEND, nesting_level=0)
    level = backend.nesting_level or 0
    if require == "sharedmem" and not getattr(backend, "supports_sharedmem", False):
        if explicit and _get_config_param(verbose, "verbose"):
            print(
                f"Using ThreadingBackend as joblib backend instead of "
                f"{type(backend).__name__} as the latter does not provide "
                "shared memory semantics."
            )
        return ThreadingBackend(nesting_level=level), explicit
    if prefer == "threads" and not explicit and not backend.uses_threads:
        return ThreadingBackend(nesting_level=level), explicit
    return backend, explicit


def get_active_backend(
    prefer: Any = default_parallel_config["prefer"],
    require: Any = default_parallel_config["require"],
    verbose: Any = default_parallel_config["verbose"],
) -> tuple[ParallelBackendBase, int | None]:
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
    backend, _ = _get_active_backend(prefer, require, verbose)
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
    return loky.cpu_count(only_physical_cores=only_physical_cores)


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
