"""Console helpers shared by Memory: time formatting, pretty printing, loggers.

The message formats match joblib's so that logs and doctests stay comparable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pprint
import shutil
import sys
import time
from typing import Any

__all__ = ["Logger", "PrintTime", "format_time", "pformat", "short_format_time"]


def _squeeze_time(t: float) -> float:
    # Windows stats are ~0.1 s slower; trimming keeps timings comparable.
    if sys.platform.startswith("win"):
        return max(0.0, t - 0.1)
    return t


def format_time(t: float) -> str:
    """Format a duration as seconds and minutes.

    Parameters
    ----------
    t : float
        Duration in seconds.

    Returns
    -------
    str
        For instance ``'12.3s, 0.2min'``.

    Examples
    --------
    >>> format_time(90)
    '90.0s, 1.5min'
    """
    t = _squeeze_time(t)
    return f"{t:.1f}s, {t / 60.0:.1f}min"


def short_format_time(t: float) -> str:
    """Format a duration compactly: minutes above one minute, else seconds.

    Parameters
    ----------
    t : float
        Duration in seconds.

    Returns
    -------
    str
        ``'  42.0s'`` or ``' 1.2min'``.

    Examples
    --------
    >>> short_format_time(42)
    '  42.0s'
    """
    t = _squeeze_time(t)
    if t > 60:
        return f"{t / 60.0:4.1f}min"
    return f" {t:5.1f}s"


def pformat(obj: Any, indent: int = 0, depth: int = 3) -> str:
    """Pretty-print ``obj``, with short numpy output when numpy is loaded.

    Parameters
    ----------
    obj : object
        The object to format.
    indent : int, default 0
        Indentation passed to :func:`pprint.pformat`.
    depth : int, default 3
        Nesting depth passed to :func:`pprint.pformat`.

    Returns
    -------
    str
        The formatted text.

    Examples
    --------
    >>> pformat({"a": 1})
    "{'a': 1}"
    """
    np = sys.modules.get("numpy")
    if np is None:
        return pprint.pformat(obj, depth=depth, indent=indent)
    saved = np.get_printoptions()
    np.set_printoptions(precision=6, threshold=64, edgeitems=1)
    try:
        return pprint.pformat(obj, depth=depth, indent=indent)
    finally:
        np.set_printoptions(**saved)


class Logger:
    """Base class of the objects that report through :mod:`logging`.

    Parameters
    ----------
    depth : int, default 3
        Nesting depth used by :meth:`format`.
    name : str, optional
        Logger name; ``"joblib"`` by default so existing handlers keep working.
    """

    def __init__(self, depth: int = 3, name: str | None = None) -> None:
        self.depth = depth
        self._name = name if name else "joblib"

    def warn(self, msg: str) -> None:
        """Log ``msg`` at WARNING level, prefixed by this object's repr."""
        logging.getLogger(self._name).warning(f"[{self}]: {msg}")

    def info(self, msg: str) -> None:
        """Log ``msg`` at INFO level on the root logger."""
        logging.info(f"[{self}]: {msg}")

    def debug(self, msg: str) -> None:
        """Log ``msg`` at DEBUG level."""
        logging.getLogger(self._name).debug(f"[{self}]: {msg}")

    def format(self, obj: Any, indent: int = 0) -> str:
        """Return the pretty-printed text of ``obj`` at this logger's depth."""
        return pformat(obj, indent=indent, depth=self.depth)


class PrintTime:
    """Print (and optionally log to a file) the time elapsed between calls.

    Parameters
    ----------
    logfile : str, optional
        File to append the messages to; older logs are rotated to ``.1``..``.9``.
    logdir : str, optional
        Folder in which ``joblib.log`` is written. Exclusive with ``logfile``.

    Raises
    ------
    ValueError
        If both ``logfile`` and ``logdir`` are given.

    Examples
    --------
    >>> timer = PrintTime()
    >>> timer("step done")  # doctest: +SKIP
    step done: 0.0s, 0.0min
    """

    def __init__(self, logfile: str | None = None, logdir: str | None = None) -> None:
        if logfile is not None and logdir is not None:
            raise ValueError(
                "Cannot specify both logfile and logdir: got "
                f"logfile={logfile!r} and logdir={logdir!r}; pass only one."
            )
        self.last_time = time.time()
        self.start_time = self.last_time
        if logdir is not None:
            logfile = os.path.join(logdir, "joblib.log")
        self.logfile = logfile
        if logfile is None:
            return
        os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
        if os.path.exists(logfile):
            # Keep the last nine logs, like logrotate would.
            for i in range(8, 0, -1):
                src = f"{logfile}.{i}"
                if os.path.exists(src):
                    with contextlib.suppress(OSError):
                        shutil.move(src, f"{logfile}.{i + 1}")
            with contextlib.suppress(OSError):
                shutil.copy(logfile, logfile + ".1")
        try:
            with open(logfile, "w") as f:
                f.write("\nLogging joblib python script\n")
                f.write(f"\n---{time.ctime(self.last_time)}---\n")
        except OSError:
            # Several processes may race on the log; logging must not crash work.
            pass

    def __call__(self, msg: str = "", total: bool = False) -> None:
        """Print ``msg`` with the time since the last call (or the start)."""
        now = time.time()
        if not total:
            full_msg = f"{msg}: {format_time(now - self.last_time)}"
        else:
            lapse = now - self.start_time
            full_msg = f"{msg}: {lapse:.2f}s, {lapse / 60:.1f} min"
        print(full_msg, file=sys.stderr)
        if self.logfile is not None:
            try:
                with open(self.logfile, "a") as f:
                    print(full_msg, file=f)
            except OSError:
                pass
        self.last_time = time.time()
