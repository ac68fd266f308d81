"""The build hook puts the C accelerator in place without harming its users.

An editable install copies the compiled module next to the sources, where
every process of a checkout imports it from. Each environment built in that
checkout (``hatch run test-core:run`` while a test session runs in another)
installs it again. Written into the same file, the new copy changed the code
pages of every process that had the module loaded, and they died of SIGBUS or
SIGSEGV at their next call into it (joblib's test-suite and scikit-learn's
sessions, "where delayed() objects are made or dropped"). These tests run
such a process in a subprocess and install the module under it many times.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

import para_core

pytestmark = pytest.mark.skipif(
    os.name == "nt",
    reason="Windows refuses to replace a file that a process has mapped: "
    "no process can run from a file being rewritten there",
)

_HOOK = Path(__file__).resolve().parents[1] / "hatch_build.py"
_ROUNDS = 300


def _hook():
    spec = importlib.util.spec_from_file_location("para_core_hatch_build", _HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compiled_module() -> Path | None:
    folder = Path(para_core.__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_speedups{suffix}"
        if path.exists():
            return path
    return None


def _install_under(child: str, args: list[str], a: Path, b: Path, target: Path):
    """Run ``child`` while ``a`` and ``b`` are installed in turn at ``target``."""
    place = _hook().place
    stop = target.parent / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(target), str(stop), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        for i in range(_ROUNDS):
            assert place(str(b if i % 2 == 0 else a), str(target))
        stop.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


_READER = textwrap.dedent(
    """
    import mmap, os, sys, zlib
    target, stop, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(target, "rb") as f:
        # MAP_PRIVATE, as the dynamic loader maps a library's code.
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    print("ready", flush=True)
    seen = set()
    while not os.path.exists(stop):
        seen.add(zlib.crc32(view))
    print(sorted(seen) == [expected], flush=True)
    """
)


def test_a_process_mapping_the_installed_file_keeps_its_content(tmp_path):
    a = tmp_path / "a.so"
    b = tmp_path / "b.so"
    a.write_bytes(os.urandom(64 * 1024))
    b.write_bytes(os.urandom(64 * 1024))
    target = tmp_path / "lib" / "_speedups.so"
    target.parent.mkdir()
    target.write_bytes(a.read_bytes())
    expected = zlib.crc32(a.read_bytes())
    code, out, err = _install_under(_READER, [str(expected)], a, b, target)
    # Written in place, the reader saw the other file's bytes, or got SIGBUS
    # while the file was being rewritten.
    assert (code, out) == (0, "True\n"), err[-2000:]
    assert target.read_bytes() == a.read_bytes()
    # Nothing of the copies is left beside the module.
    assert sorted(p.name for p in target.parent.iterdir()) == ["_speedups.so", "stop"]


_CALLER = textwrap.dedent(
    """
    import importlib.machinery, importlib.util, os, sys
    target, stop = sys.argv[1], sys.argv[2]
    loader = importlib.machinery.ExtensionFileLoader("_speedups", target)
    spec = importlib.util.spec_from_file_location("_speedups", target, loader=loader)
    speedups = importlib.util.module_from_spec(spec)
    loader.exec_module(speedups)
    delayed = speedups.Delayer(speedups.DelayedFunction)
    def f(x):
        return x
    print("ready", flush=True)
    while not os.path.exists(stop):
        for i in range(1000):
            assert delayed(f)(i) == (f, (i,), {})
            assert delayed(abs)(i) == (abs, (i,), {})
        delayed.forget()
    print("done", flush=True)
    """
)


def test_a_process_using_the_accelerator_survives_its_reinstallation(tmp_path):
    built = _compiled_module()
    if built is None:
        pytest.skip("the C accelerator was not compiled in this checkout")
    target = tmp_path / "lib" / built.name
    target.parent.mkdir()
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_bytes(built.read_bytes())
    # Another build of the module: bytes after the ELF data are never loaded.
    b.write_bytes(built.read_bytes() + b"another build")
    target.write_bytes(a.read_bytes())
    code, out, err = _install_under(_CALLER, [], a, b, target)
    assert (code, out) == (0, "done\n"), err[-2000:]


def test_an_identical_build_is_left_in_place(tmp_path):
    place = _hook().place
    built = tmp_path / "built.so"
    built.write_bytes(b"\x7fELF same bytes")
    target = tmp_path / "_speedups.so"
    assert place(str(built), str(target))
    inode = target.stat().st_ino
    assert not place(str(built), str(target))
    assert target.stat().st_ino == inode
    assert target.read_bytes() == built.read_bytes()
    built.write_bytes(b"\x7fELF other bytes")
    assert place(str(built), str(target))
    assert target.read_bytes() == b"\x7fELF other bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_speedups.so", "built.so"]
