"""Stores by name: ``Memory(location, backend=name)`` -> a configured store.

Above both stores (``_store``, ``_fsspec_store``), so neither imports the
other; fsspec itself is imported only when an fsspec store is configured.
"""

from __future__ import annotations

import os
import warnings

from ._fsspec_store import FsspecStoreBackend
from ._store import FileSystemStoreBackend, StoreBackendBase

__all__ = ["register_store_backend"]


_STORE_BACKENDS: dict[str, type] = {
    "local": FileSystemStoreBackend,
    "fsspec": FsspecStoreBackend,
}


def register_store_backend(backend_name: str, backend: type) -> None:
    """Make a store class available to ``Memory(..., backend=backend_name)``.

    Parameters
    ----------
    backend_name : str
        Name to pass as ``backend``; ``"local"`` and ``"fsspec"`` are built in.
    backend : type
        A subclass of :class:`StoreBackendBase` (usually also of
        :class:`StoreBackendMixin`).

    Raises
    ------
    ValueError
        If the name is not a str or the class does not inherit
        :class:`StoreBackendBase`.

    Examples
    --------
    >>> class MyStore(FileSystemStoreBackend):
    ...     pass
    >>> register_store_backend("mine", MyStore)
    """
    if not isinstance(backend_name, str):
        raise ValueError(
            f"Store backend name should be a string, '{backend_name}' given."
        )
    if not (isinstance(backend, type) and issubclass(backend, StoreBackendBase)):
        raise ValueError(
            f"Store backend should inherit StoreBackendBase, '{backend}' given."
        )
    _STORE_BACKENDS[backend_name] = backend


def _store_backend_factory(backend, location, verbose=0, backend_options=None):
    """Return a configured store for ``location``, or None when disabled."""
    if isinstance(location, StoreBackendBase):
        return location
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if isinstance(location, str):
        location = os.path.expanduser(location)
        cls = _STORE_BACKENDS.get(backend)
        if cls is None:
            known = sorted(_STORE_BACKENDS)
            raise TypeError(
                f"Unknown location {location} or backend {backend}: "
                f"registered backends are {known}."
            )
        store = cls()
        options = backend_options or {}
        store.configure(location, verbose=verbose, backend_options=options)
        return store
    if location is not None:
        warnings.warn(
            f"Instantiating a backend using a {type(location).__name__} as a "
            "location is not supported by joblib. Returning None instead.",
            UserWarning,
            stacklevel=2,
        )
    return None
