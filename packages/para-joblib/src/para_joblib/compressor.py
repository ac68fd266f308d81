"""Same public names as ``joblib.compressor``, re-exported from para's packages.

Compressor registration and the compressor wrappers. Names resolve on first use
(see ``para_joblib._lazy``) from the public face of the package that owns them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _PERSIST

__all__ = [
    "LZ4_NOT_INSTALLED_ERROR",
    "BZ2CompressorWrapper",
    "BinaryGzipFile",
    "BinaryZlibFile",
    "CompressorWrapper",
    "GzipCompressorWrapper",
    "LZ4CompressorWrapper",
    "LZMACompressorWrapper",
    "XZCompressorWrapper",
    "ZlibCompressorWrapper",
    "register_compressor",
]

# Every name of this module comes from one package.
_TABLE = dict.fromkeys(__all__, _PERSIST)

# joblib's private names that its tests and some clients read: the registry
# of compressors by name (the same dict, so registrations show) and the lz4
# frame magic number (a fact of the lz4 format).
_LZ4_PREFIX = b"\x04\x22\x4d\x18"

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    if name == "_COMPRESSORS":
        import para_persist

        return para_persist.COMPRESSORS
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_persist import (
        LZ4_NOT_INSTALLED_ERROR,
        BinaryGzipFile,
        BinaryZlibFile,
        BZ2CompressorWrapper,
        CompressorWrapper,
        GzipCompressorWrapper,
        LZ4CompressorWrapper,
        LZMACompressorWrapper,
        XZCompressorWrapper,
        ZlibCompressorWrapper,
        register_compressor,
    )
