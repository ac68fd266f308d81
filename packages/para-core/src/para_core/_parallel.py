"""``Parallel``: the public face of a parallel call.

It resolves the backend and its configuration (``parallel_config``, ``prefer``,
``require``, nesting), keeps workers and the transport session across the calls
of a ``with`` block, and hands each call to the dispatch engine in
``_dispatch``, whose docstring draws the data flow.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import warnings
import weakref
from collections.abc import Iterable
from typing import Any

from . import _registry
from ._delayed import delayed
from ._dispatch import _Call
from ._errors import parse_max_nbytes
from ._registry import _get_active_backend
from ._settings import _current_config, _Default, _get_config_param
from ._settings import default_parallel_config as _dpc
from ._transport import TransportRequest, get_transport_hook
from .backends._base import FallbackToBackend, ParallelBackendBase
from .backends._loky import LokyBackend
from .backends._multiprocessing import MultiprocessingBackend
from .backends._process import _ProcessBackendMixin
from .backends._threads import ThreadingBackend

__all__ = ["Parallel", "delayed"]

_BUILTIN_BACKENDS = (LokyBackend, MultiprocessingBackend, ThreadingBackend)
_RETURN_AS = ("list", "generator", "generator_unordered")


def _no_call() -> None:
    """Stands for the weak reference to the last generator call: none yet."""


def _private_copy(backend: Any) -> Any:
    """A new backend equal to the configured ``backend``, when one can be made.

    For para-core's classes, and a subclass that says in its own body that
    its instances hold nothing but their arguments (``_para_private_copy =
    True``: para_joblib's ``MultiprocessingBackend``; its subclasses do not
    inherit the promise). Other instances are used as given, as joblib does:
    their methods may keep state the caller reads (joblib's tests do).
    """
    cls = type(backend)
    if cls not in _BUILTIN_BACKENDS and not cls.__dict__.get("_para_private_copy"):
        return backend
    return cls(
        nesting_level=backend.nesting_level,
        inner_max_num_threads=backend.inner_max_num_threads,
        **backend.backend_kwargs,
    )


class Parallel:
    """Run ``delayed`` calls in parallel: ``Parallel(n_jobs=2)(tasks)``.

    Same arguments and behaviour as ``joblib.Parallel``.

    Parameters
    ----------
    n_jobs : int or None
        Number of workers; -1 all CPUs, -2 all but one, ... ; None means the
        ``parallel_config`` value, else 1. Floats are truncated; 0 is an error.
    backend : str, ParallelBackendBase or None
        "loky" (default), "multiprocessing", "threading", "sequential",
        "dask" or a registered name.
    return_as : {"list", "generator", "generator_unordered"}
        A list, or a generator yielding results as they come (in input order,
        or in completion order); a generator releases each result once
        consumed; dropped before its end, it cancels the remaining tasks and
        stops those running (process workers are killed; threads, which
        cannot be, are no longer waited for), as joblib does.
    verbose : int
        0 silent; above 0 prints joblib's progress lines on stderr (stdout
        from 50); above 10 reports every batch.
    timeout : float or None
        Seconds the caller may wait for a batch; then
        ``multiprocessing.TimeoutError`` (as joblib; also an instance of the
        builtin ``TimeoutError``), and the workers are stopped.
    pre_dispatch : int, "all" or str
        Batches dispatched ahead of consumption; an arithmetic expression of
        ``n_jobs`` such as ``"2 * n_jobs"``.
    batch_size : int or "auto"
        Tasks per batch; "auto" grows batches while tasks are fast.
    temp_folder, max_nbytes, mmap_mode
        Passed to the transport hook (para-memmap) of process backends;
        ``max_nbytes`` accepts bytes, None or strings like "1M".
    prefer : {"processes", "threads", None}
        Soft hint used when no backend is given.
    require : {"sharedmem", None}
        Hard constraint: "sharedmem" selects threads.
    **backend_kwargs
        Passed to the backend's ``configure``; ``progress_bar`` is taken out
        first: True shows a tqdm bar (extra ``progress``), or pass any
        tqdm-like factory called as ``factory(total=n_or_None, file=...)``.

    Raises
    ------
    ValueError
        Bad ``n_jobs`` (0 or not a number), ``return_as``, ``batch_size``,
        ``pre_dispatch``, ``prefer``, ``require``, ``max_nbytes`` or backend;
        ``prefer="processes"`` with ``require="sharedmem"`` (given here or
        by ``parallel_config``).
    RuntimeError
        Calling the instance while another of its calls still runs.

    Examples
    --------
    >>> from math import sqrt
    >>> from para_core import Parallel, delayed
    >>> Parallel(n_jobs=2, backend="threading")(delayed(sqrt)(i**2) for i in range(4))
    [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        n_jobs: Any = _dpc["n_jobs"],
        backend: Any = _dpc["backend"],
        return_as: str = "list",
        verbose: Any = _dpc["verbose"],
        timeout: float | None = None,
        pre_dispatch: Any = "2 * n_jobs",
        batch_size: Any = "auto",
        temp_folder: Any = _dpc["temp_folder"],
        max_nbytes: Any = _dpc["max_nbytes"],
        mmap_mode: Any = _dpc["mmap_mode"],
        prefer: Any = _dpc["prefer"],
        require: Any = _dpc["require"],
        **backend_kwargs: Any,
    ) -> None:
        progress = backend_kwargs.pop("progress_bar", None)
        if progress is None:
            progress = _current_config().get("progress_bar")
            progress = None if isinstance(progress, _Default) else progress
        self._progress_factory = progress
        self.verbose = _get_config_param(verbose, "verbose")
        self.timeout = timeout
        self.pre_dispatch = pre_dispatch
        self.temp_folder = _get_config_param(temp_folder, "temp_folder")
        self.max_nbytes = parse_max_nbytes(_get_config_param(max_nbytes, "max_nbytes"))
        self.mmap_mode = _get_config_param(mmap_mode, "mmap_mode")
        if return_as not in _RETURN_AS:
            raise ValueError(
                'Expected `return_as` parameter to be a string equal to "list",'
                f'"generator" or "generator_unordered", but got {return_as} '
                "instead."
            )
        self.return_as = return_as
        if batch_size != "auto" and not (
            isinstance(batch_size, int)
            and not isinstance(batch_size, bool)
            and batch_size > 0
        ):
            raise ValueError(
                f"batch_size must be 'auto' or a positive integer, got: {batch_size!r}"
            )
        self.batch_size = batch_size

        active, _explicit, forced_threads = _get_active_backend(
            prefer, require, verbose
        )
        prefer = _get_config_param(prefer, "prefer")
        require = _get_config_param(require, "require")
        level = active.nesting_level
        if backend is None or isinstance(backend, _Default):
            backend = active
            # The configured instance may be shared by concurrent calls
            # (e.g. nested calls in several threads): use a private one.
            backend = _private_copy(backend)
        elif isinstance(backend, ParallelBackendBase):
            if backend.nesting_level is None:
                backend.nesting_level = level
        elif hasattr(backend, "Pool") and hasattr(backend, "Lock"):
            # A multiprocessing context: the class registered under that name
            # (para_joblib registers joblib's), else para-core's.
            cls = _registry.BACKENDS.get("multiprocessing")
            if not (isinstance(cls, type) and issubclass(cls, MultiprocessingBackend)):
                cls = MultiprocessingBackend
            backend = cls(nesting_level=level, context=backend)
        elif isinstance(backend, str):
            backend = _registry._make_backend(backend, nesting_level=level)
        else:
            raise ValueError(
                f"Invalid backend: {backend!r}, expected one of "
                f"{sorted(_registry.BACKENDS)} or a ParallelBackendBase instance"
            )
        if require == "sharedmem" and not getattr(backend, "supports_sharedmem", False):
            raise ValueError(f"Backend {backend} does not support shared memory")

        if n_jobs is None or isinstance(n_jobs, _Default):
            # Unset: parallel_config's value, as in joblib; 1 when prefer or
            # require replaced the configured backend by threads.
            n_jobs = (
                1 if forced_threads else _get_config_param(_dpc["n_jobs"], "n_jobs")
            )
        if n_jobs is None:
            n_jobs = backend.default_n_jobs
        try:
            n_jobs = int(n_jobs)
        except (TypeError, ValueError):
            raise ValueError(
                f"n_jobs could not be converted to int, got n_jobs={n_jobs!r}"
            ) from None
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        self.n_jobs = n_jobs
        self._backend = backend
        self._backend_kwargs = {**backend_kwargs, "prefer": prefer, "require": require}
        if isinstance(backend, MultiprocessingBackend):
            # joblib's record of the pool's start method (read by its tests
            # and by clients); configure() takes it as the pool's context.
            self._backend_kwargs.setdefault(
                "context", backend.backend_kwargs.get("context") or mp.get_context()
            )
        self._in_context = False
        self._running = False
        # joblib's flag: the last call ended early (an error, an interruption
        # or a dropped generator) and its work was stopped.
        self._aborting = False
        self._generator_call: Any = _no_call
        self._transport_session: Any = None
        self._n_jobs_resolved = 1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_jobs={self.n_jobs})"

    def _effective_n_jobs(self) -> int:
        # joblib's name, which its tests and some clients call: the workers
        # this Parallel's backend would use for its n_jobs.
        if self._backend is None:
            return 1
        return self._backend.effective_n_jobs(self.n_jobs)

    def _print(self, msg: str) -> None:
        if not self.verbose:
            return
        writer = sys.stderr.write if self.verbose < 50 else sys.stdout.write
        writer(f"[{self}]: {msg}\n")

    def print_progress(self) -> None:
        """Called after each finished batch; override to show progress.

        Before each call the attributes ``n_completed_tasks``,
        ``n_dispatched_tasks``, ``n_dispatched_batches`` and ``n_tasks``
        (None when the input has no length) are up to date.
        """

    # -- life cycle --------------------------------------------------------
    def __enter__(self) -> Parallel:
        self._in_context = True
        self._initialize_backend()
        return self

    def __exit__(self, *exc: object) -> None:
        self._in_context = False
        # A result generator of the block still running stops with it, as
        # in joblib (the block's end would otherwise wait for its tasks).
        call = self._generator_call()
        if call is not None and self._running:
            call._abort(GeneratorExit())
        self._terminate()

    def _initialize_backend(self) -> int:
        try:
            n = self._backend.configure(
                n_jobs=self.n_jobs, parallel=self, **self._backend_kwargs
            )
        except FallbackToBackend as fallback:
            self._backend = fallback.backend
            n = self._backend.configure(
                n_jobs=self.n_jobs, parallel=self, **self._backend_kwargs
            )
        if n == 0:
            # A backend without workers would never run a task (joblib's text).
            raise RuntimeError(f"{type(self._backend).__name__} has no active worker.")
        if self.timeout is not None and not self._backend.supports_timeout:
            warnings.warn(
                f"The backend class {type(self._backend).__name__!r} does not "
                f"support timeout. You have set 'timeout={self.timeout}' in "
                "Parallel but the 'timeout' parameter will not be used.",
                stacklevel=3,
            )
        self._n_jobs_resolved = n
        hook = get_transport_hook()
        if (
            hook is not None
            and self._transport_session is None
            and isinstance(self._backend, _ProcessBackendMixin)
        ):
            self._transport_session = hook.open(
                TransportRequest(
                    backend=self._backend.name,
                    n_jobs=n,
                    temp_folder=self.temp_folder,
                    max_nbytes=self.max_nbytes,
                    mmap_mode=self.mmap_mode,
                )
            )
        return n

    def _terminate(self) -> None:
        session, self._transport_session = self._transport_session, None
        try:
            self._backend.terminate()
        finally:
            if session is not None:
                session.close()

    # -- calls -------------------------------------------------------------
    def __call__(self, iterable: Iterable[tuple]) -> Any:
        """Run the ``delayed`` calls of ``iterable``; see the class docstring."""
        with self._lock:
            if self._running:
                raise RuntimeError(
                    "This Parallel instance is already running a call; wait "
                    "for it (or exhaust its generator) before calling it again, "
                    "or create another Parallel instance."
                )
            self._running = True
            self._aborting = False
        custom_progress = type(self).print_progress is not Parallel.print_progress
        call = _Call(self, iterable, custom_progress)
        if self.return_as == "list":
            return call.run_list()
        self._generator_call = weakref.ref(call)
        gen = call.run()
        try:
            next(gen)  # set up and dispatch the first batches now, like joblib
        except BaseException:
            self._running = False
            raise
        return gen
