"""Memory: joblib-compatible disk caching of function results.

``Memory(location).cache(func)`` stores each distinct call's output in a store
(local folder or any fsspec file system) and returns it on later calls.
Arguments are keyed with a streaming hash (xxh3 when ``xxhash`` is installed,
else md5); entries are published atomically so concurrent processes and
crashes never leave a half-written result behind.
"""

from ._fsspec_store import FsspecStoreBackend
from ._hashing import Hasher, NumpyHasher, hash
from ._inspect import (
    filter_args,
    format_call,
    format_signature,
    get_func_code,
    get_func_name,
)
from ._logger import Logger, PrintTime, format_time, pformat, short_format_time
from ._memorized import AsyncMemorizedFunc, JobLibCollisionWarning, MemorizedFunc
from ._memory import Memory, expires_after
from ._results import (
    AsyncNotMemorizedFunc,
    MemorizedResult,
    NotMemorizedFunc,
    NotMemorizedResult,
)
from ._store import (
    CacheItemInfo,
    CacheWarning,
    FileSystemStoreBackend,
    StoreBackendBase,
    StoreBackendMixin,
    register_store_backend,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncMemorizedFunc",
    "AsyncNotMemorizedFunc",
    "CacheItemInfo",
    "CacheWarning",
    "FileSystemStoreBackend",
    "FsspecStoreBackend",
    "Hasher",
    "JobLibCollisionWarning",
    "Logger",
    "MemorizedFunc",
    "MemorizedResult",
    "Memory",
    "NotMemorizedFunc",
    "NotMemorizedResult",
    "NumpyHasher",
    "PrintTime",
    "StoreBackendBase",
    "StoreBackendMixin",
    "expires_after",
    "filter_args",
    "format_call",
    "format_signature",
    "format_time",
    "get_func_code",
    "get_func_name",
    "hash",
    "pformat",
    "register_store_backend",
    "short_format_time",
]
