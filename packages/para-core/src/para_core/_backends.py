"""Where para-core 0.1.0 defined its built-in backends.

Backends pickled by that version name this module; it re-exports the classes
from their modules of today so that those pickles still load. New code
imports them from ``para_core``.
"""

from .backends._loky import LokyBackend
from .backends._multiprocessing import MultiprocessingBackend
from .backends._threads import SequentialBackend, ThreadingBackend

__all__ = [
    "LokyBackend",
    "MultiprocessingBackend",
    "SequentialBackend",
    "ThreadingBackend",
]
