"""Same public names as ``joblib.hashing``, re-exported from para's packages.

Hash of arbitrary Python objects and its hasher classes. Names resolve on first
use (see ``para_joblib._lazy``) from the public face of the package that owns
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _CACHE

__all__ = ["Hasher", "NumpyHasher", "hash"]

# Every name of this module comes from one package.
_TABLE = dict.fromkeys(__all__, _CACHE)

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_cache import Hasher, NumpyHasher, hash
