"""The package's import graph: data flows one way (docs/DESIGN.md, "Packages").

    format <- store <- transfer <- loader / checkpoint / weights <- bench <- cli
    (errors and checksum below them all)
    server (reads a bucket through `farfeed.store`) and wan apart (wan imports only `farfeed.errors`)

Every import counts, lazy ones inside functions and ``TYPE_CHECKING`` ones included: a
lazy import still makes one package depend on another.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "farfeed"

#: package -> the farfeed packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "checksum": {"errors"},  # the functions dataset.json names: format writes, store hashes
    "format": {"errors", "checksum"},
    "store": {"errors", "checksum"},
    "transfer": {"errors", "checksum", "format", "store"},
    "loader": {"errors", "checksum", "format", "store", "transfer"},
    "checkpoint": {"errors", "checksum", "format", "store", "transfer"},
    "weights": {"errors", "checksum", "format", "store", "transfer"},
    "server": {"errors", "store"},  # a bucket-backed gateway reads through the Store seam
    "wan": {"errors"},
    "bench": {"errors", "checksum", "format", "store", "transfer", "loader", "checkpoint",
              "weights", "server", "wan"},  # fmt: skip
    "cli": {"errors", "checksum", "format", "store", "transfer", "loader", "checkpoint",
            "weights", "server", "wan", "bench"},  # fmt: skip
    "__init__": {"errors", "loader"},
    "__main__": {"cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every ``farfeed.*`` module ``path`` imports, with its line number."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
    return [(t, line) for t, line in found if t == "farfeed" or t.startswith("farfeed.")]


def package_of(module: str) -> str:
    """``farfeed.loader.engine`` -> ``loader``; ``farfeed.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def all_modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_package_is_placed_in_the_layers() -> None:
    top = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or
           (p.is_dir() and (p / "__init__.py").exists())}  # fmt: skip
    assert top == set(ALLOWED), "a new package needs its place in ALLOWED (and in DESIGN.md)"


def test_imports_run_one_way() -> None:
    wrong: list[str] = []
    for path in all_modules():
        mine = package_of(module_name(path)) if path.parent != SRC else path.stem
        for target, line in imports_of(path):
            theirs = package_of(target)
            if theirs == "__init__" and target == "farfeed":  # ``from farfeed import __version__``
                continue
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({mine}) imports {target}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_module_imports_bench_or_cli_from_outside() -> None:
    for path in all_modules():
        mine = package_of(module_name(path)) if path.parent != SRC else path.stem
        for target, line in imports_of(path):
            if package_of(target) in ("bench", "cli") and mine not in ("bench", "cli", "__main__"):
                pytest.fail(f"{path.relative_to(SRC)}:{line} imports {target}")


def test_no_import_cycles_between_modules() -> None:
    """A circle between two files means one of them is doing the other's job."""
    names = {module_name(p): p for p in all_modules()}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in names.items():
        for target, _ in imports_of(path):
            # ``from farfeed.x import y`` may name a module y or a symbol of x
            dest = target if target in names else target.rpartition(".")[0]
            if dest in names and dest != name and not names[dest].name == "__init__.py":
                graph[name].add(dest)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(names):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
