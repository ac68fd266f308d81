"""What the joblib-suite runner adds to para_joblib's switch, in every process.

The runner starts pytest with ``PARA_AS_JOBLIB=1`` (para_joblib's official
switch: every ``import joblib`` gives para_joblib, in workers too) and this
folder on ``PYTHONPATH``, so that this file also runs at each interpreter's
start. It adds, in front of the switch:

- ``joblib.test`` / ``joblib.test.*`` / ``joblib.testing``: the copy of
  joblib's test package that the runner made in a temporary folder (the tests
  under examination and their pytest helpers, not the library under test);
- for a joblib internal that para does not provide, a placeholder that fails
  loudly when a test uses it (``ParaMissingInternal``), so that one missing
  internal name fails the tests that use it, not every test of its file.

The real joblib is never imported by a process that loads this file.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

_TESTS_ENV = "PARA_JOBLIB_SUITE_TESTS"


class ParaMissingInternal(Exception):
    """A test used a joblib internal that para does not provide."""


class _Missing:
    """Stands for ``joblib.<module>.<name>`` that para lacks; any use raises."""

    def __init__(self, qualname: str) -> None:
        object.__setattr__(self, "_qualname", qualname)

    def _fail(self, *args, **kwargs):
        raise ParaMissingInternal(
            f"para does not provide the joblib internal {self._qualname!r}"
        )

    __call__ = _fail
    __iter__ = _fail
    __len__ = _fail
    __getitem__ = _fail
    __contains__ = _fail
    __enter__ = _fail
    __mro_entries__ = _fail

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self) -> str:
        return f"<para: missing joblib internal {self._qualname}>"


# Names that tools probe on any module (pytest's hooks, setup functions).
_NOT_INTERNALS = (
    "__",
    "_pytest",
    "collect_ignore",
    "pytest",
    "setup",
    "setUp",
    "teardown",
    "tearDown",
)


def _with_fallback(module: types.ModuleType, public_name: str) -> None:
    """Let ``from joblib.X import internal`` succeed with a placeholder."""
    if getattr(module, "_para_suite_fallback", False):
        return
    real_name = getattr(module, "__name__", "")
    if real_name.startswith(("loky", "cloudpickle")):
        return  # joblib.externals.*: the real packages, complete
    original = module.__dict__.get("__getattr__")

    def __getattr__(name):
        if original is not None:
            try:
                return original(name)
            except AttributeError:
                pass
        if name.startswith(_NOT_INTERNALS):
            raise AttributeError(name)
        return _Missing(f"{public_name}.{name}")

    module.__getattr__ = __getattr__
    module._para_suite_fallback = True


class _PlaceholderLoader(importlib.abc.Loader):
    """A joblib module para does not provide: every name is a placeholder."""

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []  # a package, so that joblib.X.Y resolves too
        _with_fallback(module, spec.name)
        return module

    def exec_module(self, module):
        pass


class _FallbackLoader(importlib.abc.Loader):
    """para's module for joblib.X (from the switch), with placeholders for
    the internal names it lacks."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        module = self.inner.create_module(spec)
        if module is not None:
            _with_fallback(module, spec.name)
        return module

    def exec_module(self, module):
        self.inner.exec_module(module)
        _with_fallback(module, module.__name__)


class _SuiteFinder(importlib.abc.MetaPathFinder):
    """In front of para_joblib's switch: joblib's tests, and placeholders."""

    def __init__(self, tests_root: str | None) -> None:
        self.tests_root = tests_root  # folder holding test/ and testing.py

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("joblib."):
            return None
        rest = fullname[len("joblib.") :]
        if self.tests_root and (
            rest == "testing" or rest == "test" or rest.startswith("test.")
        ):
            return self._test_spec(fullname, rest)
        # Ask the finders behind this one (the switch answers joblib.*).
        for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
            try:
                spec = finder.find_spec(fullname, path, target)
            except ModuleNotFoundError:
                spec = None
            except AttributeError:
                continue
            if spec is not None:
                spec.loader = _FallbackLoader(spec.loader)
                return spec
            break  # the switch is first: it does not provide this module
        return importlib.machinery.ModuleSpec(
            fullname, _PlaceholderLoader(), is_package=True
        )

    def _test_spec(self, fullname, rest):
        parts = rest.split(".")
        base = os.path.join(self.tests_root, *parts)
        if os.path.isdir(base):
            return importlib.util.spec_from_file_location(
                fullname,
                os.path.join(base, "__init__.py"),
                submodule_search_locations=[base],
            )
        if os.path.isfile(base + ".py"):
            return importlib.util.spec_from_file_location(fullname, base + ".py")
        return None


def _install() -> None:
    if any(isinstance(f, _SuiteFinder) for f in sys.meta_path):
        return
    import para_joblib

    # The official switch (PARA_AS_JOBLIB=1 turns it on through the .pth
    # file para-joblib installs; calling it again does nothing).
    para_joblib.install_as_joblib()
    for name, module in list(sys.modules.items()):
        if name.startswith("joblib.") and module is not None:
            _with_fallback(module, name)
    sys.meta_path.insert(0, _SuiteFinder(os.environ.get(_TESTS_ENV)))


_install()
