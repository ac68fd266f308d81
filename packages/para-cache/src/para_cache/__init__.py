"""Memory: joblib-compatible disk caching of function results with a fast hash and pluggable stores."""

__version__ = "0.1.0"

__all__: list[str] = []
