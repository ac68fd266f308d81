"""Which package's public face provides which group of joblib names."""

_CORE = ("para_core",)
_MEMMAP = ("para_memmap",)
_CACHE = ("para_cache",)
_PERSIST = ("para_persist",)
# joblib.logger's helpers (Logger, PrintTime, short_format_time, ...): para-cache
# owns them, since Memory is their main user.
_LOGGING = ("para_cache",)
