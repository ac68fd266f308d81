"""Large numpy arrays to and from para-core's workers through shared memory.

::

    import para_memmap
    para_memmap.enable()            # once: para-core's process backends use it

    caller                               /dev/shm/para-memmap-<pid>-<id>/
    Parallel(...)(delayed(f)(big) ...)     a-<id>.dat  written once per array,
        -> workers get np.memmap views  <-  kept for later calls while the
                                            array lives and is unchanged
        <- large results                    r-<id>.dat  mapped, then unlinked
    end of call / with-block -> results folder removed; exit / crash -> all

``empty``/``zeros`` allocate arrays directly in shared memory (they travel by
name, with no copy); ``has_shareable_memory`` tells whether an array is backed
by a memory map; ``MemmappingPool`` is a ``multiprocessing.Pool`` with the same
transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._arrays import has_shareable_memory
    from ._pool import MemmappingPool
    from ._shared import empty, zeros

__version__ = "0.1.0"

__all__ = [
    "MemmappingPool",
    "clear_cache",
    "disable",
    "empty",
    "enable",
    "has_shareable_memory",
    "is_enabled",
    "zeros",
]


# Imported on first use: a worker that unpickles our result reducer, or a
# program that only enables the transport, must not import numpy for nothing.
_LAZY = {
    "has_shareable_memory": "_arrays",
    "MemmappingPool": "_pool",
    "empty": "_shared",
    "zeros": "_shared",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'para_memmap' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def enable() -> None:
    """Make para-core's process backends move large arrays through shared memory.

    Installs para-memmap's transport hook with ``para_core.set_transport_hook``
    (``para_joblib`` does it for you). Idempotent.

    Examples
    --------
    >>> import para_memmap
    >>> para_memmap.enable()
    >>> para_memmap.is_enabled()
    True
    """
    from . import _hook

    _hook.enable()


def disable() -> None:
    """Remove para-memmap's transport hook from para-core (if it is installed).

    Examples
    --------
    >>> import para_memmap
    >>> para_memmap.disable()
    >>> para_memmap.is_enabled()
    False
    """
    from . import _hook

    _hook.disable()


def clear_cache() -> None:
    """Remove now the shared copies of arrays that no running call uses.

    para-memmap keeps the copy it wrote of an argument array for later
    ``Parallel`` calls (within a budget, see the user guide), and removes it
    when the array is garbage collected or at exit. Call this to give the
    memory back sooner. Copies used by an open ``with Parallel(...)`` block
    stay until it ends.

    Examples
    --------
    >>> import para_memmap
    >>> para_memmap.clear_cache()
    """
    from ._registry import registry

    registry().clear()


def is_enabled() -> bool:
    """Return True when para-core uses para-memmap's transport.

    Returns
    -------
    bool
        Whether the installed para-core transport hook is para-memmap's.
    """
    from . import _hook

    return _hook.is_enabled()
