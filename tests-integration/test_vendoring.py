"""Each package still works when copied into another library's ``_vendor/``.

A package that used an absolute import of itself (``from para_persist._x``)
would silently pick the installed copy instead of the vendored one: the
scripts below check that the top-level name never shows up in ``sys.modules``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[1] / "packages"

# What each vendored package is asked to do, as ``m`` (the vendored module).
USES = {
    "para_persist": """
        path = os.path.join(tmp, "obj.pkl")
        written = m.dump({"a": [1, 2.5, "x"], "b": (None, True)}, path)
        assert written == [path], written
        assert m.load(path) == {"a": [1, 2.5, "x"], "b": (None, True)}
    """,
    "para_core": """
        out = m.Parallel(n_jobs=2, backend="threading")(
            m.delayed(abs)(-i) for i in range(20))
        assert out == list(range(20)), out
        out = m.Parallel(n_jobs=2)(m.delayed(pow)(i, 2) for i in range(20))
        assert out == [i * i for i in range(20)], out
    """,
    "para_cache": """
        calls = []
        def square(x):
            calls.append(x)
            return x * x
        memory = m.Memory(os.path.join(tmp, "cache"), verbose=0)
        cached = memory.cache(square)
        assert [cached(3), cached(3), cached(4)] == [9, 9, 16]
        assert calls == [3, 4], calls
    """,
    "para_memmap": """
        a = m.empty((1000,), dtype="float64")
        a[:] = 1.0
        assert a.sum() == 1000.0
        assert m.has_shareable_memory(a)
    """,
}


def _vendor(import_name: str, root: Path) -> None:
    vendor = root / "somelib" / "_vendor"
    vendor.mkdir(parents=True)
    (root / "somelib" / "__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    shutil.copytree(
        PACKAGES / import_name.replace("_", "-") / "src" / import_name,
        vendor / import_name,
        ignore=shutil.ignore_patterns("__pycache__"),
    )


@pytest.mark.parametrize("import_name", sorted(USES))
def test_package_works_from_a_vendor_folder(import_name, tmp_path):
    _vendor(import_name, tmp_path)
    script = textwrap.dedent(
        """
        import os, sys
        tmp = sys.argv[1]
        sys.path.insert(0, tmp)
        import importlib
        m = importlib.import_module("somelib._vendor.{name}")
        assert m.__file__.startswith(tmp), m.__file__
        {use}
        assert "{name}" not in sys.modules, "vendored copy imported the installed one"
        print("vendored {name} OK")
        """
    ).format(name=import_name, use=textwrap.dedent(USES[import_name]))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"vendored {import_name} OK" in proc.stdout
