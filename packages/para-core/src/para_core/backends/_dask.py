"""The ``dask`` backend: ``Parallel`` batches as tasks of a dask.distributed cluster.

Imported on demand (``backend="dask"``), so importing ``distributed`` at the top
of this module costs nothing to users of the other backends::

    caller                                            dask cluster
    ------                                            ------------
    Parallel --submit(batch, callback)--> DaskDistributedBackend
      for each (func, args, kwargs) of the batch:
        large argument seen first in this call --client.scatter--> worker memory
        large argument seen again --------------- same Future, no new transfer
      client.submit(_run_batch, items-with-Futures) ---------> a worker thread:
                                                             Futures -> objects,
                                                             BatchedCalls(items)()
                                                             (nested Parallel calls
                                                              use this backend too,
                                                              the thread secedes
                                                              while it waits)
      Future done (dask's callback thread) <-- results, or _TaskFailure(exc, tb)
        callback(future) -> retrieve_result_callback(future)
                            -> results, or the task's exception re-raised with
                               its original type and the worker's traceback text

Nothing polls: ``Parallel`` learns about each finished batch through the
future's done-callback. The client is the caller's (``distributed.get_client()``,
or ``client=``); the backend only opens one itself for ``scheduler_host=``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import distributed
from dask.sizeof import sizeof
from dask.utils import funcname
from distributed import Client, get_client, rejoin, secede
from distributed.utils import thread_state

from .._batch import BatchedCalls
from .._errors import memstr_to_bytes
from ._base import AutoBatchingMixin, ParallelBackendBase
from ._dask_tasks import _run_batch, _run_callable, _Shared, _TaskFailure

__all__ = ["DaskDistributedBackend"]

# Types whose instances are never worth a scatter round trip.
_SCALARS = (type(None), bool, int, float, complex, type)
# Array and frame libraries, recognised by the module of the type (so neither
# numpy nor pandas is ever imported here); their objects are scattered from
# joblib's 1 kB threshold on, as they are typically shared by many tasks.
_ARRAY_MODULES = frozenset(
    {"numpy", "pandas", "scipy", "xarray", "pyarrow", "polars", "torch", "cupy"}
)
_ARRAY_MIN_BYTES = 1_000
_DEFAULT_SCATTER_THRESHOLD = 100_000

# Client.submit options a user may set through the backend; everything else
# given to Client.submit would silently become a keyword argument of the task.
_SUBMIT_OPTIONS = frozenset(
    name
    for name, p in inspect.signature(Client.submit).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("key", "pure")
)

_NO_CLIENT_MESSAGE = (
    "backend='dask' runs on a dask.distributed Client, and none is active. "
    "Create a Client first, for example:\n\n"
    "    from dask.distributed import Client\n"
    "    client = Client()                          # a local cluster\n"
    "    client = Client('scheduler-address:8786')  # an existing cluster\n\n"
    "or pass one: parallel_config(backend='dask', client=client)."
)


def _worth_scattering(obj: Any, threshold: int) -> bool:
    """Whether ``obj`` should travel once through ``client.scatter``."""
    cls = type(obj)
    if cls in _SCALARS or isinstance(obj, distributed.Future):
        return False
    if cls in (str, bytes, bytearray):
        return len(obj) >= threshold
    root = (getattr(cls, "__module__", None) or "").partition(".")[0]
    limit = min(_ARRAY_MIN_BYTES, threshold) if root in _ARRAY_MODULES else threshold
    try:
        return sizeof(obj) >= limit
    except Exception:  # an exotic object dask cannot measure: send it inline
        return False


# Per thread: whether a retrieval context of this module already seceded the
# thread (a second secede of the same thread would corrupt the worker's pool).
_seceded = threading.local()


def _in_dask_task() -> bool:
    """True in a worker thread running a task that still holds its slot."""
    return hasattr(thread_state, "execution_state") and not getattr(
        _seceded, "active", False
    )


def _parse_threshold(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        return memstr_to_bytes(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"scatter_threshold must be None, a number of bytes >= 0 or a size "
            f"string like '100K', got {value!r}"
        )
    return value


def _rebuild(
    nesting_level: int | None,
    wait_for_workers_timeout: float,
    scatter_threshold: int | None,
    submit_kwargs: dict,
) -> DaskDistributedBackend:
    """Unpickle a backend sent to a worker: it finds the worker's client lazily."""
    backend = DaskDistributedBackend.__new__(DaskDistributedBackend)
    backend._setup(
        client=None,
        scheduler_host=None,
        loop=None,
        wait_for_workers_timeout=wait_for_workers_timeout,
        scatter_threshold=scatter_threshold,
        submit_kwargs=submit_kwargs,
        nesting_level=nesting_level,
    )
    return backend


class DaskDistributedBackend(AutoBatchingMixin, ParallelBackendBase):
    """Run ``Parallel`` batches as tasks on a dask.distributed cluster.

    Selected with ``Parallel(backend="dask")`` or
    ``parallel_config(backend="dask", ...)``; the keyword arguments below are
    the ``backend_params`` of ``parallel_config``. The number of workers is
    the number of worker threads of the cluster, whatever ``n_jobs`` says
    (as in joblib), so a cluster that grows is used as it grows.

    Parameters
    ----------
    scheduler_host : str, optional
        Address of a scheduler to connect to with a client of the backend's
        own (closed by :meth:`terminate`). By default the active client is
        used (``distributed.get_client()``).
    scatter : list or tuple, optional
        Objects sent to every worker once, now, and used in place of the
        identical objects (same ``id``) found in task arguments.
    client : distributed.Client, optional
        The client to use, instead of the active one.
    loop : optional
        Event loop given to the client created for ``scheduler_host``.
    wait_for_workers_timeout : float, default=10
        Seconds to wait for a first worker when the cluster has none; 0
        disables the wait.
    scatter_threshold : int, str or None, default=100_000
        Arguments whose size (as measured by ``dask.sizeof``) reaches this
        many bytes are scattered once per call and shared by all the tasks of
        the call that receive the same object; arrays and data frames are
        scattered from 1 kB on. ``None`` never scatters automatically.
    nesting_level : int, optional
        Depth in nested ``Parallel`` calls (set by para).
    inner_max_num_threads : None
        Not supported by this backend.
    **submit_kwargs
        Options of ``Client.submit`` applied to every batch (``workers``,
        ``resources``, ``retries``, ``priority``, ``allow_other_workers``,
        ...).

    Raises
    ------
    ValueError
        No client is active and neither ``client`` nor ``scheduler_host`` is
        given.
    TypeError
        ``scatter`` is not a list or tuple, or an unknown ``submit_kwargs``.

    Examples
    --------
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> from para_core import Parallel, delayed, parallel_config
    >>> client = Client(processes=False)  # doctest: +SKIP
    >>> with parallel_config(backend="dask"):  # doctest: +SKIP
    ...     Parallel()(delayed(pow)(i, 2) for i in range(4))
    [0, 1, 4, 9]
    """

    supports_retrieve_callback = True
    default_n_jobs = -1
    # A dask task costs milliseconds of scheduling: aim at longer batches
    # than the local backends do.
    MIN_IDEAL_BATCH_DURATION = 0.2
    MAX_IDEAL_BATCH_DURATION = 1.0

    def __init__(
        self,
        scheduler_host: str | None = None,
        scatter: list | tuple | None = None,
        client: Client | None = None,
        loop: Any = None,
        wait_for_workers_timeout: float = 10,
        scatter_threshold: int | str | None = _DEFAULT_SCATTER_THRESHOLD,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **submit_kwargs: Any,
    ) -> None:
        if scatter is not None and not isinstance(scatter, (list, tuple)):
            raise TypeError(
                f"scatter must be a list or a tuple of objects, got "
                f"{type(scatter).__name__}: {scatter!r}"
            )
        self._setup(
            client=client,
            scheduler_host=scheduler_host,
            loop=loop,
            wait_for_workers_timeout=wait_for_workers_timeout,
            scatter_threshold=_parse_threshold(scatter_threshold),
            submit_kwargs=submit_kwargs,
            nesting_level=nesting_level,
            inner_max_num_threads=inner_max_num_threads,
        )
        # Fail now, where the user asked for dask, rather than at first use.
        client = self.client
        if scatter:
            self._scatter_objects = list(scatter)
            futures = client.scatter(
                [_Shared(obj) for obj in self._scatter_objects],
                broadcast=True,
                hash=False,
            )
            self._data_futures = {
                id(obj): fut
                for obj, fut in zip(self._scatter_objects, futures, strict=True)
            }

    def _setup(
        self,
        *,
        client: Client | None,
        scheduler_host: str | None,
        loop: Any,
        wait_for_workers_timeout: float,
        scatter_threshold: int | None,
        submit_kwargs: dict,
        nesting_level: int | None,
        inner_max_num_threads: int | None = None,
    ) -> None:
        unknown = set(submit_kwargs) - _SUBMIT_OPTIONS
        if unknown:
            raise TypeError(
                f"Unexpected keyword argument(s) for the dask backend: "
                f"{sorted(unknown)}; accepted: scheduler_host, scatter, client, "
                f"loop, wait_for_workers_timeout, scatter_threshold and the "
                f"options of Client.submit {sorted(_SUBMIT_OPTIONS)}"
            )
        super().__init__(
            nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads
        )
        self._client = client
        self._owns_client = False
        self._scheduler_host = scheduler_host
        self._loop = loop
        self.wait_for_workers_timeout = wait_for_workers_timeout
        self.scatter_threshold = scatter_threshold
        self.submit_kwargs = dict(submit_kwargs)
        self._scatter_objects: list = []
        self._data_futures: dict[int, distributed.Future] = {}
        # Per-call scatter memo: id(obj) -> (weakref or obj, Future). Objects
        # that cannot be weakly referenced are kept alive until the call ends,
        # so their id cannot be reused by another object meanwhile.
        self._call_futures: dict[int, tuple[Any, distributed.Future]] = {}
        self._lock = threading.Lock()
        self._in_flight: set[distributed.Future] = set()

    # ------------------------------------------------------------------ client
    @property
    def client(self) -> Client:
        """The ``distributed.Client`` the batches are submitted through."""
        client = self._client
        if client is None:
            if self._scheduler_host:
                client = Client(
                    self._scheduler_host, loop=self._loop, set_as_default=False
                )
                self._owns_client = True
            else:
                try:
                    client = get_client()
                except ValueError as exc:
                    raise ValueError(_NO_CLIENT_MESSAGE) from exc
            self._client = client
        return client

    def __reduce__(self):
        # Sent to workers inside batches (for nested calls): never the client.
        return (
            _rebuild,
            (
                self.nesting_level,
                self.wait_for_workers_timeout,
                self.scatter_threshold,
                self.submit_kwargs,
            ),
        )

    # ---------------------------------------------------------------- protocol
    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Number of worker threads of the cluster (``n_jobs`` only checked).

        Waits up to ``wait_for_workers_timeout`` seconds for a first worker.

        Raises
        ------
        ValueError
            ``n_jobs == 0``, or no client is active.
        TimeoutError
            The cluster has no worker after ``wait_for_workers_timeout``.
        """
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        client = self.client
        total = sum(client.nthreads().values())
        if total or not self.wait_for_workers_timeout:
            return max(total, 1)
        try:
            client.wait_for_workers(1, timeout=self.wait_for_workers_timeout)
        except (TimeoutError, distributed.TimeoutError) as exc:
            raise TimeoutError(
                f"The dask cluster has no worker after "
                f"{self.wait_for_workers_timeout} seconds. Check that workers "
                f"are started and reach the scheduler, or wait longer with "
                f"parallel_config(backend='dask', wait_for_workers_timeout="
                f"{max(10, 2 * self.wait_for_workers_timeout)})."
            ) from exc
        return max(sum(client.nthreads().values()), 1)

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        """Attach to ``parallel`` and return the cluster's thread count.

        Raises
        ------
        TypeError
            Unknown keyword arguments (backend options belong to
            ``parallel_config(backend="dask", ...)``).
        """
        if backend_kwargs:
            raise TypeError(
                f"Unexpected keyword argument(s) for Parallel with the dask "
                f"backend: {sorted(backend_kwargs)}. Options of the dask backend "
                f"are given as parallel_config(backend='dask', "
                f"{next(iter(backend_kwargs))}=...)."
            )
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def start_call(self) -> None:
        with self._lock:
            self._call_futures = {}

    def stop_call(self) -> None:
        # Dropping the Futures lets the scheduler free the scattered data.
        with self._lock:
            self._call_futures = {}

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        """Tasks that call ``Parallel`` use the same cluster, with all threads."""
        level = (self.nesting_level or 0) + 1
        return (
            _rebuild(
                level,
                self.wait_for_workers_timeout,
                self.scatter_threshold,
                self.submit_kwargs,
            ),
            -1,
        )

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        """Send one batch to the cluster; ``callback(future)`` runs once it ends.

        The large arguments of the batch's tasks are replaced by Futures of
        data scattered once per call, so a big object shared by many tasks
        is transferred once rather than once per task.
        """
        client = self.client
        if isinstance(func, BatchedCalls):
            _, (items, backend_and_jobs, first_index) = func.__reduce__()
            items = [
                (
                    f,
                    [self._maybe_scatter(client, a) for a in args],
                    {k: self._maybe_scatter(client, v) for k, v in kwargs.items()},
                )
                for f, args, kwargs in items
            ]
            name = funcname(items[0][0]) if items else "empty"
            key = f"para-{name}-batch-{uuid4().hex}"
            future = client.submit(
                _run_batch,
                items,
                backend_and_jobs,
                first_index,
                key=key,
                **self.submit_kwargs,
            )
        else:
            key = f"para-{funcname(func)}-{uuid4().hex}"
            future = client.submit(_run_callable, func, key=key, **self.submit_kwargs)
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(functools.partial(self._batch_done, callback))
        return future

    def _batch_done(self, callback: Any, future: distributed.Future) -> None:
        with self._lock:
            self._in_flight.discard(future)
        if callback is not None:
            callback(future)

    def retrieve_result_callback(self, out: distributed.Future) -> Any:
        """Return the batch's results, or raise the task's exception.

        The exception keeps its original type; its ``__cause__`` holds the
        traceback text from the worker.
        """
        result = out.result()
        if type(result) is _TaskFailure:
            result.reraise()
        return result

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Cancel the batches not finished yet (running ones finish unseen)."""
        with self._lock:
            futures = list(self._in_flight)
            self._in_flight.clear()
        if futures and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.cancel(futures)

    def terminate(self) -> None:
        """Cancel leftovers, release scattered data; close an own client."""
        self.abort_everything(ensure_ready=False)
        with self._lock:
            self._call_futures = {}
        self.reset_batch_stats()
        if self._owns_client and self._client is not None:
            self._data_futures.clear()
            self._scatter_objects = []
            client, self._client, self._owns_client = self._client, None, False
            client.close()

    @contextlib.contextmanager
    def retrieval_context(self) -> Iterator[None]:
        """Give the worker's task slot away while a nested call waits.

        A task that runs ``Parallel`` on the dask backend would otherwise hold
        a worker thread while waiting for tasks that need one, which can
        deadlock a small cluster.
        """
        if not _in_dask_task():
            yield
            return
        secede()
        _seceded.active = True
        try:
            yield
        finally:
            _seceded.active = False
            rejoin()

    # ---------------------------------------------------------------- scatter
    def _maybe_scatter(self, client: Client, obj: Any) -> Any:
        """``obj`` itself, or the Future of its one scattered copy."""
        pre = self._data_futures.get(id(obj))
        if pre is not None:
            return pre
        threshold = self.scatter_threshold
        if threshold is None or not _worth_scattering(obj, threshold):
            return obj
        key = id(obj)
        with self._lock:
            memo = self._call_futures
            entry = memo.get(key)
            if entry is not None:
                held, future = entry
                if (held() if isinstance(held, weakref.ref) else held) is obj:
                    return future
            # The lock is held across the round trip on purpose: two
            # dispatching threads must not scatter the same object twice.
            [future] = client.scatter([_Shared(obj)], hash=False)
            try:
                held = weakref.ref(obj, functools.partial(_forget, memo, key))
            except TypeError:
                held = obj
            memo[key] = (held, future)
        return future


def _forget(memo: dict, key: int, ref: weakref.ref) -> None:
    """Drop a memo entry once its object is gone (its id may be reused)."""
    entry = memo.get(key)
    if entry is not None and entry[0] is ref:
        memo.pop(key, None)
