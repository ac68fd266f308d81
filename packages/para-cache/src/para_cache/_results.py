"""Values handed back by cached functions, and the pass-through wrappers.

``MemorizedResult`` is a small picklable pointer to a stored output;
``NotMemorized*`` stand in when ``Memory(location=None)`` disables caching.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._logger import Logger, pformat
from ._store_registry import _store_backend_factory


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
class MemorizedResult(Logger):
    """Picklable reference to one cached output.

    Parameters
    ----------
    location : str or StoreBackendBase
        The store (or its location) holding the entry.
    call_id : tuple of str
        ``(func_id, args_id)``.
    backend : str, default "local"
        Store backend name used when ``location`` is a str.
    mmap_mode : {None, "r+", "r", "w+", "c"}, optional
        Memory-map arrays when loading.
    verbose : int, default 0
        Verbosity.
    timestamp, metadata : optional
        Internal.
    """

    def __init__(
        self,
        location,
        call_id,
        backend="local",
        mmap_mode=None,
        verbose=0,
        timestamp=None,
        metadata=None,
    ):
        Logger.__init__(self)
        self._call_id = call_id
        self.store_backend = _store_backend_factory(
            backend, location, verbose=verbose, backend_options={"mmap_mode": mmap_mode}
        )
        self.mmap_mode = mmap_mode
        if metadata is None:
            metadata = self.store_backend.get_metadata(call_id)
        self.metadata = metadata
        self.duration = metadata.get("duration", None)
        self.verbose = verbose
        self.timestamp = timestamp

    @property
    def func(self) -> str:
        """The function identifier."""
        return self.func_id

    @property
    def func_id(self) -> str:
        """The function identifier (its folder below the store)."""
        return self._call_id[0]

    @property
    def args_id(self) -> str:
        """The argument hash (the entry's folder name)."""
        return self._call_id[1]

    def get(self) -> Any:
        """Load and return the cached value.

        Raises
        ------
        KeyError
            If the entry was cleared or is corrupted.
        """
        try:
            return self.store_backend.load_item(
                self._call_id,
                timestamp=self.timestamp,
                metadata=self.metadata,
                verbose=self.verbose,
            )
        except (KeyError, ValueError) as exc:
            path = os.path.join(self.store_backend.location, *self._call_id)
            raise KeyError(
                "Error while trying to load a MemorizedResult's value. "
                f"It seems that this folder is corrupted : {path}"
            ) from exc

    def clear(self) -> None:
        """Delete the cached value."""
        self.store_backend.clear_item(self._call_id)

    def __repr__(self) -> str:
        func_id, args_id = self._call_id
        return (
            f'{type(self).__name__}(location="{self.store_backend.location}", '
            f'func="{func_id}", args_id="{args_id}")'
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["timestamp"] = None
        return state


class NotMemorizedResult:
    """Holds a value in memory; what ``call_and_shelve`` returns without a cache.

    Parameters
    ----------
    value : object
        The function's output.
    """

    __slots__ = ("valid", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.valid = True

    def get(self) -> Any:
        """Return the value; KeyError once cleared."""
        if not self.valid:
            raise KeyError("No value stored.")
        return self.value

    def clear(self) -> None:
        """Forget the value."""
        self.valid = False
        self.value = None

    def __repr__(self) -> str:
        if self.valid:
            return f"{type(self).__name__}({pformat(self.value)})"
        return f"{type(self).__name__} with no value"

    def __getstate__(self) -> dict:
        return {"valid": self.valid, "value": self.value}

    def __setstate__(self, state: dict) -> None:
        self.valid = state["valid"]
        self.value = state["value"]


# ---------------------------------------------------------------------------
# Functions without a cache
# ---------------------------------------------------------------------------
class NotMemorizedFunc:
    """Pass-through wrapper used when ``Memory(location=None)``.

    Parameters
    ----------
    func : callable
        The wrapped function.
    """

    def __init__(self, func: Callable) -> None:
        self.func = func

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def call_and_shelve(self, *args: Any, **kwargs: Any) -> NotMemorizedResult:
        """Call the function and wrap its output in a NotMemorizedResult."""
        return NotMemorizedResult(self.func(*args, **kwargs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(func={self.func})"

    def clear(self, warn: bool = True) -> None:
        """Nothing to clear."""

    def call(self, *args: Any, **kwargs: Any) -> tuple[Any, dict]:
        """Call the function; return ``(output, {})``."""
        return self.func(*args, **kwargs), {}

    def check_call_in_cache(self, *args: Any, **kwargs: Any) -> bool:
        """Always False: nothing is cached."""
        return False


class AsyncNotMemorizedFunc(NotMemorizedFunc):
    """:class:`NotMemorizedFunc` for coroutine functions."""

    async def call_and_shelve(self, *args, **kwargs):
        """Await the function and wrap its output in a NotMemorizedResult."""
        return NotMemorizedResult(await self.func(*args, **kwargs))
