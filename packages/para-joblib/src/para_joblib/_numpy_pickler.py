"""joblib's ``NumpyPickler``: a pickler writing joblib's array layout.

Clients subclass it (scikit-learn's tests override ``save`` to store arrays
in the other byte order) and read the result back with ``load``. The stream
is joblib's: each numpy array is replaced by a ``NumpyArrayWrapper`` naming
``joblib.numpy_pickle`` (so joblib and para both read it), followed right
after by the array's bytes::

    ... NumpyArrayWrapper(subclass, shape, order, dtype, allow_mmap, 16)
    [1 byte: n][n x 0xff]      padding so the data starts 16-byte aligned
    raw data in `order`        (object arrays: a pickle of the array instead)
    ... rest of the pickle
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from para_persist import NUMPY_ARRAY_ALIGNMENT_BYTES, BinaryZlibFile, NumpyArrayWrapper

__all__ = ["NumpyPickler"]

# Raw data is written in pieces of about this size, not copied whole.
_PIECE_BYTES = 16 * 1024**2


class NumpyPickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickler storing numpy arrays in joblib's layout, in the same stream.

    Parameters
    ----------
    fp : file object
        Binary file the pickle is written to.
    protocol : int, optional
        Pickle protocol (default: ``pickle.DEFAULT_PROTOCOL``).

    Notes
    -----
    A pure-Python pickler, as joblib's: subclasses may override ``save``.
    The stream is not a plain pickle (array bytes follow their wrappers):
    read it with ``load``.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from para_joblib import load
    >>> from para_joblib.numpy_pickle import NumpyPickler
    >>> buffer = io.BytesIO()
    >>> NumpyPickler(buffer).dump({"a": np.arange(3)})
    >>> _ = buffer.seek(0)
    >>> load(buffer)["a"].tolist()
    [0, 1, 2]
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def __init__(self, fp: Any, protocol: int | None = None) -> None:
        self.file_handle = fp
        # Compressed streams cannot be memory-mapped when read back.
        self.buffered = isinstance(fp, BinaryZlibFile)
        if protocol is None:
            protocol = pickle.DEFAULT_PROTOCOL
        super().__init__(fp, protocol=protocol)
        try:
            import numpy as np
        except ImportError:
            np = None
        self.np = np

    def _create_array_wrapper(self, array: Any) -> NumpyArrayWrapper:
        f_only = array.flags.f_contiguous and not array.flags.c_contiguous
        try:
            self.file_handle.tell()
            alignment: int | None = NUMPY_ARRAY_ALIGNMENT_BYTES
        except (io.UnsupportedOperation, AttributeError):
            alignment = None  # a pipe: no position to align to
        return NumpyArrayWrapper(
            type(array),
            array.shape,
            "F" if f_only else "C",
            array.dtype,
            allow_mmap=not self.buffered and not array.dtype.hasobject,
            numpy_array_alignment_bytes=alignment,
        )

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        np = self.np
        if np is not None and type(obj) in (np.ndarray, np.matrix, np.memmap):
            if type(obj) is np.memmap:
                obj = np.asanyarray(obj)
            wrapper = self._create_array_wrapper(obj)
            super().save(wrapper)
            if self.proto >= 4:
                # The wrapper must be in the file before the raw bytes.
                self.framer.commit_frame(force=True)
            self._write_array(wrapper, obj)
            return
        super().save(obj, save_persistent_id)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is not NumpyArrayWrapper:
            return super().save_global(obj, name)
        # joblib's name for the wrapper class: joblib and para both read it.
        module, qualname = "joblib.numpy_pickle", "NumpyArrayWrapper"
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)
        return None

    def _write_array(self, wrapper: NumpyArrayWrapper, array: Any) -> None:
        fh = self.file_handle
        if array.dtype.hasobject:
            pickle.dump(array, fh, protocol=5)
            return
        alignment = wrapper.numpy_array_alignment_bytes
        if alignment is not None:
            padding = alignment - (fh.tell() + 1) % alignment
            fh.write(bytes([padding]) + b"\xff" * padding)
        flat = array.reshape(-1, order=wrapper.order)
        step = max(_PIECE_BYTES // max(array.itemsize, 1), 1)
        for start in range(0, flat.size, step):
            fh.write(flat[start : start + step].tobytes())
