"""The shape of the code, checked: no import circle in the package, no long function."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "whisper_genio"
MAX_FUNCTION_LINES = 80


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The package's modules `path` imports, at module level or inside functions (both run), but
    not under `if TYPE_CHECKING:` (never run)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped.update(id(n) for n in ast.walk(node))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "whisper_genio")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "whisper_genio":
                continue
            for alias in node.names:  # `from pkg import submodule` depends on the submodule only
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in modules else target)
    return {m for m in out if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths} | {"whisper_genio._core"}
    graph = {m: set() for m in modules}
    for p in paths:
        graph[_module_name(p)] = _imports(p, modules)
    assert "whisper_genio.backends.registry" in graph and graph["whisper_genio.model"], "the graph was not read"
    assert _cycles(graph) == []


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_registry_knows_no_backend():
    registry = _imports(PACKAGE / "backends" / "registry.py", {_module_name(p) for p in PACKAGE.rglob("*.py")})
    plugins = {"cpu", "neuron", "onnxruntime", "replay"}
    assert not {m for m in registry if m.rpartition(".")[2] in plugins}


def test_no_function_is_longer_than_80_lines():
    lizard = pytest.importorskip("lizard")
    long = []
    for folder, pattern in ((ROOT / "csrc" / "src", "*.cc"), (ROOT / "csrc" / "src", "*.h"), (PACKAGE, "*.py")):
        for path in sorted(folder.rglob(pattern)):
            for f in lizard.analyze_file(str(path)).function_list:
                if f.length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{f.start_line} {f.name} ({f.length} lines)")
    assert long == []
