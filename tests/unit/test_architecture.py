"""The import layers of ``src/oncoflow`` and the one-hop walk rule -> script -> library.

The layers have one source: the table of section "Layers" of ``docs/design.md``, which this test
parses. The import graph is built with ``ast`` from every ``import`` of ``src/oncoflow``: at
module level, inside functions and under ``if TYPE_CHECKING:`` (still a dependency direction).
A node is a module (``oncoflow.deep.common``); its *package* is the subpackage or top-level module
right under ``oncoflow`` (``deep``), or ``oncoflow`` for the package's own ``__init__``.

File and function lengths are not asserted yet; :func:`length_findings` lists them.
"""

from __future__ import annotations

import ast
import itertools
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TOP = "oncoflow"
DESIGN = ROOT / "docs" / "design.md"
RULES = ROOT / "rules"
SCRIPTS = ROOT / "scripts"

KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}
"""Imports (importer module, imported module) still waiting for their fix, with the reason.

They are left out of the graph before the cycle and layer checks, so the test passes and they stay
visible here; an entry whose import is gone fails :func:`test_known_violations_still_exist`.
"""

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
LENGTH_REASON = re.compile(r"^\s*Length:", re.MULTILINE)
"""A module over :data:`MAX_FILE_LINES` says why in its docstring, on a line ``Length: ...``."""


@dataclass(frozen=True)
class Import:
    """One import statement of ``source`` naming module ``target`` at ``line``."""

    source: str
    target: str
    line: int


@dataclass(frozen=True)
class Layer:
    """One row of the layer table: its rank (0 = ground), packages and the layers it may import."""

    name: str
    rank: int
    packages: tuple[str, ...]
    may_import: tuple[str, ...]


def source_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of ``src/oncoflow`` (a package is its ``__init__``)."""
    modules = {}
    for path in sorted((SRC / TOP).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def package_of(module: str) -> str:
    """``oncoflow.deep.common`` -> ``deep``; the top-level ``oncoflow`` is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of ``src/oncoflow``."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    """The dotted names one import statement loads (relative imports made absolute)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    # `from a.b import c` loads a.b.c when c is a module, else only a.b
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def module_imports(modules: Mapping[str, Path] | None = None) -> list[Import]:
    """Every import of one ``src/oncoflow`` module by another, at any depth of the code."""
    modules = source_modules() if modules is None else modules
    found = set()
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _imported_names(node, module, path)
            if isinstance(node, ast.ImportFrom):
                # the submodules named in `from x import a, b`, else the package x itself
                submodules = [n for n in names[:-1] if n in modules]
                names = submodules or names[-1:]
            for name in names:
                if name != TOP and not name.startswith(f"{TOP}."):
                    continue
                target = _resolve(name, modules)
                if target is not None and target != module:
                    found.add(Import(module, target, node.lineno))
    return sorted(found, key=lambda i: (i.source, i.line, i.target))


def graph_imports() -> list[Import]:
    """:func:`module_imports` less :data:`KNOWN_VIOLATIONS`."""
    return [i for i in module_imports() if (i.source, i.target) not in KNOWN_VIOLATIONS]


def parse_layers(text: str | None = None) -> list[Layer]:
    """The table of section "Layers" of ``docs/design.md``, ground layer first."""
    text = DESIGN.read_text(encoding="utf-8") if text is None else text
    match = re.search(r"^## Layers\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, f"{DESIGN}: no section '## Layers'"
    rows = [
        line
        for line in match.group(1).splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]
    assert rows, f"{DESIGN}: the Layers section has no table"
    layers = []
    for rank, row in enumerate(rows[1:]):  # rows[0] is the header
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 3, f"{DESIGN}: a layer row needs 3 cells: {row}"
        names = [re.findall(r"`([A-Za-z_]\w*)`", cell) for cell in cells]
        assert len(names[0]) == 1, f"{DESIGN}: one layer name per row: {row}"
        layers.append(Layer(names[0][0], rank, tuple(names[1]), tuple(names[2])))
    return layers


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of the directed graph."""
    graph = {node: sorted(set(targets)) for node, targets in edges.items()}
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(nodes) + 100))
    try:
        for node in nodes:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return [_cycle_through(component, graph) for component in components]


def _cycle_through(component: list[str], graph: Mapping[str, list[str]]) -> list[str]:
    """A shortest path from the component's first node back to itself, inside the component."""
    start, inside = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in graph.get(node, ()):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target in inside and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {component}")  # a component always has one


def _package_edges(imports: Iterable[Import]) -> dict[str, dict[str, list[Import]]]:
    """Package -> imported package -> the imports behind that edge."""
    edges: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for item in imports:
        source, target = package_of(item.source), package_of(item.target)
        if source != target:
            edges[source][target].append(item)
    return edges


def _where(item: Import) -> str:
    path = source_modules()[item.source].relative_to(ROOT)
    return f"{path}:{item.line} imports {item.target}"


def test_layer_table_places_every_package_once_and_points_down():
    layers = parse_layers()
    ranks = {layer.name: layer.rank for layer in layers}
    assert len(ranks) == len(layers), "a layer name is used twice"
    placed = [package for layer in layers for package in layer.packages]
    twice = sorted({p for p in placed if placed.count(p) > 1})
    assert not twice, f"packages placed in two layers: {twice}"
    packages = {package_of(module) for module in source_modules()}
    assert not packages - set(placed), (
        f"place these packages in the Layers table: {packages - set(placed)}"
    )
    assert not set(placed) - packages, (
        f"the Layers table names no such package: {set(placed) - packages}"
    )
    for layer in layers:
        unknown = [name for name in layer.may_import if name not in ranks]
        assert not unknown, f"layer {layer.name} may import unknown layers {unknown}"
        upward = [name for name in layer.may_import if ranks[name] > layer.rank]
        assert not upward, f"layer {layer.name} may import layers above it: {upward}"


def test_no_import_cycle_between_packages():
    edges = _package_edges(graph_imports())
    cycles = find_cycles({source: list(targets) for source, targets in edges.items()})
    report = []
    for cycle in cycles:
        report.append(" -> ".join(cycle))
        for source, target in itertools.pairwise(cycle):
            report.extend(f"    {_where(item)}" for item in edges[source][target][:3])
    assert not cycles, "import cycles between packages:\n" + "\n".join(report)


def test_no_import_cycle_between_modules():
    edges: dict[str, list[str]] = defaultdict(list)
    for item in graph_imports():
        edges[item.source].append(item.target)
    cycles = find_cycles(edges)
    assert not cycles, "import cycles between modules:\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


def test_every_import_points_down_the_layers():
    layers = parse_layers()
    layer_of = {package: layer for layer in layers for package in layer.packages}
    upward = []
    for item in graph_imports():
        source, target = layer_of[package_of(item.source)], layer_of[package_of(item.target)]
        if (
            package_of(item.source) != package_of(item.target)
            and target.name not in source.may_import
        ):
            upward.append(f"{_where(item)} ({source.name} may not import {target.name})")
    assert not upward, "imports against docs/design.md 'Layers':\n" + "\n".join(upward)


def test_known_violations_still_exist():
    present = {(item.source, item.target) for item in module_imports()}
    gone = sorted(set(KNOWN_VIOLATIONS) - present)
    assert not gone, f"fixed: remove them from KNOWN_VIOLATIONS: {gone}"


def test_the_graph_sees_function_level_relative_and_type_checking_imports(tmp_path):
    package = tmp_path / TOP
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import a\n")
    (package / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from oncoflow.errors import X\n"
        "def f():\n    from ..sub.b import g\n"
    )
    (package / "sub" / "b.py").write_text("import oncoflow.sub.a\nimport numpy\n")
    modules = {
        name: tmp_path / path
        for name, path in {
            "oncoflow": "oncoflow/__init__.py",
            "oncoflow.errors": "oncoflow/errors.py",
            "oncoflow.sub": "oncoflow/sub/__init__.py",
            "oncoflow.sub.a": "oncoflow/sub/a.py",
            "oncoflow.sub.b": "oncoflow/sub/b.py",
        }.items()
    }
    found = {(i.source, i.target, i.line) for i in module_imports(modules)}
    assert found == {
        ("oncoflow.sub", "oncoflow.sub.a", 1),
        ("oncoflow.sub.a", "oncoflow.errors", 3),
        ("oncoflow.sub.a", "oncoflow.sub.b", 5),
        ("oncoflow.sub.b", "oncoflow.sub.a", 1),
    }
    edges: dict[str, list[str]] = defaultdict(list)
    for source, target, _ in found:
        edges[source].append(target)
    assert find_cycles(edges) == [["oncoflow.sub.a", "oncoflow.sub.b", "oncoflow.sub.a"]]


# rule -> script -> library

_RULE_HEAD = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:|^use rule\s+(\w+)\s+as\s+(\w+)")
_DIRECTIVE = re.compile(r"^    (\w+):")
_SCRIPT_INPUT = re.compile(r'(\w+)\s*=\s*script_path\(\s*"([^"]+)"(?:\s*,\s*"([^"]+)")?\s*\)')
_RUNS_SCRIPT = re.compile(r"\b(?:python|sh)\s+\{input\.script\}")
_ACTIONS = {"shell", "run", "script", "notebook", "wrapper", "cwl", "template_engine"}


@dataclass(frozen=True)
class Rule:
    """One rule of ``rules/*.smk``: name, parent (``use rule``), directives, script inputs."""

    file: str
    name: str
    parent: str | None
    directives: dict[str, str]
    scripts: dict[str, str]


def parse_rules() -> list[Rule]:
    """Every ``rule``, ``checkpoint`` and ``use rule ... as`` of ``rules/*.smk``."""
    rules = []
    for path in sorted(RULES.glob("*.smk")):
        head, body = None, []
        for line in [*path.read_text(encoding="utf-8").splitlines(), "END"]:
            if line and not line[0].isspace() and not line.startswith("#"):
                if head:
                    rules.append(_rule(path.name, head, body))
                head, body = _RULE_HEAD.match(line), []
            elif head:
                body.append(line)
    return rules


def _rule(file: str, head: re.Match[str], body: list[str]) -> Rule:
    directives: dict[str, list[str]] = {}
    current = None
    for line in body:
        match = _DIRECTIVE.match(line)
        if match:
            current = match.group(1)
            directives[current] = [line[match.end() :]]
        elif current:
            directives[current].append(line)
    text = {name: "\n".join(lines) for name, lines in directives.items()}
    scripts = {
        key: f"{name}.{suffix or 'py'}"
        for key, name, suffix in _SCRIPT_INPUT.findall(text.get("input", ""))
    }
    name = head.group(1) or head.group(3)
    return Rule(file, name, head.group(2), text, scripts)


def test_every_rule_runs_one_script_of_scripts():
    rules = parse_rules()
    assert rules, f"no rules found in {RULES}"
    by_name = {rule.name: rule for rule in rules}
    problems = []
    for rule in rules:
        where = f"{rule.file}: rule {rule.name}"
        if rule.parent is not None:
            parent = by_name.get(rule.parent)
            if parent is None:
                problems.append(
                    f"{where}: derived from {rule.parent}, which rules/ does not define"
                )
            elif rule.scripts.get("script", parent.scripts.get("script")) != parent.scripts.get(
                "script"
            ):
                problems.append(f"{where}: runs another script than its parent {rule.parent}")
            continue
        actions = sorted(_ACTIONS & set(rule.directives))
        if not actions:
            continue  # a target rule: it runs nothing
        if actions != ["shell"]:
            problems.append(f"{where}: {actions}; a rule runs its script through shell:")
            continue
        script = rule.scripts.get("script")
        if script is None or not (SCRIPTS / script).is_file():
            problems.append(f"{where}: input script=script_path(...) naming a file of scripts/")
            continue
        if len(_RUNS_SCRIPT.findall(rule.directives["shell"])) != 1:
            problems.append(f"{where}: the shell command must run {{input.script}} once")
        if re.search(r"scripts/|python\s+-[mc]", rule.directives["shell"]):
            problems.append(f"{where}: the shell command runs code other than {{input.script}}")
        extra = {key: name for key, name in rule.scripts.items() if key != "script"}
        if extra and not (script == "run_batch.py" and set(extra) == {"stage"}):
            problems.append(f"{where}: names more scripts {extra} (only a batch's `stage`)")
    assert not problems, "\n".join(problems)


def test_scripts_import_the_library_never_another_script():
    scripts = sorted(SCRIPTS.glob("*.py"))
    assert scripts
    names = {path.stem for path in scripts} | {"scripts"}
    problems = []
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"{path.name}:{node.lineno}: relative import")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                tops = (
                    [alias.name.split(".")[0] for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [(node.module or "").split(".")[0]]
                )
                problems.extend(
                    f"{path.name}:{node.lineno}: imports the script {top}"
                    for top in tops
                    if top in names
                )
    assert not problems, "\n".join(problems)


# lengths (listed, not asserted yet)


def length_findings(
    max_file_lines: int = MAX_FILE_LINES, max_function_lines: int = MAX_FUNCTION_LINES
) -> list[str]:
    """Modules over ``max_file_lines`` without a ``Length:`` reason, and functions too long.

    A function's length is its code: ``def`` line to last line, less its docstring (a docstring
    with its formulas and units is documentation, not logic to keep short).
    """
    findings = []
    for path in source_modules().values():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        where = path.relative_to(ROOT)
        lines = len(text.splitlines())
        if lines > max_file_lines and not LENGTH_REASON.search(ast.get_docstring(tree) or ""):
            findings.append(f"{where}: {lines} lines, no 'Length:' reason in its docstring")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                span = (node.end_lineno or node.lineno) - node.lineno + 1
                first = node.body[0]
                docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                if docstring and isinstance(first.value.value, str):
                    span -= (first.end_lineno or first.lineno) - first.lineno + 1
                if span > max_function_lines:
                    findings.append(f"{where}:{node.lineno}: {node.name} has {span} lines")
    return findings


def test_no_long_file_or_function():
    """No module over ~500 lines without a ``Length:`` reason; no function over ~80 code lines."""
    findings = length_findings()
    assert not findings, "\n".join(findings)
