"""The packages of ``erc`` form layers with no cycle between them, deferred imports (inside functions) counted:
entry points -> tasks and steps -> the LLM layer -> data -> io and base helpers. A package may import its own
layer or a lower one, never a higher one, and the graph of imports between packages has no cycle. This is what
keeps the generator, the judge and the post-processing steps apart: ``erc.judge`` imports nothing of the generator,
``erc.llm`` nothing of any task."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from erc.paths import PROJECT_ROOT

ERC = PROJECT_ROOT / "erc"

# The layer of each package or top-level module of erc (higher imports lower).
LAYERS: dict[str, int] = {
    # entry points: what the scripts and ``python -m`` call, and the config resolvers they register (erc/__init__)
    "erc.pipeline": 4, "erc.demo": 4, "erc.publish": 4, "erc.cli": 4, "erc.config": 4, "erc": 4,
    # tasks and steps: the generator, the judge, post-processing, the quality report, training, evaluation
    "erc.postprocess": 3, "erc.generation": 3, "erc.judge": 3, "erc.quality": 3, "erc.training": 3,
    "erc.evaluation": 3, "erc.models": 3, "erc.identity": 3,
    # the LLM layer
    "erc.llm": 2,
    # data
    "erc.data": 1,
    # io and base helpers
    "erc.errors": 0, "erc.io": 0, "erc.locks": 0, "erc.console": 0, "erc.checks": 0, "erc.secrets": 0,
    "erc.plots": 0, "erc.pretrained": 0, "erc.tracking": 0, "erc.paths": 0,
}


def unit(module: str) -> str:
    """The package or top-level module of erc that ``module`` belongs to (``erc.llm.backends.tgi`` -> ``erc.llm``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT_ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every erc module ``path`` imports, at the top or inside a function (``TYPE_CHECKING`` blocks excluded: they
    never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "erc")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "erc":
            found.add(node.module)
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ERC.rglob("*.py"):
        source = unit(module_name(path))
        for imported in imports_of(path):
            target = unit(imported)
            if target != source:
                graph[source].add(target)
    return graph


def test_every_package_has_a_layer() -> None:
    units = {unit(module_name(path)) for path in ERC.rglob("*.py")}
    assert units - set(LAYERS) == set(), "give each new package of erc a layer in LAYERS"


def test_no_package_imports_a_higher_layer() -> None:
    upward = sorted(f"{source} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})"
                    for source, targets in package_graph().items() for target in targets
                    if LAYERS.get(target, 0) > LAYERS.get(source, 0))
    assert upward == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_cycle_between_packages() -> None:
    assert find_cycle(package_graph()) is None


@pytest.mark.parametrize("package, forbidden", [
    ("erc.judge", {"erc.generation", "erc.postprocess", "erc.pipeline"}),
    ("erc.generation", {"erc.judge", "erc.quality", "erc.postprocess", "erc.pipeline"}),
    ("erc.quality", {"erc.generation", "erc.judge", "erc.postprocess", "erc.pipeline"}),
    ("erc.llm", {"erc.generation", "erc.judge", "erc.quality", "erc.postprocess", "erc.pipeline"}),
])
def test_tasks_stay_apart(package: str, forbidden: set[str]) -> None:
    assert package_graph()[package] & forbidden == set()


def test_the_checks_find_a_cycle_and_an_upward_import(tmp_path) -> None:
    """The scan itself: a deferred import inside a function counts, and a two-package loop is a cycle."""
    source = tmp_path / "erc" / "data" / "x.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from erc.llm.store import fingerprint\n")
    assert imports_of(source) == {"erc.llm.store"}
    assert find_cycle({"erc.data": {"erc.llm"}, "erc.llm": {"erc.data"}}) == ["erc.data", "erc.llm", "erc.data"]
