"""Automatic shared-memory transport of large numpy arrays between para-core and its workers."""

__version__ = "0.1.0"

__all__: list[str] = []
