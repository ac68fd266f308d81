"""Fast, safe, joblib-compatible persistence of Python objects holding numpy arrays.

``dump`` writes joblib's file format (``joblib.load`` reads it) through the C
pickler, with big arrays written raw from memory and read straight into
their final buffer or memory-mapped; ``load`` reads every joblib file ever
written without joblib, and with ``trusted=False`` never runs code from the
file. zstd (multi-threaded) joins joblib's compressors.
"""

from ._api import dump, load, load_compatibility
from ._compressors import (
    COMPRESSORS,
    LZ4_NOT_INSTALLED_ERROR,
    ZSTD_NOT_INSTALLED_ERROR,
    BinaryGzipFile,
    BinaryZlibFile,
    BZ2CompressorWrapper,
    CompressorWrapper,
    GzipCompressorWrapper,
    LZ4CompressorWrapper,
    LZMACompressorWrapper,
    XZCompressorWrapper,
    ZlibCompressorWrapper,
    ZstdCompressorWrapper,
    ZstdFile,
    register_compressor,
)
from ._errors import CorruptFileError, LoadLimitError, UnsafeLoadError
from ._npwrp import (
    NUMPY_ARRAY_ALIGNMENT_BYTES,
    NDArrayWrapper,
    NumpyArrayWrapper,
    ZNDArrayWrapper,
)

__version__ = "0.1.0"

__all__ = [
    "COMPRESSORS",
    "LZ4_NOT_INSTALLED_ERROR",
    "NUMPY_ARRAY_ALIGNMENT_BYTES",
    "ZSTD_NOT_INSTALLED_ERROR",
    "BZ2CompressorWrapper",
    "BinaryGzipFile",
    "BinaryZlibFile",
    "CompressorWrapper",
    "CorruptFileError",
    "GzipCompressorWrapper",
    "LZ4CompressorWrapper",
    "LZMACompressorWrapper",
    "LoadLimitError",
    "NDArrayWrapper",
    "NumpyArrayWrapper",
    "UnsafeLoadError",
    "XZCompressorWrapper",
    "ZNDArrayWrapper",
    "ZlibCompressorWrapper",
    "ZstdCompressorWrapper",
    "ZstdFile",
    "dump",
    "load",
    "load_compatibility",
    "register_compressor",
]
