"""The per-batch completion hook: joblib's ``BatchCompletionCallBack``.

A program (or a library such as the "tqdm_joblib" recipe) may install a
subclass of :class:`BatchCompletionCallBack`; the engine then makes one
instance per dispatched batch and hands it to the backend as the batch's
completion callback::

    caller: _Call._submit
      tracker = cls(time.time(), len(batch), parallel)
      backend.submit(batch, callback=<calls tracker(out)>)
      tracker.register_job(future)
    backend's thread, once the batch ended (success or failure):
      tracker(out)  ->  subclass's __call__  ->  super().__call__(out)
                        -> the engine takes the batch in

While the base class is installed (the default) the engine makes no such
object and adds no call per batch.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "BatchCompletionCallBack",
    "get_batch_completion_callback",
    "set_batch_completion_callback",
]


class BatchCompletionCallBack:
    """Called once for each batch of tasks that ends; subclass to track them.

    The engine of :class:`~para_core.Parallel` makes one instance per
    dispatched batch, when a subclass was installed with
    :func:`set_batch_completion_callback` (or by assigning
    ``joblib.parallel.BatchCompletionCallBack`` through ``para_joblib``), and
    calls it in the backend's thread once the batch ended, whether its tasks
    returned or raised. A subclass overriding ``__call__`` must call
    ``super().__call__(*args, **kwargs)``, which hands the batch to the
    engine; the engine hands it over itself when an override returns without
    doing so, and fails the call with the exception an override raised.

    With the sequential backend (``n_jobs=1``) tasks run one by one in the
    caller, and the instance of each task is called after it returned, with
    a batch size of 1 and the one-element list of its result (joblib makes
    no such call there).

    Parameters
    ----------
    dispatch_timestamp : float
        ``time.time()`` when the batch was dispatched.
    batch_size : int
        Number of tasks in the batch.
    parallel : Parallel
        The calling :class:`~para_core.Parallel`. Its ``n_completed_tasks``,
        ``n_dispatched_tasks``, ``n_dispatched_batches`` and ``n_tasks``
        counters are kept up to date by the caller's thread while a subclass
        is installed (they may lag behind the callback by a batch).

    Attributes
    ----------
    dispatch_timestamp, batch_size, parallel
        The constructor's arguments.
    job : object or None
        What the backend's ``submit`` returned for this batch (a future for
        the built-in backends), set by :meth:`register_job`; None before.

    Examples
    --------
    >>> import para_core
    >>> from para_core import Parallel, delayed
    >>> done = []
    >>> class Count(para_core.BatchCompletionCallBack):
    ...     def __call__(self, *args, **kwargs):
    ...         done.append(self.batch_size)
    ...         return super().__call__(*args, **kwargs)
    >>> previous = para_core.set_batch_completion_callback(Count)
    >>> try:
    ...     Parallel(n_jobs=2, backend="threading")(
    ...         delayed(abs)(-i) for i in range(10)
    ...     )
    ... finally:
    ...     _ = para_core.set_batch_completion_callback(previous)
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    >>> sum(done)
    10
    """

    # The engine's hand-over of this batch; None for an instance made by hand.
    _forward: Any = None

    def __init__(self, dispatch_timestamp: float, batch_size: int, parallel: Any):
        self.dispatch_timestamp = dispatch_timestamp
        self.batch_size = batch_size
        self.parallel = parallel
        self.job: Any = None

    def register_job(self, job: Any) -> None:
        """Keep what the backend's ``submit`` returned for this batch.

        Parameters
        ----------
        job : object
            The backend's handle of the batch (a future for the built-in
            backends).
        """
        self.job = job

    def __call__(self, out: Any) -> None:
        """Hand the ended batch to the engine; called by the backend.

        Parameters
        ----------
        out : object
            What the backend passes to its completion callback: the batch's
            future for the built-in process, thread and dask backends, a
            list holding the task's result for the sequential backend.
        """
        forward, self._forward = self._forward, None
        if forward is not None:  # at most once per batch
            forward(out)


_lock = threading.Lock()
_current: type[BatchCompletionCallBack] = BatchCompletionCallBack


def set_batch_completion_callback(
    cls: type[BatchCompletionCallBack] | None,
) -> type[BatchCompletionCallBack]:
    """Install ``cls`` as the per-batch completion callback of every call.

    Takes effect for the calls that start afterwards, in every thread.
    ``para_joblib`` calls it when a program assigns
    ``joblib.parallel.BatchCompletionCallBack``.

    Parameters
    ----------
    cls : subclass of BatchCompletionCallBack, or None
        The class the engine instantiates per batch; None or
        :class:`BatchCompletionCallBack` itself restores the default (no
        object and no call per batch).

    Returns
    -------
    type
        The class installed before, to restore it later.

    Raises
    ------
    TypeError
        If ``cls`` is not a subclass of :class:`BatchCompletionCallBack`.
    """
    global _current
    if cls is None:
        cls = BatchCompletionCallBack
    if not (isinstance(cls, type) and issubclass(cls, BatchCompletionCallBack)):
        raise TypeError(
            f"the batch completion callback must be a subclass of "
            f"para_core.BatchCompletionCallBack (joblib.parallel."
            f"BatchCompletionCallBack with para_joblib), got {cls!r}; subclass "
            "it and call super().__call__(*args, **kwargs) from __call__"
        )
    with _lock:
        previous, _current = _current, cls
    return previous


def get_batch_completion_callback() -> type[BatchCompletionCallBack]:
    """Return the per-batch completion callback class currently installed.

    Returns
    -------
    type
        :class:`BatchCompletionCallBack` itself unless a subclass was
        installed with :func:`set_batch_completion_callback`.
    """
    return _current
