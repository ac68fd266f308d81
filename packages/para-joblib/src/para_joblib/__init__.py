"""joblib's complete public API, assembled from the four para packages.

Use it as a drop-in for joblib::

    import para_joblib as joblib

    joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4))

Where each name comes from::

    Parallel, delayed, parallel_config, ...  -> para_core   (+ para_memmap's
                                                shared-memory transport, enabled
                                                when one of these is first used)
    Memory, hash, expires_after, Logger, ... -> para_cache
    dump, load, register_compressor          -> para_persist
    pool.MemmappingPool                      -> para_memmap

Importing ``para_joblib`` loads none of them: every name is resolved on first
access (module ``__getattr__``), so ``import para_joblib`` costs about as much
as importing an empty package. The submodules ``parallel``, ``memory``,
``numpy_pickle``, ``hashing``, ``logger``, ``pool`` and ``compressor`` mirror
joblib's modules of the same names, for code that reaches past the top level
(``from joblib import logger``).

``install_as_joblib()`` (or ``PARA_AS_JOBLIB=1`` in the environment) makes
every ``import joblib`` of the program, in every process, give this package.

Versions: ``__version__`` is the joblib API level para_joblib implements
("1.6.0"), which is what clients comparing ``joblib.__version__`` must see;
``para_version`` is the release of para-joblib itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import make_lazy_module
from ._sources import _CACHE, _CORE, _LOGGING, _PERSIST
from ._version import JOBLIB_API_VERSION as JOBLIB_API_VERSION
from ._version import __version__ as para_version  # noqa: F401 (public, not joblib's)

__version__ = JOBLIB_API_VERSION

__all__ = [
    "Logger",
    "MemorizedResult",
    "Memory",
    "Parallel",
    "ParallelBackendBase",
    "PrintTime",
    "StoreBackendBase",
    "cpu_count",
    "delayed",
    "dump",
    "effective_n_jobs",
    "expires_after",
    "hash",
    "install_as_joblib",
    "load",
    "parallel_backend",
    "parallel_config",
    "register_compressor",
    "register_parallel_backend",
    "register_store_backend",
    "wrap_non_picklable_objects",
]

_TABLE = {
    "Parallel": _CORE,
    "delayed": _CORE,
    "cpu_count": _CORE,
    "effective_n_jobs": _CORE,
    "wrap_non_picklable_objects": _CORE,
    "parallel_config": _CORE,
    "parallel_backend": _CORE,
    "ParallelBackendBase": _CORE,
    "register_parallel_backend": _CORE,
    "Memory": _CACHE,
    "MemorizedResult": _CACHE,
    "expires_after": _CACHE,
    "StoreBackendBase": _CACHE,
    "register_store_backend": _CACHE,
    "hash": _CACHE,
    "dump": _PERSIST,
    "load": _PERSIST,
    "register_compressor": _PERSIST,
    "Logger": _LOGGING,
    "PrintTime": _LOGGING,
}

# Not joblib names: the switch's helpers, loaded only when used.
_SWITCH = frozenset({"JoblibAliasError", "is_installed"})

_SUBMODULES = frozenset(
    {
        "compressor",
        "externals",
        "func_inspect",
        "hashing",
        "logger",
        "memory",
        "numpy_pickle",
        "parallel",
        "pool",
    }
)

_getattr, _dir = make_lazy_module(__name__, _TABLE)


def install_as_joblib() -> None:
    """Make every ``import joblib`` in this program give para_joblib.

    After this call ``import joblib`` returns ``para_joblib`` itself and
    ``from joblib.<module> import <name>`` the matching module of
    para_joblib (``joblib.externals.loky`` is loky), in this process and in
    the worker processes it starts (the call sets ``PARA_AS_JOBLIB=1`` in
    ``os.environ``; the ``.pth`` file installed with para-joblib reads it at
    each interpreter's start). Unmodified programs get the same by starting
    with ``PARA_AS_JOBLIB=1``. Call it before anything imports joblib
    (scikit-learn does on import); calling it again does nothing.

    Raises
    ------
    para_joblib.JoblibAliasError
        If the real joblib was already imported: one program cannot mix the
        two. Call it earlier, or set ``PARA_AS_JOBLIB=1`` before the program
        starts.

    Examples
    --------
    >>> import para_joblib
    >>> para_joblib.install_as_joblib()  # doctest: +SKIP
    >>> import joblib  # doctest: +SKIP
    >>> joblib.__name__, joblib.para_version  # doctest: +SKIP
    ('para_joblib', '0.1.0')
    """
    from ._switch import install_as_joblib as install

    install()


def __getattr__(name: str):
    if name in _SWITCH:
        from . import _switch

        return getattr(_switch, name)
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    return _getattr(name)


def __dir__() -> list[str]:
    return sorted(set(_dir()) | _SUBMODULES | _SWITCH)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_cache import (
        MemorizedResult,
        Memory,
        StoreBackendBase,
        expires_after,
        hash,
        register_store_backend,
    )
    from para_core import (
        Parallel,
        ParallelBackendBase,
        cpu_count,
        delayed,
        effective_n_jobs,
        parallel_backend,
        parallel_config,
        register_parallel_backend,
        wrap_non_picklable_objects,
    )
    from para_persist import dump, load, register_compressor
