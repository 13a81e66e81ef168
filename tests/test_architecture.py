"""The shape of the code, checked from its source: packages import downward only, never in a
cycle; the engine knows no front end; the top of `intermodel/` holds only what everything shares.

The import graph is read with `ast` from every module of `intermodel/` and `tui/` (installed as
`intermodel.tui`). Every import counts, wherever it is written: at the top, inside a function (a
lazy import is still a dependency), or under `if TYPE_CHECKING:` (a type from a higher layer in a
signature is a dependency on that layer all the same).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"intermodel": ROOT / "intermodel", "intermodel.tui": ROOT / "tui"}

# From the bottom up. A unit (a package of intermodel, or one of its top-level modules) may import
# from the layers below its own, and not from the units beside it: front ends never import each
# other, nor do the services built on the engine.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer) for layer in (
    {"errors"},  # the one exception tree, and exit codes
    {"records"},  # what happened in a run: the values transcripts hold
    {"security"},  # defences against untrusted input: keys, text, files, numbers, run ids
    {"config"},  # pairing, panel and experiment files -> frozen specs; request types
    {"providers", "transcript"},  # one module per wire protocol; transcript files
    {"engine", "coding"},  # sessions: the loop, its parts, its events; coding schemes and labels
    {"lineage", "analysis", "control"},  # runs from runs; renderers of transcripts; the socket
    {"experiment"},  # batches of runs
    {"console", "tui"},  # the front ends
    {"commands"},  # the CLI's handlers
    {"cli"},  # the command line
    {"__main__", "intermodel"},  # `python -m intermodel`; the package's public names
))
FRONT_ENDS = {"console", "tui", "commands", "control", "experiment", "lineage", "analysis"}
TOP_LEVEL = {"__init__", "__main__", "cli", "errors", "records"}


@cache
def modules() -> dict[str, Path]:
    """Every module's dotted name and file."""
    found: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def imported(module: str) -> Iterator[tuple[str, int]]:
    """The intermodel modules `module` imports, each with the line that imports it."""
    path = modules()[module]
    package = module if is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # `from a import b` imports the module a.b when there is one, else a name of a.
                name = f"{base}.{alias.name}"
                yield from _known(name if name in modules() else base, node.lineno)


def _known(name: str, line: int) -> Iterator[tuple[str, int]]:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    if name:
        yield name, line


def unit(module: str) -> str:
    """The package (or top-level module) of intermodel a module belongs to."""
    parts = module.split(".")
    if parts[:2] == ["intermodel", "tui"]:
        return "tui"
    return parts[1] if len(parts) > 1 else "intermodel"


@cache
def edges() -> dict[tuple[str, str], list[str]]:
    """unit -> unit, with the imports that make each edge ("module:line -> module")."""
    found: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
    for module in modules():
        for target, line in imported(module):
            if unit(target) != unit(module):
                found[unit(module), unit(target)][f"{module}:{line} -> {target}"] = None
    return {edge: list(lines) for edge, lines in found.items()}


def layer(name: str) -> int:
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges():
        graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted({unit(m) for m in modules()}):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_every_module() -> None:
    assert "intermodel.engine.dialogue" in modules() and "intermodel.tui.app" in modules()
    assert ("engine", "providers") in edges()
    assert ("tui", "engine") in edges()


def test_no_cycle_between_packages() -> None:
    problems = []
    for group in cycles():
        problems.append(" <-> ".join(group) + ":")
        for (source, target), where in sorted(edges().items()):
            if source in group and target in group:
                problems += [f"  {line}" for line in where]
    assert not problems, "\n".join(problems)


def test_every_package_imports_only_from_the_layers_below() -> None:
    problems = [f"{line} ({source} may not import {target})"
                for (source, target), where in sorted(edges().items())
                if layer(target) >= layer(source) for line in where]
    assert not problems, "\n".join(problems)


def test_the_engine_imports_no_front_end() -> None:
    problems = [line for (source, target), where in sorted(edges().items())
                if source == "engine" and target in FRONT_ENDS for line in where]
    assert not problems, "\n".join(problems)


def test_the_core_never_imports_textual() -> None:
    problems = []
    for module, path in modules().items():
        if unit(module) == "tui":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            problems += [f"{module}:{node.lineno} imports {n}" for n in names
                         if n.split(".")[0] in ("textual", "rich")]
    assert not problems, "\n".join(problems)


def test_only_shared_modules_sit_at_the_top_of_the_package() -> None:
    top = {path.stem for path in (ROOT / "intermodel").glob("*.py")}
    assert top == TOP_LEVEL


def test_every_unit_has_a_layer() -> None:
    units = {unit(m) for m in modules()}
    assert units <= set().union(*LAYERS)
    assert set().union(*LAYERS) <= units
