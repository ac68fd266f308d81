"""Parallel and delayed: joblib's parallel loops on loky, threads or dask, with less overhead."""

__version__ = "0.1.0"

__all__: list[str] = []
