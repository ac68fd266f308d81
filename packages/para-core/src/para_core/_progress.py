"""Progress reporting: joblib's verbose lines and an optional tqdm bar.

The engine calls ``start`` once, ``batch_done`` after every finished batch
and ``finish`` at the end; both reporters share these three calls.
"""

from __future__ import annotations

import sys
import time
from math import floor, log10, sqrt
from typing import Any


def short_format_time(t: float) -> str:
    """Format seconds as joblib does (``"  0.5s"`` or ``" 1.2min"``)."""
    if t > 60:
        return f"{t / 60.0:4.1f}min"
    return f" {t:5.1f}s"


def _verbosity_filter(index: int, verbose: int) -> bool:
    """True to skip the message for ``index`` (lag growing like a square)."""
    if not verbose:
        return True
    if verbose > 10:
        return False
    if index == 0:
        return False
    scale = 0.5 * (11 - verbose) ** 2
    return int(sqrt((index + 1) / scale)) == int(sqrt(index / scale))


class VerboseReporter:
    """Print ``[Parallel(n_jobs=N)]: Done ...`` lines at joblib's pace."""

    def __init__(self, parallel: Any, n_tasks: int | None, pre_dispatch: int) -> None:
        self.parallel = parallel
        self.verbose = parallel.verbose
        self.n_tasks = n_tasks
        self.pre_dispatch = pre_dispatch
        self.start_time = time.time()

    def _print(self, msg: str) -> None:
        self.parallel._print(msg)

    def _width(self) -> int:
        if self.n_tasks is not None and self.n_tasks > 0:
            return floor(log10(self.n_tasks)) + 1
        return 3

    def batch_done(
        self, completed: int, dispatched: int, batches: int, iterating: bool
    ) -> None:
        if not self.verbose:
            return
        if completed == dispatched and not iterating:
            return  # the final line is printed by finish()
        elapsed = time.time() - self.start_time
        width = self._width()
        if iterating:
            if _verbosity_filter(batches, self.verbose):
                return
            fmt = f"| elapsed: {short_format_time(elapsed)}"
            if self.n_tasks is not None:
                self._print(
                    f"Done {completed:{width}d} out of {self.n_tasks:{width}d} {fmt}"
                )
            else:
                pad = " " * (len("out of ") + width - len("tasks"))
                self._print(f"Done {completed:{width}d} tasks {pad}{fmt}")
            return
        if completed != 0:
            cursor = dispatched - completed + 1 - self.pre_dispatch
            frequency = (dispatched // self.verbose) + 1
            if completed + 1 == dispatched or cursor % frequency:
                return
        remaining = (elapsed / max(completed, 1)) * (dispatched - completed)
        self._print(
            f"Done {completed:{width}d} out of {dispatched:{width}d} "
            f"| elapsed: {short_format_time(elapsed)} remaining: "
            f"{short_format_time(remaining)}"
        )

    def finish(self, completed: int) -> None:
        if not self.verbose:
            return
        width = self._width()
        elapsed = time.time() - self.start_time
        self._print(
            f"Done {completed:{width}d} out of {completed:{width}d} | elapsed: "
            f"{short_format_time(elapsed)} finished"
        )


class BarReporter:
    """A tqdm-like progress bar advanced per finished batch.

    ``factory`` is True (use ``tqdm.auto.tqdm``) or any callable accepting
    ``total=`` and returning an object with ``update(n)`` and ``close()``.
    """

    def __init__(self, factory: Any, n_tasks: int | None) -> None:
        if factory is True:
            try:
                from tqdm.auto import tqdm as factory
            except ImportError as exc:
                raise ImportError(
                    "progress_bar=True needs tqdm; install it with "
                    "`pip install para-core[progress]` or pass a tqdm-like "
                    "factory as progress_bar"
                ) from exc
        self.bar = factory(total=n_tasks, file=sys.stderr) if factory else None
        self.n_tasks = n_tasks
        self.shown = 0

    def batch_done(
        self, completed: int, dispatched: int, batches: int, it: bool
    ) -> None:
        if self.bar is not None and completed > self.shown:
            self.bar.update(completed - self.shown)
            self.shown = completed

    def finish(self, completed: int) -> None:
        if self.bar is None:
            return
        if self.n_tasks is None and hasattr(self.bar, "total"):
            self.bar.total = completed
        self.batch_done(completed, completed, 0, False)
        self.bar.close()
        self.bar = None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
