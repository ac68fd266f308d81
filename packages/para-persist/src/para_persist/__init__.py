"""Fast, safe, joblib-compatible persistence of Python objects holding large numpy arrays."""

__version__ = "0.1.0"

__all__: list[str] = []
