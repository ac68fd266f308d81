"""Same public names as ``joblib.pool``: ``MemmappingPool`` and ``PicklingPool``.

``MemmappingPool`` is a process pool sharing large numpy arrays with its
workers; it derives from ``PicklingPool``, whose base class a client may
replace (ray runs joblib's multiprocessing backend on its actors that way).
Names resolve on first use (see ``para_joblib._lazy``), so importing this
module does not import numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module

__all__ = ["MemmappingPool", "PicklingPool"]

# Defined in para_joblib._pools, on top of para_memmap's pool.
_TABLE = dict.fromkeys(__all__, ("para_joblib._pools",))

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from ._pools import MemmappingPool, PicklingPool
