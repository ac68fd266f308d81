"""Same public names as ``joblib.numpy_pickle``, re-exported from para's packages.

Dump, load and the array wrappers found in pickles. Names resolve on first use
(see ``para_joblib._lazy``) from the public face of the package that owns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _PERSIST

__all__ = [
    "LZ4_NOT_INSTALLED_ERROR",
    "NUMPY_ARRAY_ALIGNMENT_BYTES",
    "BZ2CompressorWrapper",
    "BinaryZlibFile",
    "GzipCompressorWrapper",
    "LZ4CompressorWrapper",
    "LZMACompressorWrapper",
    "NDArrayWrapper",
    "NumpyArrayWrapper",
    "NumpyPickler",
    "XZCompressorWrapper",
    "ZNDArrayWrapper",
    "ZlibCompressorWrapper",
    "dump",
    "load",
    "load_compatibility",
    "register_compressor",
]

# joblib's pickler is para_joblib's own (on para_persist's wrapper class).
_TABLE = {
    **dict.fromkeys(__all__, _PERSIST),
    "NumpyPickler": ("para_joblib._numpy_pickler",),
}

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_persist import (
        LZ4_NOT_INSTALLED_ERROR,
        NUMPY_ARRAY_ALIGNMENT_BYTES,
        BinaryZlibFile,
        BZ2CompressorWrapper,
        GzipCompressorWrapper,
        LZ4CompressorWrapper,
        LZMACompressorWrapper,
        NDArrayWrapper,
        NumpyArrayWrapper,
        XZCompressorWrapper,
        ZlibCompressorWrapper,
        ZNDArrayWrapper,
        dump,
        load,
        load_compatibility,
        register_compressor,
    )

    from ._numpy_pickler import NumpyPickler
