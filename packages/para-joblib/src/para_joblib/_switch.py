"""para_joblib standing in for ``joblib`` in a whole program, on request.

Two ways on, one mechanism::

    para_joblib.install_as_joblib()        # code that can run something first
    PARA_AS_JOBLIB=1 python program.py     # unmodified programs: the .pth file
                                           # the wheel installs calls _from_env()

Both put one finder at the front of ``sys.meta_path``. It answers every
``joblib`` and ``joblib.<name>`` import with the module para already has
(``para_joblib``, ``para_joblib.<name>``; ``joblib.externals.loky`` is loky
itself), so ``sys.modules["joblib"] is para_joblib`` and no path search ever
runs for these names: a later ``sys.path`` change (pytest putting
site-packages first) cannot bring the real joblib in. The switch sets the
environment variable too, so that every child process (loky, multiprocessing
spawn or forkserver, dask workers) turns it on at its own start; forked
children inherit the finder itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import warnings
from types import ModuleType

__all__ = ["ENV_VAR", "JoblibAliasError", "install_as_joblib", "is_installed"]

#: Environment variable read at interpreter start (through the .pth file).
ENV_VAR = "PARA_AS_JOBLIB"

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})

# joblib's names that are another distribution here, not a para_joblib module.
_RENAMED = {
    "joblib.externals.loky": "loky",
    "joblib.externals.cloudpickle": "cloudpickle",
}

# joblib's modules para_joblib provides (as para_joblib.<name>). They are
# registered under joblib's names when the switch goes on, so that no finder,
# not even one pushed in front of ours later, is asked for them. Each is a
# small module resolving its names lazily: registering them costs little.
_PROVIDED = (
    "",
    ".compressor",
    ".externals",
    ".func_inspect",
    ".hashing",
    ".logger",
    ".memory",
    ".numpy_pickle",
    ".parallel",
    ".pool",
    "._store_backends",
)

_lock = threading.Lock()


class JoblibAliasError(RuntimeError):
    """The real joblib was imported before para_joblib could stand in for it."""


def _target(fullname: str) -> str:
    """Name of the module that answers the import of ``fullname``."""
    for prefix, real in _RENAMED.items():
        if fullname == prefix or fullname.startswith(prefix + "."):
            return real + fullname[len(prefix) :]
    return "para_joblib" + fullname[len("joblib") :]


class _JoblibFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Meta-path finder and loader mapping ``joblib.*`` to para's modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "joblib" and not fullname.startswith("joblib."):
            return None
        real = _target(fullname)
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as exc:
            if exc.name != real:  # something the module itself needs
                raise
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: para_joblib stands in for joblib "
                f"in this program ({ENV_VAR} or para_joblib.install_as_joblib()) "
                f"and does not provide {fullname!r}. The page 'Migrating from "
                "joblib' lists what is provided; unset the switch to use the "
                "real joblib.",
                name=fullname,
            ) from None
        spec = importlib.machinery.ModuleSpec(
            fullname, self, loader_state=(module, module.__spec__)
        )
        if hasattr(module, "__path__"):
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec):
        return spec.loader_state[0]

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias's spec on the module: give it
        # back its own, so that it keeps its real name (reload, pickling of
        # the classes it defines, multiprocessing's main-module handling).
        module.__spec__ = module.__spec__.loader_state[1]


_FINDER = _JoblibFinder()


def is_installed() -> bool:
    """Tell whether para_joblib stands in for ``joblib`` in this process.

    Returns
    -------
    bool
        True once :func:`install_as_joblib` ran (directly or through the
        ``PARA_AS_JOBLIB`` environment variable).
    """
    return _FINDER in sys.meta_path


def _foreign_joblib() -> list[str]:
    """Names of real-joblib modules already in ``sys.modules``."""
    import para_joblib

    left = []
    for name, module in list(sys.modules.items()):
        if name != "joblib" and not name.startswith("joblib."):
            continue
        if module is None:  # a failed import's placeholder
            continue
        real = sys.modules.get(_target(name))
        if module is not real and module is not para_joblib:
            left.append(name)
    return sorted(left)


def install_as_joblib() -> None:
    """Make every ``import joblib`` in this program give para_joblib.

    After this call ``import joblib`` returns ``para_joblib`` itself and
    ``from joblib.<module> import <name>`` the matching module of
    para_joblib (``joblib.externals.loky`` is loky), in this process and in
    the worker processes it starts: the call sets ``PARA_AS_JOBLIB=1`` in
    ``os.environ``, which the ``.pth`` file installed with para-joblib reads
    at each interpreter's start. Call it before anything imports joblib
    (scikit-learn does on import); calling it again does nothing.

    Raises
    ------
    JoblibAliasError
        If the real joblib was already imported: one program cannot mix the
        two, and replacing modules already in use would leave some objects on
        each. Call it earlier, or set ``PARA_AS_JOBLIB=1`` before the program
        starts.

    See Also
    --------
    is_installed : whether the switch is on.

    Examples
    --------
    >>> import para_joblib
    >>> para_joblib.install_as_joblib()  # doctest: +SKIP
    >>> import joblib  # doctest: +SKIP
    >>> joblib.__name__  # doctest: +SKIP
    'para_joblib'
    """
    with _lock:
        if not is_installed():
            foreign = _foreign_joblib()
            if foreign:
                raise JoblibAliasError(
                    "para_joblib cannot stand in for joblib: the real joblib is "
                    f"already imported ({', '.join(foreign[:5])}"
                    f"{', ...' if len(foreign) > 5 else ''}), so parts of the "
                    "program would run on each. Call "
                    "para_joblib.install_as_joblib() before importing joblib or "
                    f"any library that imports it, or start the program with "
                    f"{ENV_VAR}=1."
                )
            sys.meta_path.insert(0, _FINDER)
            for suffix in _PROVIDED:
                sys.modules["joblib" + suffix] = importlib.import_module(
                    "para_joblib" + suffix
                )
        elif sys.meta_path[0] is not _FINDER:
            # Something went in front since: the alias must be asked first.
            sys.meta_path.remove(_FINDER)
            sys.meta_path.insert(0, _FINDER)
        os.environ[ENV_VAR] = "1"


def _from_env() -> None:
    """Entry point of the ``.pth`` file, run at every interpreter's start."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _OFF:
        return
    if value not in _ON:
        warnings.warn(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not understood: set it to 1 "
            "for para_joblib to stand in for joblib, or 0 (or unset it) not "
            "to. joblib is left as it is.",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    install_as_joblib()
