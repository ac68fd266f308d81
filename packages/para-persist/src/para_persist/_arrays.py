"""One array from a placeholder's metadata and the file's bytes: what every
reader of array data shares.

The metadata comes from the file, so it is checked before anything is
allocated, and the allocation is counted against ``max_bytes`` before it is
made::

    placeholder ─► checked_meta (dtype, shape, order, class)
        ├─ mapped ─► memmap (not charged) ───────────────────────┐
        └─ read ──► charge ─► numpy.empty ─► readinto_exact      │
                                             or read_shuffled ───┤
                                                                 ▼
                        finish: native byte order as joblib, subclass view

Byte-shuffled blocks (para's zstd files, see ``_pickler``) are put back in
item order here, from a stream (``read_shuffled``) or in a buffer
(``unshuffle_in_place``). The readers are ``_segments`` (para files),
``_streamarrays`` (streams) and ``_compat`` (joblib 0.8-0.9 sibling files).
numpy is imported only when a file holds arrays.
"""

from __future__ import annotations

import sys
from typing import Any

from ._errors import CorruptFileError

__all__ = [
    "charge",
    "checked_meta",
    "finish",
    "goes_native",
    "import_numpy",
    "memmap",
    "read_shuffled",
    "readinto_exact",
    "unshuffle_in_place",
]


def import_numpy() -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        return np
    try:
        import numpy
    except ImportError:
        raise ImportError(
            "This file holds numpy arrays but numpy is not installed: "
            "`pip install numpy` (or `pip install para-persist[numpy]`)."
        ) from None
    return numpy


def checked_meta(w: Any) -> tuple[Any, Any, tuple[int, ...], str, int]:
    """Validate a placeholder's metadata before any allocation."""
    np = import_numpy()
    d = w.__dict__
    dtype, shape = d.get("dtype"), d.get("shape")
    order, subclass = d.get("order", "C"), d.get("subclass", np.ndarray)
    if type(dtype) is not np.dtype and not isinstance(dtype, np.dtype):
        raise CorruptFileError(f"bad array dtype {dtype!r}")
    if type(shape) is not tuple:
        raise CorruptFileError(f"bad array shape {shape!r}")
    count = 1
    for n in shape:
        if (type(n) is not int and not isinstance(n, (int, np.integer))) or n < 0:
            raise CorruptFileError(f"bad array shape {shape!r}")
        count *= int(n)
    if order != "C" and order != "F":
        raise CorruptFileError(f"bad array order {order!r}; expected 'C' or 'F'")
    if subclass is not np.ndarray and not (
        isinstance(subclass, type) and issubclass(subclass, np.ndarray)
    ):
        raise CorruptFileError(f"bad array class {subclass!r}")
    return np, dtype, shape, order, count * dtype.itemsize


def charge(ctx: Any, nbytes: int, what: str = "array data") -> None:
    """Count an allocation of ``nbytes`` against the load's ``max_bytes``."""
    if ctx.budget is not None:
        ctx.budget.take(nbytes, what)


def readinto_exact(f: Any, buf: Any, what: str, chunk: int = 0) -> None:
    if hasattr(buf, "dtype"):
        buf = buf.view("u1")  # datetime64 & co. export no buffer; bytes do
    with memoryview(buf) as view, view.cast("B") as out:
        n, got = len(out), 0
        while got < n:
            # Some decompressors allocate the whole request per call: ask
            # them for moderate chunks (chunk=0: no limit, for plain files).
            k = f.readinto(out[got : got + chunk] if chunk else out[got:])
            if not k:
                raise CorruptFileError(
                    f"file truncated: {what} needs {n} bytes, only {got} present"
                )
            got += k


# The byte-order mark numpy gives a dtype in the other order than this host's
# (it spells this host's order "=").
_FOREIGN = ">" if sys.byteorder == "little" else "<"


def goes_native(dtype: Any) -> bool:
    """Whether joblib's loader turns an array of ``dtype`` to native order.

    Only the whole of a dtype in the foreign order is turned: a plain one, or
    a structured one whose top-level fields all are plain foreign types. A
    structured dtype with a native field, a field without byte order (bytes,
    bool), a nested structure or a sub-array field is left as stored, as
    joblib 1.6 leaves it; so is every dtype in this host's order.
    """
    if dtype.isnative:
        return False
    if dtype.byteorder == _FOREIGN:
        return True
    fields = dtype.fields
    if dtype.byteorder != "|" or not fields:
        return False
    return all(field[0].byteorder == _FOREIGN for field in fields.values())


def finish(np: Any, arr: Any, subclass: type, native: bool) -> Any:
    if native and goes_native(arr.dtype):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if subclass is not np.ndarray and subclass is not np.memmap:
        arr = arr.view(subclass)
    return arr


def memmap(np: Any, ctx: Any, dtype: Any, shape: tuple, order: str, offset: int):
    mode = "r+" if ctx.mmap_mode == "w+" else ctx.mmap_mode  # never truncate
    # Read-only and copy-on-write maps use the descriptor already open, so a
    # file replaced meanwhile (atomic dump) cannot be mixed with this one.
    target = ctx.mapfile if mode in ("r", "c") and ctx.mapfile else ctx.filename
    return np.memmap(
        target, dtype=dtype, mode=mode, offset=offset, shape=shape, order=order
    )


def _shuffle_step(shuffle: Any, itemsize: int) -> int:
    if (
        not isinstance(shuffle, tuple)
        or len(shuffle) != 2
        or shuffle[0] != itemsize
        or not isinstance(shuffle[1], int)
        or not 0 < shuffle[1] <= 1 << 24
    ):
        raise CorruptFileError(f"bad byte-shuffle metadata {shuffle!r}")
    return shuffle[1] * itemsize


def unshuffle_in_place(np: Any, u8: Any, shuffle: Any, itemsize: int) -> None:
    """Undo para's zstd byte-shuffle in a buffer, one block of scratch."""
    step = _shuffle_step(shuffle, itemsize)
    if u8.size % itemsize:
        raise CorruptFileError("byte-shuffled block of a partial item")
    for i in range(0, u8.size, step):
        block = u8[i : i + step]
        scratch = block.copy()
        block.reshape(-1, itemsize)[...] = scratch.reshape(itemsize, -1).T


def read_shuffled(np: Any, f: Any, flat: Any, shuffle: Any) -> None:
    """Read byte-shuffled blocks (para's zstd files) back into item order."""
    itemsize = flat.dtype.itemsize
    step = _shuffle_step(shuffle, itemsize)
    u8 = flat.view(np.uint8)
    scratch = np.empty(min(step, u8.size), dtype=np.uint8)
    for i in range(0, u8.size, step):
        n = min(step, u8.size - i)
        readinto_exact(f, scratch[:n], "array data")
        u8[i : i + n].reshape(-1, itemsize)[...] = scratch[:n].reshape(itemsize, -1).T
