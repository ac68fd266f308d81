"""Which package's public face provides which group of joblib names."""

_CORE = ("para_core",)
_MEMMAP = ("para_memmap",)
_CACHE = ("para_cache",)
_PERSIST = ("para_persist",)
# joblib.logger's helpers: para-cache's Memory logs with them, para-core's
# verbose output formats times with them; either public face may carry them.
_LOGGING = ("para_cache", "para_core")
