"""The complete joblib public API, assembled from para-core, para-memmap, para-persist and para-cache."""

__version__ = "0.1.0"

__all__: list[str] = []
