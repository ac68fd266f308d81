"""The packages' docstring examples run, as the docs' doctest build runs them.

The API reference autodocs every public name of the four packages and
``sphinx-build -b doctest`` executes their ``Examples`` sections with the
package's public names and ``np`` in scope. This runs the same examples here,
so that a broken one shows up in the test suite, naming the object.
"""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

PACKAGES = ["para_core", "para_memmap", "para_persist", "para_cache"]


def _objects():
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            yield package, name


@pytest.mark.parametrize(("package", "name"), list(_objects()))
def test_docstring_examples_pass(package, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(package)
    obj = getattr(module, name)
    globs = {"np": np, **{n: getattr(module, n) for n in module.__all__}}
    finder = doctest.DocTestFinder(exclude_empty=True)
    # The flags sphinx.ext.doctest uses by default.
    flags = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL
    runner = doctest.DocTestRunner(optionflags=flags | doctest.DONT_ACCEPT_TRUE_FOR_1)
    try:
        tests = finder.find(obj, f"{package}.{name}", globs=globs)
    except ValueError:  # objects without source (e.g. constants)
        tests = []
    failures = []
    for test in tests:
        out: list[str] = []
        result = runner.run(test, out=out.append)
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)
