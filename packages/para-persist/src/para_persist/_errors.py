"""The two exceptions para-persist raises on bad files."""

from __future__ import annotations

import pickle

__all__ = ["CorruptFileError", "UnsafeLoadError"]


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
