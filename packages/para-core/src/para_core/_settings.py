"""The settings of this thread: what ``parallel_config`` set, read by ``Parallel``.

A per-thread slot holds a dict of settings; ``Parallel`` reads it for every
argument left at its default (a :class:`_Default`). The tasks of a batch
run inside :class:`_nested_scope`, which shows them the parent's nested
backend. The bottom of para-core: this module imports no other of it.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "VALID_BACKEND_CONSTRAINTS",
    "VALID_BACKEND_HINTS",
    "default_parallel_config",
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


def _current_config() -> dict[str, Any]:
    """The settings active in this thread."""
    return getattr(_local, "config", default_parallel_config)


def _set_current_config(config: dict[str, Any]) -> None:
    """Make ``config`` the settings of this thread."""
    _local.config = config


def _get_config_param(value: Any, key: str) -> Any:
    """Resolve an argument: explicit value, else configuration, else default."""
    if isinstance(value, _Default):
        value = _current_config()[key]
        if isinstance(value, _Default):
            return value.value
    return value


def _check_hint(prefer: Any, require: Any) -> None:
    """Raise ValueError for a ``prefer`` or ``require`` joblib does not know."""
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


class _nested_scope:
    """Settings seen by the tasks of a batch: the parent's nested backend."""

    __slots__ = ("_new", "_old")

    def __init__(self, backend: Any, n_jobs: int | None) -> None:
        self._new = (backend, n_jobs)

    def __enter__(self) -> None:
        self._old = _current_config()
        cfg = dict(self._old)
        cfg["backend"] = self._new[0]
        # None: the nested backend's own default, as in joblib, not an n_jobs
        # the task's process got from elsewhere (a forked worker inherits the
        # caller's configuration, parallel_backend's n_jobs=-1 included).
        n_jobs = self._new[1]
        cfg["n_jobs"] = default_parallel_config["n_jobs"] if n_jobs is None else n_jobs
        _local.config = cfg

    def __exit__(self, *exc: object) -> None:
        _local.config = self._old
