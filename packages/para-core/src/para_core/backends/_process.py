"""What the process backends (loky, multiprocessing) share: batches pickled here.

Each batch is pickled in the caller (``_packets.dumps_batch``), with the
transport session's reducers in front when one is open (para-memmap's), so
large arrays can travel as references and a pickling error names its task
before anything leaves the caller. Workers run ``_packets.run_pickled_batch``
and send back pickled results, which the dispatch engine unpickles when it
consumes them.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from ._base import AutoBatchingMixin, _positive_n_jobs
from ._packets import dumps_batch, load_results, pack_reducer, session_reducer

__all__: list[str] = []


class _ProcessBackendMixin:
    """Shared by the process backends: caller-side pickling with the hook."""

    supports_retrieve_callback = True
    # A dispatch usually costs well under a millisecond: 50 ms batches
    # amortise it and keep the end of a call balanced (joblib aims at 200 ms).
    # Tasks that drag a large shared context along (scikit-learn's searches)
    # cost milliseconds each to pickle, once per batch thanks to the pickle
    # memo: then the target grows toward joblib's, see ``_note_pickling``.
    MIN_IDEAL_BATCH_DURATION = 0.05
    # Small batches are timed by their round trip (about a millisecond under
    # load), so a fast task's first batches look 50x too short: grow up to
    # 64x per step, or the ramp-up costs a quarter of a 100k-task call.
    MAX_GROWTH = 64
    supports_inner_max_num_threads = True
    name = "loky"

    def _process_n_jobs(
        self, n_jobs: Any, label: str, in_worker: bool, in_worker_warning: str
    ) -> int:
        """Workers for ``n_jobs``: one inside a worker or below a thread."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if in_worker:
            if n_jobs != 1:
                warnings.warn(in_worker_warning, stacklevel=4)
            return 1
        if not (self.in_main_thread() or self.nesting_level == 0):
            if n_jobs != 1:
                warnings.warn(
                    f"{label}-backed parallel loops cannot be nested below "
                    "threads, setting n_jobs=1",
                    stacklevel=4,
                )
            return 1
        return _positive_n_jobs(n_jobs)

    # Set once a batch of the call needed cloudpickle: the next ones go
    # straight to it instead of trying the C pickler first.
    _cloud = False

    def start_call(self) -> None:
        self._cloud = False
        self._pickling_s = 0.0
        # Back to the class's target: the last call's tasks may have been heavier.
        self.__dict__.pop("MIN_IDEAL_BATCH_DURATION", None)

    # Smoothed seconds the caller spent pickling one batch in this call.
    _pickling_s = 0.0

    def _note_pickling(self, seconds: float) -> None:
        # The caller pickles every batch while ``n_jobs`` workers run theirs,
        # on the same cores: its pickling is time the workers lose. Batches
        # that run ~20 * n_jobs times as long as they take to pickle keep that
        # loss to a few per cent (scikit-learn's 1000-task searches: 60
        # batches instead of 124).
        # Capped where joblib's own batches end up: it aims at twice its
        # 200 ms ideal, to damp oscillations.
        old = self._pickling_s
        self._pickling_s = seconds if old == 0.0 else 0.8 * old + 0.2 * seconds
        target = 20 * max(getattr(self, "_n_jobs", 1), 1) * self._pickling_s
        cls_target = type(self).MIN_IDEAL_BATCH_DURATION
        cap = 2 * AutoBatchingMixin.MIN_IDEAL_BATCH_DURATION
        self.MIN_IDEAL_BATCH_DURATION = min(max(target, cls_target), cap)

    # (session, its task reducer, its result reducer packed), made once for
    # all the session's batches
    _reducers: tuple[Any, Any, Any] = (None, None, None)

    def _payload(self, func: Any) -> tuple[Any, Any]:
        session = getattr(getattr(self, "parallel", None), "_transport_session", None)
        known, task_reducer, reducer = self._reducers
        if known is not session or session is None:
            task_reducer = session_reducer(session, "reduce_task_object")
            reducer = pack_reducer(session_reducer(session, "result_reducer"))
            self._reducers = (session, task_reducer, reducer)
        reduced_before = getattr(task_reducer, "seconds", 0.0)
        start = time.perf_counter()
        payload, self._cloud = dumps_batch(
            func, session, self._cloud, reduce_first=task_reducer
        )
        elapsed = time.perf_counter() - start
        # Writing a large array for the workers is transport, paid once per
        # array (later calls reuse the copy), not the per-batch cost to match.
        transport = getattr(task_reducer, "seconds", 0.0) - reduced_before
        self._note_pickling(max(elapsed - transport, 0.0))
        return payload, reducer

    def retrieve_result_callback(self, future: Any) -> Any:
        return load_results(future.result())

    @staticmethod
    def _retrieve_packet(future: Any) -> Any:
        """The batch's pickled results; the engine unpickles them when it
        needs them (``load_results``) and bounds memory by their size."""
        return future.result()
