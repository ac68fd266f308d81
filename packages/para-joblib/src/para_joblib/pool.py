"""Same public names as ``joblib.pool``, re-exported from para's packages.

MemmappingPool, a multiprocessing.Pool with shared-memory arrays. Names resolve
on first use (see ``para_joblib._lazy``) from the public face of the package
that owns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _MEMMAP

__all__ = ["MemmappingPool"]

# Every name of this module comes from one package.
_TABLE = dict.fromkeys(__all__, _MEMMAP)

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_memmap import MemmappingPool
