"""The package's layers, read from its source with `ast` (imports inside functions included): building blocks, then
the stages, then the pipeline, then publishing; each imports only from its own layer or below, and nothing imports in
a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "distil"

STAGES = {"teacher", "transfer_set", "student"}
PIPELINE = {"pipeline", "run_config"}
PUBLISHING = {"cards", "push"}
# what publishing may read: settings, errors, processes, files and records; never a stage's internals
# `task`: how a run's data and labels are named in words and tags (no stage logic)
PUBLISHING_READS = {"distil", "errors", "configs", "hub", "utils", "records", "task"} | PUBLISHING


def modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__") + ["distil"]


def source(module: str) -> Path:
    return PACKAGE / ("__init__.py" if module == "distil" else f"{module}.py")


def imports(module: str) -> dict[str, list[tuple[int, bool]]]:
    """`{distil module: [(line, at module level), ...]}` of every import of a distil module in `module`'s source,
    those inside functions and `if` blocks included (`distil` itself: `import distil`, `from distil import name`)."""
    tree = ast.parse(source(module).read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    known = set(modules())
    found: dict[str, list[tuple[int, bool]]] = {}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "distil":  # `from distil import student` or `from distil import __version__`
                targets = [["distil", alias.name] for alias in node.names]
            else:
                targets = [node.module.split(".")]
        for parts in targets:
            if parts[0] != "distil":
                continue
            target = parts[1] if len(parts) > 1 and parts[1] in known else "distil"
            found.setdefault(target, []).append((node.lineno, id(node) in top_level))
    found.pop(module, None)
    return found


def layer(module: str) -> int:
    if module in PUBLISHING:
        return 3
    if module in PIPELINE:
        return 2
    if module in STAGES:
        return 1
    return 0  # building blocks (and `distil` itself, which registers the BiLSTM)


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for target in imports(todo.pop()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_scan_sees_imports_inside_functions():
    """The scan itself finds an import inside a function (`records.package_version`)."""
    found = imports("records")
    assert "hub" in found and "utils" in found
    assert any(not top for _, top in found["distil"])  # `from distil import __version__` inside a function


@pytest.mark.parametrize("module", sorted(STAGES) + ["records", "stage"])
def test_stages_and_records_never_reach_publishing(module):
    assert not reachable(module) & PUBLISHING, f"{module} reaches {sorted(reachable(module) & PUBLISHING)}"


@pytest.mark.parametrize("module", sorted(PUBLISHING))
def test_publishing_reads_no_stage_internals(module):
    outside = set(imports(module)) - PUBLISHING_READS
    assert not outside, f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("module", modules())
def test_imports_go_downward_only(module):
    upward = {t: lines for t, lines in imports(module).items() if layer(t) > layer(module)}
    assert not upward, f"{module} (layer {layer(module)}) imports from above: {upward}"


def test_no_import_circle():
    """Imports inside functions count: one there to dodge a circle would close it here."""
    graph = {module: set(imports(module)) for module in modules()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(target) :] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in modules():
        if module not in state:
            visit(module, [module])
