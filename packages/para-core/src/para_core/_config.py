"""``parallel_config`` and ``parallel_backend``: settings for ``Parallel`` in a thread.

``parallel_config`` checks what it is given (a backend name is made into a
backend through the registry, ``_registry``) and pushes the new settings on
this thread's slot (``_settings``); ``Parallel`` reads them for every
argument left at its default.
"""

from __future__ import annotations

from typing import Any

from ._registry import _make_backend

# ``_Default`` is also found here by pickles of para-core 0.1.0, which
# defined it in this module.
from ._settings import (
    _check_hint,
    _current_config,
    _Default,
    _set_current_config,
    default_parallel_config,
)
from .backends._base import ParallelBackendBase

__all__ = ["parallel_backend", "parallel_config"]


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
        _set_current_config(new)

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
        _set_current_config(self.old_parallel_config)


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
