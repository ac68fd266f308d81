"""MemmappingPool: ``multiprocessing.Pool`` with para-memmap's array transport.

The pool's two queues pickle with a pickler that asks the transport first::

    caller --task--> [ForkingPickler + session.reduce_task_object] --> worker
    caller <-result- [ForkingPickler + ResultReducer]              <-- worker
"""

from __future__ import annotations

import copyreg
import io
import pickle
from collections.abc import Callable
from multiprocessing.pool import CLOSE, Pool
from multiprocessing.queues import SimpleQueue
from multiprocessing.reduction import ForkingPickler
from typing import Any

from para_core import exit_with_caller

from ._session import MemmapSession

__all__ = ["MemmappingPool"]


class _TransportPickler(ForkingPickler):
    """multiprocessing's pickler, with a transport reducer and extra reducers."""

    def __init__(
        self,
        file: Any,
        reduce_first: Callable[[Any], Any] | None,
        reducers: dict[type, Callable[[Any], Any]],
    ) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self._reduce_first = reduce_first
        if reducers:
            table = copyreg.dispatch_table.copy()
            table.update(ForkingPickler._extra_reducers)
            table.update(reducers)
            self.dispatch_table = table

    def reducer_override(self, obj: Any) -> Any:
        if self._reduce_first is None:
            return NotImplemented
        return self._reduce_first(obj)


def _dumps(obj: Any, reduce_first: Any, reducers: dict) -> bytes:
    buf = io.BytesIO()
    _TransportPickler(buf, reduce_first, reducers).dump(obj)
    return buf.getbuffer().tobytes()


class _TransportQueue(SimpleQueue):
    """A SimpleQueue whose ``put`` pickles through :class:`_TransportPickler`.

    ``reduce_first`` never leaves the process that created the queue when it
    is the caller's session (``ship_reducer=False``): workers only read from
    that queue.
    """

    def __init__(
        self,
        *,
        ctx: Any,
        reduce_first: Any,
        reducers: dict | None,
        ship_reducer: bool,
    ) -> None:
        super().__init__(ctx=ctx)
        self._reduce_first = reduce_first
        self._reducers = dict(reducers or {})
        self._ship_reducer = ship_reducer

    def __getstate__(self) -> tuple:
        state = super().__getstate__()
        if self._ship_reducer:
            return (state, self._reduce_first, self._reducers, True)
        return (state, None, {}, False)

    def __setstate__(self, state: tuple) -> None:
        base, self._reduce_first, self._reducers, self._ship_reducer = state
        super().__setstate__(base)

    def put(self, obj: Any) -> None:
        data = _dumps(obj, self._reduce_first, self._reducers)
        if self._wlock is None:
            self._writer.send_bytes(data)
        else:
            with self._wlock:
                self._writer.send_bytes(data)

    def send_unlocked(self, obj: Any) -> None:
        # The pool's task handler is the only writer of the task queue.
        self._writer.send_bytes(_dumps(obj, self._reduce_first, self._reducers))

    def recv_unlocked(self) -> Any:
        # The pool's result handler is the only reader of the result queue.
        return pickle.loads(self._reader.recv_bytes())


class MemmappingPool(Pool):
    """A ``multiprocessing.Pool`` that shares large numpy arrays with workers.

    Arguments at least ``max_nbytes`` large reach the workers as memory maps
    of files in shared memory (written once per array, and not again while
    their content is unchanged); ``np.memmap`` arguments travel by reference;
    large results come back through shared memory. Call :meth:`terminate`
    (or use the pool as a context manager, or ``close()`` then ``join()``) to
    remove the temporary folder.

    Parameters
    ----------
    processes : int, optional
        Number of worker processes (default: ``os.cpu_count()``).
    temp_folder : str, optional
        Folder for the shared files; by default ``JOBLIB_TEMP_FOLDER``, else
        ``/dev/shm`` when it has room, else the system temp folder.
    max_nbytes : int, float or None, default=1e6
        Arrays at least this many bytes large are shared; None disables it.
    mmap_mode : {"r", "r+", "w+", "c"}, default="r"
        Mode in which workers open shared arrays (as ``np.memmap``).
    forward_reducers : dict, optional
        ``{type: reduce_function}`` used when pickling tasks for the workers.
    backward_reducers : dict, optional
        ``{type: reduce_function}`` used when pickling results in the workers
        (must be picklable: they are sent to the workers).
    verbose : int, default=0
        Kept for joblib compatibility; para-memmap logs nothing.
    prewarm : bool, default=False
        Kept for joblib compatibility: shared files are written through the
        page cache, so they are already in memory.
    **kwargs
        Passed to ``multiprocessing.pool.Pool`` (``initializer``,
        ``initargs``, ``maxtasksperchild``, ``context``). The workers end
        with the process that made the pool, even one killed by SIGKILL in
        the middle of a task (``para_core.exit_with_caller``).

    Raises
    ------
    ValueError
        If ``mmap_mode`` or ``max_nbytes`` is not valid.

    Examples
    --------
    >>> import numpy as np
    >>> from para_memmap import MemmappingPool
    >>> with MemmappingPool(2, max_nbytes=1000) as pool:
    ...     sums = pool.map(np.sum, [np.ones(10_000)] * 3)
    >>> [float(s) for s in sums]
    [10000.0, 10000.0, 10000.0]
    """

    # Pool.__del__ reads _state, even when __init__ refused its arguments.
    _state = CLOSE

    def __init__(
        self,
        processes: int | None = None,
        temp_folder: str | None = None,
        max_nbytes: float | None = 1e6,
        mmap_mode: str = "r",
        forward_reducers: dict | None = None,
        backward_reducers: dict | None = None,
        verbose: int = 0,
        prewarm: bool | str = False,
        **kwargs: Any,
    ) -> None:
        self._session = MemmapSession(max_nbytes, mmap_mode, temp_folder)
        self._forward_reducers = dict(forward_reducers or {})
        self._backward_reducers = dict(backward_reducers or {})
        self.verbose = verbose
        # The workers end with this process, even when it is killed.
        initializer, initargs = exit_with_caller(
            kwargs.pop("initializer", None), kwargs.pop("initargs", ())
        )
        try:
            super().__init__(processes, initializer, initargs, **kwargs)
        except BaseException:
            self._session.close()
            raise

    def _setup_queues(self) -> None:
        self._inqueue = _TransportQueue(
            ctx=self._ctx,
            reduce_first=self._session.reduce_task_object,
            reducers=self._forward_reducers,
            ship_reducer=False,
        )
        self._outqueue = _TransportQueue(
            ctx=self._ctx,
            reduce_first=self._session.result_reducer,
            reducers=self._backward_reducers,
            ship_reducer=True,
        )
        self._quick_put = self._inqueue.send_unlocked
        self._quick_get = self._outqueue.recv_unlocked

    # Each public call starts a new generation, so that an array changed in
    # place between two calls is copied again (never trusted by identity).
    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        self._session.begin_call()
        return super().apply_async(*args, **kwargs)

    def _map_async(self, *args: Any, **kwargs: Any) -> Any:
        self._session.begin_call()
        return super()._map_async(*args, **kwargs)

    def imap(self, *args: Any, **kwargs: Any) -> Any:
        self._session.begin_call()
        return super().imap(*args, **kwargs)

    def imap_unordered(self, *args: Any, **kwargs: Any) -> Any:
        self._session.begin_call()
        return super().imap_unordered(*args, **kwargs)

    def terminate(self) -> None:
        """Stop the workers now and remove the shared files."""
        try:
            super().terminate()
        finally:
            self._session.close()

    def join(self) -> None:
        """Wait for the workers to exit, then remove the shared files."""
        super().join()
        self._session.close()

    @property
    def _temp_folder(self) -> str:
        # joblib's tests and a few users peek at this attribute.
        return self._session.folder.path
