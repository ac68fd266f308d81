"""Hand-written hostile pickles for ``load(..., trusted=False)``.

Each payload names what it does when plain ``pickle.loads`` runs it
(``harm``): ``file:NAME`` creates NAME in the working directory,
``change:NAME`` changes the file NAME that the harness put there, ``gone:NAME``
removes it, ``crash`` kills the process (an object array whose item pointers
come from the file, a dtype that reads out of bounds), ``probe:EXPR`` leaves
the process changed (EXPR true afterwards). ``test_adversarial`` checks that
the harm is real under ``pickle.loads`` and that para's safe load refuses
each payload, touches no file and does not crash.

Run as a script (``python adversarial.py run|harm|fickling ...``) it is the
child process of those checks.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import time
import zlib
from dataclasses import dataclass

# -- a tiny pickle assembler ---------------------------------------------------
MARK, STOP, TUPLE, REDUCE, BUILD = b"(", b".", b"t", b"R", b"b"
EMPTY_DICT, EMPTY_LIST, SETITEM, SETITEMS = b"}", b"]", b"s", b"u"
APPEND, APPENDS, NONE, TRUE, FALSE = b"a", b"e", b"N", b"\x88", b"\x89"
NEWOBJ, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE = b"\x81", b"\x92", b"\x93", b"\x94"
EMPTY_SET, ADDITEMS, EMPTY_TUPLE = b"\x8f", b"\x90", b")"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def u(text: str) -> bytes:
    """BINUNICODE (protocol >= 1)."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def i(n: int) -> bytes:
    """An int: BININT for 32 bits, LONG1 beyond."""
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def by(raw: bytes) -> bytes:
    """BINBYTES (protocol >= 3)."""
    return b"B" + struct.pack("<I", len(raw)) + raw


def t(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def g(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 spelling, valid in every protocol)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol >= 4)."""
    return u(module) + u(name) + STACK_GLOBAL


def call(func: bytes, *args: bytes) -> bytes:
    return func + t(*args) + REDUCE


def d(*pairs: tuple[bytes, bytes]) -> bytes:
    return EMPTY_DICT + MARK + b"".join(k + v for k, v in pairs) + SETITEMS


def dtype(code: str, state: bytes | None = None, glob=g) -> bytes:
    out = call(glob("numpy", "dtype"), u(code), FALSE, TRUE)
    return out + (state + BUILD if state else b"")


def struct_state(fields: list[tuple[str, bytes, int]], size: int, flags: int) -> bytes:
    """A dtype state (version 3) with the given fields, size and flags."""
    names = t(*(u(n) for n, _, _ in fields))
    body = d(*((u(n), t(dt, i(off))) for n, dt, off in fields))
    return t(i(3), u("|"), NONE, names, body, i(size), i(1), i(flags))


def reconstruct(cls: bytes, glob=g) -> bytes:
    core = "numpy._core.multiarray"
    return call(glob(core, "_reconstruct"), cls, t(i(0)), by(b"b"))


def array_state(shape: tuple[int, ...], dt: bytes, data: bytes) -> bytes:
    return t(i(1), t(*(i(n) for n in shape)), dt, FALSE, data)


# -- the payloads --------------------------------------------------------------
@dataclass
class Payload:
    name: str
    data: bytes
    harm: str
    allowed: tuple[str, ...] = ()
    ext: tuple[str, str, int] | None = None  # copyreg extension to register
    note: str = ""
    harm_data: bytes | None = None  # what pickle.loads runs, if not data


FORGED_OBJ_FIELD = struct_state([("a", dtype("O8"), 0)], 8, 0)  # hasobject lie
OOB_FIELD = struct_state([("a", dtype("f8"), 2**40)], 8, 0)
OVERLAP = struct_state([("a", dtype("i8"), 0), ("b", dtype("O8"), 0)], 8, 63)


def _evil_pickle(marker: str, protocol: int = 2) -> bytes:
    class Touch:
        def __reduce__(self):
            return (open, (marker, "w"))

    return pickle.dumps(Touch(), protocol=protocol)


def _reduce_payloads() -> list[Payload]:
    out = []
    for p in range(6):  # plain REDUCE of os.system, every protocol

        class Evil:
            def __reduce__(self, p=p):
                return (os.system, (f"touch PWNED_reduce{p}",))

        out.append(Payload(f"p{p}-reduce-os.system", pickle.dumps(Evil(), p),
                           f"file:PWNED_reduce{p}"))  # fmt: skip
    return out


def payloads() -> list[Payload]:
    mm = "numpy._core.memmap"
    nested = _evil_pickle("PWNED_nested")
    p = [
        *_reduce_payloads(),
        # --- protocol 0: GLOBAL/INST/OBJ spellings
        Payload("p0-eval", b"cbuiltins\neval\n(S'open(\"PWNED_eval\", \"w\")'\ntR.",
                "file:PWNED_eval"),
        Payload("p0-INST-os.system", b"(S'touch PWNED_inst'\nios\nsystem\n.",
                "file:PWNED_inst"),
        Payload("p0-OBJ-os.system", b"(cos\nsystem\nS'touch PWNED_obj'\no.",
                "file:PWNED_obj"),
        Payload("p0-py2-name-__builtin__.open",
                b"c__builtin__\nopen\n(S'PWNED_py2'\nS'w'\ntR.", "file:PWNED_py2"),
        Payload("p0-INST-subprocess.Popen",
                b"((S'touch'\nS'PWNED_popen'\nlisubprocess\nPopen\n.",
                "file:PWNED_popen"),
        # --- protocol 1/2: builtins and friends
        Payload("p1-builtins.open", b"cbuiltins\nopen\n" + t(u("PWNED_open"), u("w"))
                + REDUCE + STOP, "file:PWNED_open"),
        Payload("p2-__import__-then-getattr",
                proto(2) + call(g("builtins", "getattr"),
                                call(g("builtins", "__import__"), u("os")),
                                u("system")) + t(u("touch PWNED_getattr")) + REDUCE
                + STOP, "file:PWNED_getattr"),
        Payload("p2-exec", proto(2) + call(g("builtins", "exec"),
                u("open('PWNED_exec', 'w')")) + STOP, "file:PWNED_exec"),
        Payload("p2-shutil.rmtree", proto(2) + call(g("shutil", "rmtree"),
                u("victim_dir")) + STOP, "gone:victim_dir"),
        Payload("p2-os.remove", proto(2) + call(g("os", "remove"), u("victim.bin"))
                + STOP, "gone:victim.bin"),
        Payload("p4-pathlib-Path.touch", proto(4) + call(g("pathlib", "Path.touch"),
                call(g("pathlib", "Path"), u("PWNED_path"))) + STOP,
                "file:PWNED_path"),
        Payload("p2-SETITEM-os.environ", proto(2) + g("os", "environ") + u("PWNED")
                + u("1") + SETITEM + STOP,
                "probe:__import__('os').environ.get('PWNED') == '1'"),
        Payload("p2-APPENDS-sys.path", proto(2) + g("sys", "path") + MARK
                + u("/PWNED") + APPENDS + STOP,
                "probe:'/PWNED' in __import__('sys').path"),
        Payload("p2-BUILD-on-a-class", proto(2) + g("logging", "Logger")
                + t(NONE, d((u("PWNED"), TRUE))) + BUILD + STOP,
                "probe:getattr(__import__('logging').Logger, 'PWNED', False)",
                allowed=("logging.Logger",),
                note="the class is admitted, BUILD on the class object is not"),
        Payload("p2-nested-pickle.loads", proto(2) + call(g("pickle", "loads"),
                call(g("_codecs", "encode"), u(nested.decode("latin1")),
                     u("latin1"))) + STOP, "file:PWNED_nested"),
        Payload("p2-EXT1-os.system", proto(2) + b"\x82\xf0"
                + t(u("touch PWNED_ext1")) + REDUCE + STOP, "file:PWNED_ext1",
                ext=("os", "system", 0xF0)),
        Payload("p2-EXT2-builtins.open", proto(2) + b"\x83\x34\x12"
                + t(u("PWNED_ext2"), u("w")) + REDUCE + STOP, "file:PWNED_ext2",
                ext=("builtins", "open", 0x1234)),
        Payload("p2-EXT4-builtins.exec", proto(2) + b"\x84\x78\x56\x34\x02"
                + t(u("open('PWNED_ext4', 'w')")) + REDUCE + STOP,
                "file:PWNED_ext4", ext=("builtins", "exec", 0x02345678)),
        Payload("p2-reconstructor-Popen", proto(2)
                + call(g("copyreg", "_reconstructor"), g("subprocess", "Popen"),
                       g("subprocess", "Popen"), t(u("touch"), u("PWNED_rc")))
                + STOP, "file:PWNED_rc",
                note="copyreg._reconstructor is admitted; Popen as its class is not"),
        # --- protocol 3/4: STACK_GLOBAL and memo tricks
        Payload("p4-STACK_GLOBAL-memo", proto(4) + u("posix") + MEMOIZE
                + u("system") + MEMOIZE + b"h\x00h\x01" + STACK_GLOBAL
                + t(u("touch PWNED_memo")) + REDUCE + STOP, "file:PWNED_memo"),
        Payload("p4-STACK_GLOBAL-dotted-ndarray.__new__", proto(4)
                + call(sg("numpy", "ndarray.__new__"), sg("numpy", "ndarray"),
                       t(i(1)), dtype("O8", glob=sg), by(b"A" * 8)) + STOP,
                "crash"),
        Payload("p4-memo-swap-admitted-name", proto(4) + u("numpy") + MEMOIZE
                + u("dtype") + MEMOIZE + b"h\x00" + u("load") + STACK_GLOBAL
                + t(u("evil.npy"), NONE, TRUE) + REDUCE + STOP, "file:PWNED_npy",
                note="numpy.load through memoized module name"),
        Payload("p3-persistent-id", proto(3) + u("victim.bin") + b"Q" + STOP,
                "none", note="plain pickle has no persistent_load: no harm"),
        Payload("p3-SETITEMS-on-os.environ", proto(3) + g("os", "environ") + MARK
                + u("PWNED2") + u("1") + SETITEMS + STOP,
                "probe:__import__('os').environ.get('PWNED2') == '1'"),
        Payload("p4-ADDITEMS-on-a-Maildir", proto(4) + call(sg("mailbox",
                "Maildir"), u("PWNED_maildir")) + MARK + u("From: x\n\nbody")
                + ADDITEMS + STOP, "file:PWNED_maildir/new",
                note="ADDITEMS calls .add of a non-set: writes a message file"),
        Payload("p1-INST-numpy.memmap", b"(S'PWNED_inst_mm'\nS'uint8'\nS'w+'\n"
                b"I0\n(I4\ntinumpy\nmemmap\n.", "file:PWNED_inst_mm",
                note="numpy.memmap is an admitted name, never a callable"),
        # --- numpy: memmap writes
        Payload("p2-memmap-w+", proto(2) + call(g("numpy", "memmap"),
                u("PWNED_mm"), u("uint8"), u("w+"), i(0), t(i(8))) + STOP,
                "file:PWNED_mm"),
        Payload("p2-memmap-module-path-w+", proto(2) + call(g("numpy._core.memmap",
                "memmap"), u("victim.bin"), u("uint8"), u("w+"), i(0), t(i(2)))
                + STOP, "change:victim.bin"),
        Payload("p3-memmap-r+-SETITEMS", proto(3) + call(g(mm, "memmap"),
                u("victim.bin"), u("uint8"), u("r+")) + MARK + i(0) + i(65)
                + i(1) + i(66) + SETITEMS + STOP, "change:victim.bin"),
        Payload("p3-memmap-r+-SETITEM", proto(3) + call(g("numpy", "memmap"),
                u("victim.bin"), u("uint8"), u("r+")) + i(3) + i(67) + SETITEM
                + STOP, "change:victim.bin"),
        Payload("p4-memmap-NEWOBJ", proto(4) + sg("numpy", "memmap")
                + t(u("PWNED_newobj"), u("uint8"), u("w+"), i(0), t(i(4)))
                + NEWOBJ + STOP, "file:PWNED_newobj"),
        Payload("p4-memmap-NEWOBJ_EX", proto(4) + sg("numpy", "memmap")
                + t(u("PWNED_newobjex")) + d((u("mode"), u("w+")),
                (u("shape"), t(i(4)))) + NEWOBJ_EX + STOP, "file:PWNED_newobjex"),
        Payload("p5-open_memmap", proto(5) + call(sg("numpy.lib.format",
                "open_memmap"), u("PWNED_om.npy"), u("w+"), dtype("f8", glob=sg),
                t(i(2))) + STOP, "file:PWNED_om.npy"),
        Payload("p5-numpy.save", proto(5) + call(sg("numpy", "save"), u("PWNED_s"),
                call(sg("numpy", "arange"), i(3))) + STOP, "file:PWNED_s.npy"),
        Payload("p3-numpy.load-allow_pickle", proto(3) + call(g("numpy", "load"),
                u("evil.npy"), NONE, TRUE) + STOP, "file:PWNED_npy"),
        Payload("p3-numpy.testing-runstring", proto(3) + call(
                g("numpy.testing._private.utils", "runstring"),
                u("open('PWNED_rs', 'w')"), EMPTY_DICT) + STOP, "file:PWNED_rs"),
        Payload("p3-numpy.f2py-myeval", proto(3) + call(
                g("numpy.f2py.crackfortran", "myeval"),
                u("open('PWNED_f2py', 'w') and 1")) + STOP, "file:PWNED_f2py"),
        # --- numpy: arrays whose object items come from raw bytes
        Payload("p3-ndarray-object-buffer", proto(3) + call(g("numpy", "ndarray"),
                t(i(1)), dtype("O8"), by(b"A" * 8)) + STOP, "crash"),
        Payload("p3-ndarray-struct-object-buffer", proto(3) + call(
                g("numpy", "ndarray"), t(i(1)),
                dtype("V8", struct_state([("o", dtype("O8"), 0)], 8, 63)),
                by(b"A" * 8)) + STOP, "crash"),
        Payload("p3-ndarray-nested-struct-object-buffer", proto(3) + call(
                g("numpy", "ndarray"), t(i(1)), dtype("V8", struct_state(
                    [("s", dtype("V8", struct_state([("o", dtype("O8"), 0)], 8,
                                                     63)), 0)], 8, 63)),
                by(b"A" * 8)) + STOP, "crash"),
        Payload("p3-recarray-object-buffer", proto(3) + call(
                g("numpy", "recarray"), t(i(1)),
                dtype("V8", struct_state([("o", dtype("O8"), 0)], 8, 63)),
                by(b"A" * 8)) + STOP, "crash", note="ndarray subclass"),
        Payload("p3-ndarray-NEWOBJ-object-buffer", proto(3) + g("numpy", "ndarray")
                + t(t(i(1)), dtype("O8"), by(b"A" * 8)) + NEWOBJ + STOP, "crash"),
        Payload("p4-recarray-NEWOBJ_EX-buf", proto(4) + sg("numpy", "recarray")
                + t(t(i(1)), dtype("V8", struct_state([("o", dtype("O8"), 0)], 8,
                                                      63)))
                + d((u("buf"), by(b"A" * 8))) + NEWOBJ_EX + STOP, "crash"),
        Payload("p3-OBJ-ndarray-object-buffer", proto(3) + MARK
                + g("numpy", "ndarray") + t(i(1)) + dtype("O8") + by(b"A" * 8)
                + b"o" + STOP, "crash"),
        Payload("p3-frombuffer-forged-hasobject", proto(3) + call(
                g("numpy._core.numeric", "_frombuffer"), by(b"A" * 8),
                dtype("V8", FORGED_OBJ_FIELD), t(i(1)), u("C")) + STOP, "crash"),
        Payload("p3-scalar-forged-hasobject", proto(3) + call(
                g("numpy._core.multiarray", "scalar"),
                dtype("V8", FORGED_OBJ_FIELD), by(b"A" * 8)) + STOP, "crash"),
        Payload("p3-reconstruct-state-forged-hasobject", proto(3)
                + reconstruct(g("numpy", "ndarray"))
                + array_state((1,), dtype("V8", FORGED_OBJ_FIELD), by(b"A" * 8))
                + BUILD + STOP, "crash"),
        Payload("p3-reconstruct-short-object-list", proto(3)
                + reconstruct(g("numpy", "ndarray"))
                + array_state((5,), dtype("O8"), EMPTY_LIST + i(1) + APPEND)
                + BUILD + STOP, "crash"),
        Payload("p3-reconstruct-overlapping-object-field", proto(3)
                + reconstruct(g("numpy", "ndarray"))
                + array_state((1,), dtype("V8", OVERLAP),
                              EMPTY_LIST + t(i(0x41414141), NONE) + APPEND)
                + BUILD + STOP, "crash"),
        Payload("p3-frombuffer-out-of-bounds-field", proto(3) + call(
                g("numpy._core.numeric", "_frombuffer"), by(b"A" * 8),
                dtype("V8", OOB_FIELD), t(i(1)), u("C")) + STOP, "crash"),
        Payload("p4-dtype-changed-after-use", proto(4) + EMPTY_LIST + MEMOIZE
                + dtype("V8", glob=sg) + MEMOIZE + b"0"
                + reconstruct(sg("numpy", "ndarray"), glob=sg)
                + array_state((1,), b"h\x01", by(b"A" * 8)) + BUILD + APPEND
                + b"h\x01" + FORGED_OBJ_FIELD + BUILD + b"0" + STOP, "crash",
                note="BUILD on a dtype an array already uses"),
        Payload("p2-joblib-object-placeholder-nested-pickle", proto(2)
                + g("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE
                + NEWOBJ + d((u("subclass"), g("numpy", "ndarray")),
                             (u("shape"), t(i(1))), (u("order"), u("C")),
                             (u("dtype"), dtype("O8")),
                             (u("allow_mmap"), FALSE))
                + BUILD + _evil_pickle("PWNED_placeholder") + STOP,
                "file:PWNED_placeholder", harm_data=_evil_pickle("PWNED_placeholder"),
                note="joblib's object-array layout: the nested pickle after the "
                "placeholder is read as the array; here it is evil"),
    ]  # fmt: skip
    return p


# -- file wrappings ------------------------------------------------------------
def as_para(data: bytes) -> bytes:
    """``data`` (a whole pickle) laid out as a para file without arrays."""
    from para_persist import _pickler

    return _pickler.wrap_pickle(data)


def wrappings(data: bytes) -> dict[str, bytes]:
    return {
        "joblib": data,  # joblib's uncompressed format is the pickle itself
        "joblib-zlib": zlib.compress(data, 3),
        "para": as_para(data),
    }


# -- child processes -----------------------------------------------------------
def _victims(folder: str) -> None:
    with open(os.path.join(folder, "victim.bin"), "wb") as f:
        f.write(b"v" * 16)
    os.makedirs(os.path.join(folder, "victim_dir"), exist_ok=True)
    with open(os.path.join(folder, "victim_dir", "keep"), "w") as f:
        f.write("keep")
    # A .npy holding an object array whose pickle creates PWNED_npy.
    body = _evil_pickle("PWNED_npy")
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - len(header) - 10) + "\n"
    with open(os.path.join(folder, "evil.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        f.write(header.encode() + body)


def snapshot(folder: str) -> dict[str, tuple]:
    """Every file and folder under ``folder``: size, mtime and content."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            content = b""
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    content = f.read()
            out[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns, content)
    return out


def _register(p: Payload) -> None:
    if p.ext is not None:
        import copyreg

        copyreg.add_extension(*p.ext)


def harmed(p: Payload, folder: str, before: dict) -> bool:
    kind, _, arg = p.harm.partition(":")
    if kind == "file":
        for _ in range(40):  # a started process (Popen) may be late
            if os.path.exists(os.path.join(folder, arg)):
                return True
            time.sleep(0.05)
        return False
    if kind == "gone":
        return not os.path.exists(os.path.join(folder, arg))
    if kind == "change":
        return snapshot(folder).get(arg) != before.get(arg)
    if kind == "probe":
        return bool(eval(arg))  # the harness's own expression
    return False


def _child_harm(names: list[str], work: str) -> None:
    """Run payloads under plain pickle.loads; print which did harm."""
    by_name = {p.name: p for p in payloads()}
    for name in names:
        p = by_name[name]
        folder = os.path.join(work, f"harm-{len(os.listdir(work))}")
        os.makedirs(folder)
        _victims(folder)
        before = snapshot(folder)
        os.chdir(folder)
        _register(p)
        error = None
        try:
            value = pickle.loads(p.harm_data or p.data)
            repr(value)  # use it: forged object pointers crash here
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        print(json.dumps({"name": name, "harmed": harmed(p, folder, before),
                          "error": error}), flush=True)  # fmt: skip


def _child_run(files_dir: str, work: str) -> None:
    """Safe-load every file of ``files_dir`` with cwd ``work``; print results."""
    import para_persist

    by_name = {p.name: p for p in payloads()}
    os.chdir(work)
    for fname in sorted(os.listdir(files_dir)):
        name, _, wrapping = fname.rpartition("@")
        p = by_name[name]
        _register(p)
        try:
            value = para_persist.load(
                os.path.join(files_dir, fname), trusted=False,
                allowed_globals=p.allowed,
            )  # fmt: skip
            outcome = {"loaded": repr(value)[:200]}
        except Exception as exc:
            outcome = {"error": type(exc).__name__, "message": str(exc)[:300]}
        if p.ext is not None:
            import copyreg

            copyreg.remove_extension(*p.ext)
        print(json.dumps({"name": name, "wrapping": wrapping, **outcome}),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "harm":
        _child_harm(sys.argv[3:], sys.argv[2])
    elif sys.argv[1] == "run":
        _child_run(sys.argv[2], sys.argv[3])
