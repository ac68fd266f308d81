"""Turn the packages' benchmark results into the PNGs of the benchmarks page.

Data flow::

    packages/<pkg>/benchmarks/bench_<name>.py --json docs/benchmarks/results/<name>.json
        -> docs/benchmarks/results/*.json     (committed)
        -> python docs/make_plots.py
        -> docs/_static/bench/<name>-<workload>.png   one bar chart per workload
           docs/_static/bench/plots.inc               the reST the page includes

A result file holds a list of records (or ``{"results": [...]}``), each with a
workload name, para's and joblib's time in seconds, and optionally the
operation (records of one workload with several operations, e.g. dump and
load, share one figure), the baseline when it is not joblib (e.g. numpy), the
file sizes, and the issue's target as the smallest joblib/para ratio. Unknown
or incomplete records are skipped with a message rather than failing the docs
build.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "benchmarks" / "results"
OUT = HERE / "_static" / "bench"

# Accepted spellings of each field across the bench scripts.
_FIELDS = {
    "workload": ("workload", "name", "case"),
    "para": ("para_s", "para", "para_time", "para_seconds"),
    "joblib": ("joblib_s", "joblib", "joblib_time", "joblib_seconds"),
    "unit": ("unit",),
    "higher_is_better": ("higher_is_better",),
    "met": ("met",),
    "ratio": ("ratio", "speedup"),
    "target": ("target", "goal"),
    "op": ("op", "operation"),
    "baseline": ("baseline",),
    "para_bytes": ("para_bytes",),
    "joblib_bytes": ("joblib_bytes",),
}


def _field(record: dict, key: str):
    for spelling in _FIELDS[key]:
        if record.get(spelling) is not None:
            return record[spelling]
    return None


def _records(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("results", data.get("workloads", []))
    if not isinstance(data, list):
        return []
    records = []
    for raw in data:
        if not isinstance(raw, dict):
            continue
        record = {key: _field(raw, key) for key in _FIELDS}
        if record["joblib"] is None:
            # Compared with something else than joblib, e.g. ``core_alone_s``.
            for key, value in raw.items():
                if key.endswith("_s") and key != "para_s" and _is_value(value):
                    record["joblib"] = value
                    record["baseline"] = key[:-2].replace("_", " ")
                    break
        para, joblib = record["para"], record["joblib"]
        if record["workload"] is None or not _is_value(para) or not _is_value(joblib):
            print(f"{path.name}: skipping incomplete record {raw!r}", file=sys.stderr)
            continue
        records.append(record)
    return records


def _is_value(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:80] or "workload"


def _plot(records: list[dict], suite: str, png: Path) -> None:
    """One figure per workload: one row of bars per operation (dump, load...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(records), 1, figsize=(6.4, 0.6 + 1.7 * len(records)), dpi=100, squeeze=False
    )
    for ax, record in zip(axes[:, 0], records):
        _bars(ax, record)
    fig.suptitle(f"{suite}: {records[0]['workload']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, metadata={"Software": None})
    plt.close(fig)


# Units the bench scripts use for times, as factors to seconds.
_TIME_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6}


def _bars(ax, record: dict) -> None:
    para, other = float(record["para"]), float(record["joblib"])
    other_label = str(record["baseline"] or "joblib")
    higher_is_better = bool(record["higher_is_better"])
    to_seconds = _TIME_UNITS.get(record["unit"])
    if to_seconds is not None:
        para, other = para * to_seconds, other * to_seconds
        unit, scale = _unit(max(other, para))
        labels = [_format_s(other), _format_s(para)]
    else:  # a rate, a speed-up or a size: plot as given
        unit, scale = str(record["unit"]), 1.0
        labels = [f"{other:.4g}", f"{para:.4g}"]
    bars = ax.barh(
        [other_label, "para"],
        [other * scale, para * scale],
        color=["#9e9e9e", "#1f77b4"],
    )
    ax.bar_label(bars, labels=labels, padding=3)
    better = "higher" if higher_is_better else "lower"
    ax.set_xlabel(f"{unit} ({better} is better)", fontsize=8)
    ax.set_xlim(0, max(other, para) * scale * 1.3 or 1.0)

    ratio = record["ratio"]
    if not _is_value(ratio):
        ratio = (para / other if higher_is_better else other / para) if para else 0.0
    title = f"ratio {ratio:.2f}x"
    if record["op"]:
        title = f"{record['op']}: {title}"
    target, met = record["target"], record["met"]
    if isinstance(target, int | float) and not isinstance(target, bool):
        # Numeric targets are the smallest acceptable ratio.
        met = ratio >= target if met is None else met
        title += f"   (target \u2265 {target:g}x"
    elif target not in (None, ""):
        title += f"   (target {target}"
    if target not in (None, ""):
        title += ")" if met is None else f": {'met' if met else 'missed'})"
    if record["para_bytes"] and record["joblib_bytes"]:
        title += (
            f"\nfile size: para {record['para_bytes'] / 1e6:.2f} MB, "
            f"{other_label} {record['joblib_bytes'] / 1e6:.2f} MB"
        )
    ax.set_title(title, fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _unit(seconds: float) -> tuple[str, float]:
    if seconds >= 1:
        return "seconds", 1.0
    if seconds >= 1e-3:
        return "milliseconds", 1e3
    return "microseconds", 1e6


def _format_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()

    lines = []
    files = sorted(args.results.glob("*.json")) if args.results.is_dir() else []
    n_plots = 0
    for path in files:
        records = _records(path)
        if not records:
            continue
        suite = path.stem
        title = f"``{suite}``"
        lines += [title, "~" * len(title), ""]
        workloads: dict[str, list[dict]] = {}
        for record in records:
            workloads.setdefault(str(record["workload"]), []).append(record)
        for workload, group in workloads.items():
            png = args.out / f"{_slug(suite)}-{_slug(workload)}.png"
            _plot(group, suite, png)
            n_plots += 1
            rel = os.path.relpath(png, HERE).replace(os.sep, "/")
            lines += [
                f".. image:: /{rel}",
                f"   :alt: {suite}: {workload}, para vs joblib",
                "",
            ]
    if not n_plots:
        lines = [
            "No benchmark results yet: run the ``bench_*.py`` scripts with "
            "``--json docs/benchmarks/results/<name>.json``."
        ]
    inc = args.out / "plots.inc"
    text = "\n".join(lines).rstrip() + "\n"
    if not inc.exists() or inc.read_text(encoding="utf-8") != text:
        inc.write_text(text, encoding="utf-8")
    print(f"make_plots: {n_plots} plot(s) from {len(files)} result file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
