"""joblib 0.8-0.9 dumps: arrays in sibling files, and the zlib "ZF" container.

Those versions wrote each array to a file beside the main pickle, which holds
a placeholder naming it; a whole dump compressed by joblib < 0.10 is one ZF
container (``load`` reads it with :func:`read_zfile`, then the stream
unpickler)::

    NDArrayWrapper ──► <folder>/<name>.npy ─► numpy.load (mapped if asked)
    ZNDArrayWrapper ─► <folder>/<name> (ZF) ─► read_zfile ─► the array
                       rebuilt from (init_args, state + data), checked first

Sibling names are checked to be plain file names in the dump's folder, and
the sizes they announce are counted against ``max_bytes`` before reading.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from typing import Any

from ._arrays import charge, finish, import_numpy
from ._errors import CorruptFileError
from ._npwrp import ZNDArrayWrapper

__all__ = ["read_sibling", "read_zfile", "write_zfile"]

_ZFILE_PREFIX = b"ZF"
_ZFILE_LEN_FIELD = len(f"{2**64:#x}")  # 19: hex length, space padded
_ZLIB_MAX_RATIO = 1032  # deflate cannot expand input more than this


def _sibling_path(w: Any, ctx: Any) -> str:
    name = w.__dict__.get("filename")
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if (
        not isinstance(name, str)
        or not name
        or os.path.basename(name) != name
        or name in (".", "..")
    ):
        raise CorruptFileError(f"bad sibling array file name {name!r}")
    return os.path.join(ctx.dirname, name)


def read_sibling(w: Any, ctx: Any) -> Any:
    np = import_numpy()
    ctx.sibling_arrays = True  # load warns that the format is deprecated
    path = _sibling_path(w, ctx)
    if isinstance(w, ZNDArrayWrapper):
        init_args = w.__dict__.get("init_args")
        state = w.__dict__.get("state")
        if (
            not isinstance(init_args, tuple)
            or len(init_args) != 3
            or not isinstance(init_args[0], type)
            or not issubclass(init_args[0], np.ndarray)
            or not isinstance(state, tuple)
        ):
            raise CorruptFileError(f"bad compressed array metadata in {path!r}")
        with open(path, "rb") as fh:
            data = read_zfile(fh, ctx.budget)
        if ctx.rules is not None:  # safe load: the checking stand-ins
            arr = ctx.rules.reconstruct(*init_args)
            ctx.rules.build(arr, (*state, data))
            return arr
        from ._safe import check_array_state

        arr = _np_reconstruct(np)(*init_args)
        check_array_state(np, arr, (*state, data))
        arr.__setstate__((*state, data))
        return arr
    allow_mmap = w.__dict__.get("allow_mmap", True)
    mode = "r+" if ctx.mmap_mode == "w+" else ctx.mmap_mode  # never truncate
    if ctx.budget is not None and not (mode is not None and allow_mmap):
        charge(ctx, _npy_nbytes(np, path), "a sibling .npy array")
    arr = np.load(
        path,
        mmap_mode=mode if allow_mmap else None,
        allow_pickle=not ctx.safe,
    )
    subclass = w.__dict__.get("subclass", np.ndarray)
    if not (isinstance(subclass, type) and issubclass(subclass, np.ndarray)):
        raise CorruptFileError(f"bad array class {subclass!r}")
    # joblib turns these arrays native whatever load was asked (memory maps
    # included: they become arrays in memory then).
    return finish(np, arr, subclass, True)


def _npy_nbytes(np: Any, path: str) -> int:
    """What ``numpy.load`` allocates for a ``.npy`` file, from its header."""
    fmt = np.lib.format
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            else:
                shape, _, dtype = fmt.read_array_header_2_0(fh)
        except ValueError as exc:
            raise CorruptFileError(f"bad .npy header in {path!r}: {exc}") from exc
        if dtype.hasobject:  # pickled items: at most what the file holds
            return os.fstat(fh.fileno()).st_size
    return math.prod(shape) * dtype.itemsize


def _np_reconstruct(np: Any) -> Any:
    core = sys.modules.get("numpy._core.multiarray")
    if core is None:
        try:
            from numpy._core import multiarray as core
        except ImportError:  # numpy < 1.26
            from numpy.core import multiarray as core
    return core._reconstruct


def read_zfile(file_handle: Any, budget: Any = None) -> bytes:
    """Return the bytes held in a joblib < 0.10 zlib "ZF" container.

    Parameters
    ----------
    file_handle : binary file object
        Opened on the container, read from its start.
    budget : _limits.Budget, optional
        Counts the announced size before it is decompressed.

    Raises
    ------
    CorruptFileError
        If the header or the compressed data is damaged.
    """
    file_handle.seek(0)
    header = file_handle.read(len(_ZFILE_PREFIX) + _ZFILE_LEN_FIELD)
    if not header.startswith(_ZFILE_PREFIX):
        raise CorruptFileError("not a ZF container: missing b'ZF' prefix")
    try:
        length = int(header[len(_ZFILE_PREFIX) :], 16)
    except ValueError:
        raise CorruptFileError(f"bad ZF length field {header[2:]!r}") from None
    if file_handle.read(1) != b" ":
        file_handle.seek(len(header))
    compressed = file_handle.read()
    if length < 0 or length > _ZLIB_MAX_RATIO * len(compressed) + 64:
        raise CorruptFileError(
            f"ZF length field says {length} bytes, impossible for "
            f"{len(compressed)} compressed bytes"
        )
    if budget is not None:
        budget.take(length, "a joblib < 0.10 zlib container")
    try:
        data = zlib.decompressobj(15).decompress(compressed, length)
    except zlib.error as exc:
        raise CorruptFileError(f"damaged ZF container: {exc}") from exc
    if len(data) != length:
        raise CorruptFileError(
            f"ZF container holds {len(data)} bytes, header says {length}"
        )
    return data


def write_zfile(file_handle: Any, data: bytes, compress: int = 1) -> None:
    """Write ``data`` as a joblib < 0.10 zlib "ZF" container.

    Parameters
    ----------
    file_handle : binary file object
        Destination, written from its current position.
    data : bytes-like
        Payload.
    compress : int, default 1
        zlib level.
    """
    file_handle.write(_ZFILE_PREFIX)
    file_handle.write(f"{len(data):#x}".ljust(_ZFILE_LEN_FIELD).encode("ascii"))
    file_handle.write(zlib.compress(data, compress))
