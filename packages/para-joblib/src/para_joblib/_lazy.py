"""Lazy resolution of re-exported names, and the one-time set-ups.

``import para_joblib`` must stay cheap (no loky, cloudpickle or numpy), so the
public names are looked up in the four packages only when first used::

    para_joblib.Parallel            # attribute access
      -> module __getattr__("Parallel")
      -> resolve(): import para_core, enable para_memmap's transport once,
                    register joblib's backend classes once
      -> para_core.Parallel, cached in the calling module's globals

Each module of ``para_joblib`` declares a table ``name -> packages`` (the
public faces that may provide the name, in order of preference) and builds its
``__getattr__`` / ``__dir__`` with :func:`make_lazy_module`.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "enable_memmap_transport",
    "make_lazy_module",
    "register_backends",
    "resolve",
]

# Packages whose workers benefit from para-memmap's shared-memory transport.
_TRANSPORT_USERS = frozenset(
    {
        "para_core",
        "para_memmap",
        f"{__package__}._parallel_backends",
        f"{__package__}._pools",
    }
)

# Where joblib's backend classes live or are activated: resolving a name
# there registers them first (see register_backends), except for these
# names, used without any backend (and cheaper to load than the backends).
_BACKEND_USERS = frozenset({"para_core", f"{__package__}._parallel_backends"})
_BACKEND_FREE = frozenset({"delayed", "wrap_non_picklable_objects"})

_enable_lock = threading.RLock()
_memmap_enabled = False
_backends_registered = False


def enable_memmap_transport() -> bool:
    """Install para-memmap's transport in para-core, once per process.

    Deferred until a process-related name is first used, because importing
    para_memmap imports numpy (~0.1 s), which ``import para_joblib`` avoids.

    Returns
    -------
    bool
        True once the transport is enabled.
    """
    global _memmap_enabled
    if _memmap_enabled:
        return True
    with _enable_lock:
        if not _memmap_enabled:
            import para_memmap

            para_memmap.enable()
            _memmap_enabled = True
    return True


def register_backends() -> None:
    """Register joblib's backend classes in para-core, once per process.

    From then on ``parallel_config(backend="multiprocessing")`` activates
    an instance of ``para_joblib._parallel_backends.MultiprocessingBackend``,
    the class joblib users import (see that module).
    """
    global _backends_registered
    if _backends_registered:
        return
    with _enable_lock:
        if not _backends_registered:
            from ._parallel_backends import register_joblib_backends

            register_joblib_backends()
            _backends_registered = True


def resolve(name: str, packages: Sequence[str], owner: str) -> Any:
    """Return ``name`` from the first of ``packages`` whose public face has it.

    Raises
    ------
    AttributeError
        If none of the packages provides ``name``; the message names them.
    """
    for package in packages:
        module = importlib.import_module(package)
        if package in _TRANSPORT_USERS:
            enable_memmap_transport()
        if package in _BACKEND_USERS and name not in _BACKEND_FREE:
            register_backends()
        try:
            return getattr(module, name)
        except AttributeError:
            continue
    raise AttributeError(
        f"module {owner!r} cannot provide {name!r}: it is not (yet) a public "
        f"name of {' or '.join(packages)}"
    )


def make_lazy_module(
    module_name: str, table: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build the ``__getattr__`` and ``__dir__`` of a lazily re-exporting module.

    Parameters
    ----------
    module_name : str
        ``__name__`` of the module, used to cache resolved names in it.
    table : mapping of str to sequence of str
        Public name -> import names of the packages that may provide it.

    Returns
    -------
    (__getattr__, __dir__)
        Functions to assign at the module's top level.
    """

    def __getattr__(name: str) -> Any:
        packages = table.get(name)
        if packages is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = resolve(name, packages, module_name)
        # Cache: later look-ups are plain global reads, no __getattr__ call.
        setattr(sys.modules[module_name], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(sys.modules[module_name].__dict__) | set(table))

    return __getattr__, __dir__
