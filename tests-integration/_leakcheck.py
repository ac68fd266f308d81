"""Helpers to find what our processes left in /dev/shm and the temp folder."""

from __future__ import annotations

from pathlib import Path

import psutil

SHM = Path("/dev/shm")


# The pip-installed joblib (differential tests) keeps its executor's
# memmapping folder until the interpreter exits, by design: the session check
# leaves those to joblib, and test_leaks.py checks para in fresh processes.
# Likewise loky's named semaphores (``sem.loky-<pid>-*``) stay until loky's
# resource tracker unlinks them at exit, e.g. after a timeout replaced the
# executor. ``ignore_joblib=False`` (test_leaks.py, after exit) checks both.
_JOBLIB_FOLDER = "joblib_memmapping_folder_"
_LOKY_SEMAPHORE = "sem.loky-"


def _our_entries(folder: Path, pids: set[int], ignore_joblib: bool = True) -> set[str]:
    # Other jobs share /dev/shm and /tmp with us: only entries whose name
    # carries one of our process ids are ours (joblib and para-memmap both
    # name their folders after the creating process).
    if not folder.is_dir():
        return set()
    names = set()
    for entry in folder.iterdir():
        if ignore_joblib and entry.name.startswith((_JOBLIB_FOLDER, _LOKY_SEMAPHORE)):
            continue
        if any(f"_{pid}_" in entry.name or f"-{pid}-" in entry.name for pid in pids):
            names.add(entry.name)
    return names


def _descendants() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def _is_helper(proc: psutil.Process) -> bool:
    # Resource trackers (multiprocessing's, loky's, joblib's) and
    # para-memmap's watchdog (a ``python -c`` reading its stdin pipe) live for
    # the whole interpreter by design and exit with it: not leaks.
    # test_leaks.py checks that they do exit with their parent.
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return True
    return "resource_tracker" in cmdline or "for line in sys.stdin.buffer" in cmdline


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            out.append(f"{proc.pid}: (gone)")
    return out
