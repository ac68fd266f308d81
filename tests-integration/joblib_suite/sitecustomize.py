"""Test-only stand-in: every ``import joblib`` of this process resolves to para.

Put on ``PYTHONPATH`` by the joblib-suite runner (``run_suite.py``), so that it
applies in the pytest process and in every worker process it starts. It maps:

- ``joblib`` and ``joblib.X`` to ``para_joblib`` and ``para_joblib.X``;
- ``joblib.test`` / ``joblib.test.*`` / ``joblib.testing`` to the copy of
  joblib's test package that the runner made in a temporary folder (the tests
  under examination and their pytest helpers, not the library under test);
- a joblib internal that para does not provide to a placeholder that fails
  loudly when a test uses it (``ParaMissingInternal``), so that one missing
  internal name fails the tests that use it instead of every test of the file.

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


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str | None) -> None:
        self.target = target

    def create_module(self, spec):
        if self.target is None:
            module = types.ModuleType(spec.name)
            module.__path__ = []  # a package, so that joblib.X.Y resolves too
        else:
            module = importlib.import_module(self.target)
        if spec.name != "joblib":  # the top level is joblib's public face
            _with_fallback(module, spec.name)
        return module

    def exec_module(self, module):
        pass


class _JoblibToPara(importlib.abc.MetaPathFinder):
    def __init__(self, tests_root: str | None) -> None:
        self.tests_root = tests_root  # folder holding test/ and testing.py

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "joblib" and not fullname.startswith("joblib."):
            return None
        rest = fullname[len("joblib") :].lstrip(".")
        if self.tests_root and (
            rest == "testing" or rest == "test" or rest.startswith("test.")
        ):
            return self._test_spec(fullname, rest)
        target = "para_joblib" + (f".{rest}" if rest else "")
        try:
            found = importlib.util.find_spec(target)
        except ModuleNotFoundError:
            found = None
        is_pkg = True
        if found is None:
            target = None
        else:
            is_pkg = found.submodule_search_locations is not None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(target), is_package=is_pkg
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
    if any(isinstance(f, _JoblibToPara) for f in sys.meta_path):
        return
    if "joblib" in sys.modules:
        raise RuntimeError("the real joblib was imported before the para alias")
    sys.meta_path.insert(0, _JoblibToPara(os.environ.get(_TESTS_ENV)))


_install()
