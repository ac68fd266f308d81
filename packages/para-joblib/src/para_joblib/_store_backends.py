"""Same names as ``joblib._store_backends``: Memory's store classes.

``StoreBackendBase`` (what a store must implement), ``StoreBackendMixin``
(the shared logic of file-like stores), ``FileSystemStoreBackend`` (the
local folder store) and ``CacheItemInfo``, from para_cache. Client stores
subclass them and register with ``register_store_backend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _CACHE

__all__ = [
    "CacheItemInfo",
    "CacheWarning",
    "FileSystemStoreBackend",
    "StoreBackendBase",
    "StoreBackendMixin",
]

_TABLE = dict.fromkeys(__all__, _CACHE)

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_cache import (
        CacheItemInfo,
        CacheWarning,
        FileSystemStoreBackend,
        StoreBackendBase,
        StoreBackendMixin,
    )
