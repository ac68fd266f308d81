"""Print the import cycles inside each para package (exit 1 if there is one).

Run from the lint environment, where every package is installed:
``hatch run lint:cycles``. The graph is grimp's (the one import-linter
checks): every import statement of a module, at any depth, including
imports inside functions, so a cycle hidden in a function is found too.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = ["para_core", "para_persist", "para_cache", "para_memmap", "para_joblib"]


def cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] == package)
    edges = {
        m: sorted(d for d in graph.find_modules_directly_imported_by(m) if d in modules)
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for d in edges[m]:
            if d not in index:
                visit(d)
                low[m] = min(low[m], low[d])
            elif d in on_stack:
                low[m] = min(low[m], index[d])
        if low[m] == index[m]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == m:
                    break
            if len(component) > 1 or m in edges[m]:
                found.append(sorted(component))

    for m in modules:
        if m not in index:
            visit(m)
    return found


def main() -> int:
    # Imports under ``if TYPE_CHECKING:`` never run (the lazy faces use them
    # for type checkers only): left out, as in the import-linter contracts.
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    bad = False
    for package in PACKAGES:
        n = sum(1 for m in graph.modules if m.split(".")[0] == package)
        found = cycles(graph, package)
        if found:
            bad = True
            for component in found:
                print(f"{package}: cycle among {', '.join(component)}")
        else:
            print(f"{package}: {n} modules, no cycle")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
