"""Where para-core 0.1.0 defined its backend protocol and ``BatchedCalls``.

Objects pickled by that version (a ``BatchedCalls``, a backend; later
commits pickled batches as ``_rebuild_batch``) name this module; it
re-exports the names from their modules of today so that those pickles
still load. New code imports them from ``para_core``.
"""

from ._batch import BatchedCalls, _rebuild_batch
from .backends._base import AutoBatchingMixin, FallbackToBackend, ParallelBackendBase

__all__ = [
    "AutoBatchingMixin",
    "BatchedCalls",
    "FallbackToBackend",
    "ParallelBackendBase",
    "_rebuild_batch",
]
