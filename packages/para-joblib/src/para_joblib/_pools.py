"""joblib's pool classes: ``MemmappingPool(PicklingPool)``, rebasable.

joblib builds the pool of its multiprocessing backend as
``MemmappingPool(n_jobs, **args)``, and clients rely on the class layout:
ray replaces ``PicklingPool.__bases__`` with its own ``Pool`` (actors instead
of processes) and passes ``ray_remote_args`` through the backend's
``configure``. So here too::

    MemmappingPool -> PicklingPool -> para_memmap.MemmappingPool -> Pool
                                      (or whatever a client put there)

With the original base, the pool is para-memmap's: large arrays reach the
workers through shared memory, ``forward_reducers`` / ``backward_reducers``
customise the pickling of tasks and results. With a client's base, that base
gets what joblib gives it: ``processes`` and the remaining keyword arguments
(the memmapping and reducer arguments are joblib's own, and a foreign pool
has its own transport).
"""

from __future__ import annotations

from typing import Any

from para_memmap import MemmappingPool as _SharedMemoryPool

__all__ = ["MemmappingPool", "PicklingPool"]


def _own_base() -> bool:
    """False once a client replaced ``PicklingPool.__bases__``."""
    return issubclass(PicklingPool, _SharedMemoryPool)


class PicklingPool(_SharedMemoryPool):
    """A process pool whose task and result pickling can be customised.

    Parameters
    ----------
    processes : int, optional
        Number of worker processes (default: ``os.cpu_count()``).
    forward_reducers : dict, optional
        ``{type: reduce_function}`` used when pickling tasks for the workers.
    backward_reducers : dict, optional
        ``{type: reduce_function}`` used when pickling results in the workers.
    **kwargs
        Passed to the base class (``multiprocessing.pool.Pool``'s
        ``initializer``, ``initargs``, ``maxtasksperchild``, ``context``).

    Notes
    -----
    A client may replace ``PicklingPool.__bases__`` (ray does, with its own
    ``Pool``); the base then receives ``processes`` and ``**kwargs`` only, and
    the pools of ``joblib``'s multiprocessing backend are built on it.

    Examples
    --------
    >>> from para_joblib.pool import PicklingPool
    >>> with PicklingPool(2) as pool:
    ...     pool.map(abs, [-1, -2])
    [1, 2]
    """

    def __init__(
        self,
        processes: int | None = None,
        forward_reducers: dict | None = None,
        backward_reducers: dict | None = None,
        **kwargs: Any,
    ) -> None:
        if _own_base():
            # Nothing is shared through memory unless MemmappingPool asks.
            kwargs.setdefault("max_nbytes", None)
            super().__init__(
                processes,
                forward_reducers=forward_reducers,
                backward_reducers=backward_reducers,
                **kwargs,
            )
        else:
            super().__init__(processes=processes, **kwargs)


class MemmappingPool(PicklingPool):
    """A process pool that shares large numpy arrays with its workers.

    joblib's ``MemmappingPool``: arguments at least ``max_nbytes`` large
    reach the workers as memory maps of files in a temporary folder (written
    once per array), ``np.memmap`` arguments travel by reference, large
    results come back the same way. ``terminate()`` (or the ``with`` block)
    removes the folder.

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
        Mode in which workers open shared arrays.
    forward_reducers, backward_reducers : dict, optional
        See :class:`PicklingPool`.
    verbose : int, default=0
        Kept for joblib compatibility.
    prewarm : bool or str, default=False
        Kept for joblib compatibility (shared files are in memory already).
    **kwargs
        Passed to :class:`PicklingPool`.

    Examples
    --------
    >>> import numpy as np
    >>> from para_joblib.pool import MemmappingPool
    >>> with MemmappingPool(2, max_nbytes=1000) as pool:
    ...     [float(s) for s in pool.map(np.sum, [np.ones(10_000)] * 2)]
    [10000.0, 10000.0]
    """

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
        if _own_base():
            kwargs.update(
                temp_folder=temp_folder,
                max_nbytes=max_nbytes,
                mmap_mode=mmap_mode,
                verbose=verbose,
                prewarm=prewarm,
            )
        super().__init__(processes, forward_reducers, backward_reducers, **kwargs)
