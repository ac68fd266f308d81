"""Array placeholders of the joblib file formats, and the layout of array data.

This module's dotted name has exactly the length of ``joblib.numpy_pickle``
so the writer can rename the placeholder class in the pickle stream in place
(see ``_pickler``); the classes must stay here. Placeholders:

* :class:`NumpyArrayWrapper` (joblib >= 0.10): metadata pickled in the
  stream, raw array bytes right after it (after 1 + n padding bytes when
  ``numpy_array_alignment_bytes`` is set).
* :class:`NDArrayWrapper` (joblib 0.8-0.9): a sibling ``.npy`` file.
* :class:`ZNDArrayWrapper` (joblib 0.8-0.9 compressed): a sibling zlib
  "ZF" container with the array buffer.

They only hold metadata; the readers replace them by arrays::

    NumpyArrayWrapper ─┬─ para file, C unpickler ──► _segments (index blocks)
                       └─ any other stream ────────► _streamarrays
    (Z)NDArrayWrapper ─── sibling files ───────────► _compat
                          all three build arrays with _arrays
"""

from __future__ import annotations

from typing import Any

from ._errors import CorruptFileError

__all__ = [
    "NUMPY_ARRAY_ALIGNMENT_BYTES",
    "NDArrayWrapper",
    "NumpyArrayWrapper",
    "ZNDArrayWrapper",
]

NUMPY_ARRAY_ALIGNMENT_BYTES = 16
# Array blocks up to this size are read with a para file's index.
SMALL_BLOCK = 64 * 1024


class NumpyArrayWrapper:
    """Metadata of an array whose raw bytes follow it in the file.

    Parameters
    ----------
    subclass : type
        ``numpy.ndarray`` or the subclass of the stored array.
    shape : tuple of int
        Array shape.
    order : {'C', 'F'}
        Memory order of the stored bytes.
    dtype : numpy.dtype
        Array dtype.
    allow_mmap : bool, default False
        Whether ``load(..., mmap_mode=...)`` may map the bytes.
    numpy_array_alignment_bytes : int or None, default 16
        Alignment of the data; ``None`` in files written before joblib 1.2.
    """

    def __init__(
        self,
        subclass: type,
        shape: tuple[int, ...],
        order: str,
        dtype: Any,
        allow_mmap: bool = False,
        numpy_array_alignment_bytes: int | None = NUMPY_ARRAY_ALIGNMENT_BYTES,
    ) -> None:
        self.subclass = subclass
        self.shape = shape
        self.order = order
        self.dtype = dtype
        self.allow_mmap = allow_mmap
        self.numpy_array_alignment_bytes = numpy_array_alignment_bytes

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CorruptFileError(f"bad array metadata {state!r}")
        self.__dict__.update(state)


class NDArrayWrapper:
    """Placeholder of joblib 0.8-0.9 for an array stored in a sibling file."""

    def __init__(self, filename: str, subclass: type, allow_mmap: bool = True):
        self.filename = filename
        self.subclass = subclass
        self.allow_mmap = allow_mmap

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CorruptFileError(f"bad array metadata {state!r}")
        self.__dict__.update(state)


class ZNDArrayWrapper(NDArrayWrapper):
    """Placeholder of joblib 0.8-0.9 for an array in a sibling "ZF" file."""

    def __init__(self, filename: str, init_args: tuple, state: tuple) -> None:  # type: ignore[override]
        self.filename = filename
        self.init_args = init_args
        self.state = state
