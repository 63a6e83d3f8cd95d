"""The house: folders are the stages, arrows point one way, configs are light, heavy imports sit at the top.

Static counts over imdb_deploy/ (an AST walk, nothing imported), and one subprocess that proves `--help` loads no
ML library. The limits are the ones the README's Layout section states.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imdb_deploy"
HEAVY = ("torch", "onnxruntime", "transformers", "openvino", "ray", "nncf", "accelerate", "datasets", "optimum")
# The layers, lowest first: a module may import its own package and any lower layer, never a sibling stage.
LEAVES = (
    "errors",
    "fileio",
    "outputs",
    "machine",
    "folders",
    "tokenization",
    "metrics",
    "reviews",
    "jsonlimits",
    "version",
    "lazy",
)
LAYERS = (LEAVES, ("runtimes", "rows"), ("engines", "export", "training"), ("serve", "bench"), ("demo",), ("cli",))
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
MAX_ENTRY_LINES = 150
MAX_LOCAL_IMPORTS_PER_1000 = 3.0
MAX_DEPTH = 8


def modules() -> dict[str, Path]:
    """Dotted module name (without the package prefix) -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def part_of(name: str) -> str:
    """The folder (stage) or leaf a module belongs to: "runtimes" for runtimes.predictor, "errors" for errors."""
    return name.split(".")[0] if name else ""


def layer_of(name: str) -> int | None:
    top = part_of(name)
    return next((i for i, members in enumerate(LAYERS) if top in members), None)


@functools.cache
def imports(name: str) -> tuple[tuple[str, bool], ...]:
    """(imported package module, inside a function body) for every import of `name` that names ours."""
    path = modules()[name]
    tree = ast.parse(path.read_text())
    local_nodes = {
        id(node)
        for func in ast.walk(tree)
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(func)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    found = []
    known = modules()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            elif base == "imdb_deploy" or base.startswith("imdb_deploy."):
                base = base.removeprefix("imdb_deploy").removeprefix(".")
            else:
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                targets.append(full if full in known else base)
        elif isinstance(node, ast.Import):
            targets = [a.name.removeprefix("imdb_deploy.") for a in node.names if a.name.startswith("imdb_deploy.")]
        for target in targets:
            if target in known and target != name:
                found.append((target, id(node) in local_nodes))
    return tuple(dict.fromkeys(found))


def third_party_imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_over_600_lines_and_no_function_over_100():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long


def test_the_cli_entry_module_is_short():
    assert (PACKAGE / "cli" / "__init__.py").read_text().count("\n") < MAX_ENTRY_LINES


def test_imports_inside_functions_are_rare_outside_the_cli():
    lines = local = 0
    for name, path in modules().items():
        if part_of(name) == "cli":
            continue
        tree = ast.parse(path.read_text())
        lines += path.read_text().count("\n")
        local += sum(
            isinstance(node, (ast.Import, ast.ImportFrom))
            for func in ast.walk(tree)
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(func)
        )
    assert 1000 * local / lines <= MAX_LOCAL_IMPORTS_PER_1000, f"{local} in {lines} lines"


def test_every_module_has_a_layer_and_arrows_point_down():
    upward = []
    for name in modules():
        here = layer_of(name)
        if name in ("", "__main__"):
            continue  # the package's lazy names and `python -m`: above every layer
        assert here is not None, f"{name}: not in any layer of the README's layout"
        for target, _ in imports(name):
            there = layer_of(target)
            sibling = there == here and part_of(target) != part_of(name) and here != 0
            if there is None or there > here or sibling:
                upward.append(f"{name} -> {target}")
    assert not upward


def test_the_import_graph_is_shallow_and_has_no_cycle():
    """Module-level imports: the package's structure. (The CLI's imports of a stage inside its command, and an
    optional runtime imported where it is used, add the levels of the command that runs it.)"""
    graph = {name: [target for target, local in imports(name) if not local] for name in modules()}
    known: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(name: str) -> int:
        """Modules in the longest chain of imports that starts at `name` (itself included)."""
        assert name not in visiting, f"import cycle through {name}"
        if name not in known:
            visiting.add(name)
            known[name] = 1 + max((depth(target) for target in graph[name]), default=0)
            visiting.discard(name)
        return known[name]

    deepest = max(depth(name) for name in graph)
    assert deepest - 1 <= MAX_DEPTH, f"{deepest} modules in the longest chain"
    visiting.clear()  # and with the imports inside functions too: still no cycle
    known.clear()
    graph.update({name: [target for target, _ in imports(name)] for name in modules()})
    max(depth(name) for name in graph)


def test_configs_and_leaves_import_no_heavy_package():
    for name, path in modules().items():
        light = name.endswith(".config") or part_of(name) in LEAVES
        if light:
            heavy = third_party_imports(path, top_level_only=False) & set(HEAVY)
            assert not heavy, f"{name} imports {heavy}"


def test_leaves_import_no_stage():
    for name in modules():
        if part_of(name) in LEAVES:
            assert all(part_of(target) in LEAVES for target, _ in imports(name)), name


def test_every_folder_says_what_lives_there_and_what_it_may_import():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, init
        if init.parent != PACKAGE:
            assert re.search(r"\bMay import\b|\bimports\b", doc), f"{init}: say what it may import"


def test_the_readme_layout_names_every_folder():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Project layout") :]
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent != PACKAGE:
            assert f"{init.parent.name}/" in layout, init.parent.name


@pytest.mark.parametrize("args", [["--help"], ["predict", "--help"], ["train", "--help"]])
def test_help_loads_no_ml_library(args):
    code = (
        "import sys, imdb_deploy.cli as c\n"
        f"try:\n    c.cli.main(args={args!r}, prog_name='imdb-deploy')\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
