"""Hostile pickles (``adversarial.py``) against ``load(..., trusted=False)``.

For every payload, in three wrappings (joblib's plain and zlib formats, a
para file with a valid index and checksum): the safe load raises
UnsafeLoadError or CorruptFileError, creates or changes no file (in its
working directory or beside the loaded files) and does not crash; and the
same payload does the harm it is written for under plain ``pickle.loads``,
so that the refusal is shown to matter. Payloads run in child processes
(a crash must not take pytest down), many per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("numpy")

import adversarial

HERE = Path(__file__).resolve().parent
PAYLOADS = adversarial.payloads()


def _child(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-W", "ignore", str(HERE / "adversarial.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _strays() -> set[str]:
    places = [Path.cwd(), Path(tempfile.gettempdir()), Path.home()]
    return {str(p) for place in places for p in place.glob("PWNED*")}


@pytest.fixture(scope="module")
def safe_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    files, work = root / "files", root / "work"
    files.mkdir()
    work.mkdir()
    for p in PAYLOADS:
        for wrapping, data in adversarial.wrappings(p.data).items():
            (files / f"{p.name}@{wrapping}").write_bytes(data)
    adversarial._victims(str(work))
    before = (adversarial.snapshot(str(files)), adversarial.snapshot(str(work)))
    strays = _strays()
    proc = _child(["run", str(files), str(work)], work)
    after = (adversarial.snapshot(str(files)), adversarial.snapshot(str(work)))
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc, results, before, after, _strays() - strays, len(os.listdir(files))


def test_there_are_enough_distinct_payloads():
    names = [p.name for p in PAYLOADS]
    assert len(names) == len(set(names))
    assert len(PAYLOADS) >= 40
    # Named "p<protocol>-...": every protocol is there.
    assert {p.name[:3] for p in PAYLOADS} == {f"p{n}-" for n in range(6)}
    for p in PAYLOADS:
        if p.data[:1] == b"\x80":
            assert p.data[1] == int(p.name[1]), p.name


def test_safe_load_never_crashes(safe_run):
    proc, results, *_, n_files = safe_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(results) == n_files


def test_safe_load_refuses_every_payload(safe_run):
    _, results, *_ = safe_run
    wrong = [
        r
        for r in results
        if r.get("error") not in ("UnsafeLoadError", "CorruptFileError")
    ]
    assert not wrong, json.dumps(wrong, indent=1)


def test_refused_globals_and_calls_say_what_and_how(safe_run):
    _, results, *_ = safe_run
    for r in results:
        if r.get("error") == "UnsafeLoadError" and r["message"].startswith(
            ("refused to load global", "refused call of")
        ):
            # The refused global or callable is named, with the way to admit it.
            assert "allowed_globals=['" in r["message"], r


def test_safe_load_touches_no_file(safe_run):
    _, _, before, after, strays, _ = safe_run
    assert after[0] == before[0], "a loaded file changed"
    assert after[1] == before[1], "the working directory changed"
    assert not strays


def test_each_payload_does_harm_under_plain_pickle(tmp_path):
    crashing = [p.name for p in PAYLOADS if p.harm == "crash"]
    others = [p.name for p in PAYLOADS if p.harm not in ("crash", "none")]
    proc = _child(["harm", str(tmp_path), *others], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert sorted(done) == sorted(others)
    harmless = [r for r in done.values() if not r["harmed"]]
    assert not harmless, json.dumps(harmless, indent=1)
    for name in crashing:
        proc = _child(["harm", str(tmp_path), name], tmp_path)
        assert proc.returncode < 0, f"{name} did not crash plain pickle: {proc}"
    # The only payload that plain pickle cannot be hurt by, and why.
    assert [p.name for p in PAYLOADS if p.harm == "none"] == ["p3-persistent-id"]
