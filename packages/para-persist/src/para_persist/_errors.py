"""The exceptions para-persist raises on bad or refused files."""

from __future__ import annotations

import pickle

__all__ = ["CorruptFileError", "LoadLimitError", "UnsafeLoadError"]


class CorruptFileError(pickle.UnpicklingError, ValueError):
    """The file is truncated, damaged, or not a pickle/joblib file.

    Raised by :func:`para_persist.load` for any failure to decode the bytes of
    a file; the original low-level error is chained as ``__cause__``. It
    subclasses both :class:`pickle.UnpicklingError` and :class:`ValueError`,
    so code written for ``pickle`` or ``joblib`` keeps catching it.

    Examples
    --------
    >>> import para_persist
    >>> try:
    ...     para_persist.load(io.BytesIO(b"not a pickle"))  # doctest: +SKIP
    ... except para_persist.CorruptFileError as exc:
    ...     print("damaged:", exc)
    """


class UnsafeLoadError(pickle.UnpicklingError):
    """A file loaded with ``trusted=False`` names a global that is not admitted.

    Raised before the refused global is imported or called, so nothing from
    the file runs. The message names the refused global; admit it with
    ``load(..., trusted=False, allowed_globals=["module.name"])`` if you trust
    that object.
    """


class LoadLimitError(pickle.UnpicklingError, ValueError):
    """A file asks for more than ``load`` was allowed to spend on it.

    Raised by :func:`para_persist.load` when the bytes a load would allocate
    exceed ``max_bytes`` (array data, the decompressed pickle stream and its
    bytes/str payloads, counted *before* they are allocated or decompressed),
    or, with ``trusted=False``, when the file nests containers deeper than
    twice ``sys.getrecursionlimit()``. The message names the limit, the
    amount asked and how to raise the limit.

    The file is not damaged, so this is not a :class:`CorruptFileError`; it
    has the same bases (:class:`pickle.UnpicklingError` and
    :class:`ValueError`: the file is a value the caller's limit refuses), so
    code that catches what ``pickle`` or ``joblib`` raise on a bad file
    catches it too.

    Examples
    --------
    >>> import io, para_persist
    >>> buf = io.BytesIO()
    >>> para_persist.dump(b"x" * 10_000, buf)
    >>> try:
    ...     para_persist.load(buf, max_bytes=1_000)
    ... except para_persist.LoadLimitError as exc:
    ...     print("refused:", str(exc).split(":")[0])
    refused: loading this file needs more than max_bytes=1000 bytes
    """
