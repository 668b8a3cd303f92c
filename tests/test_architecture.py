"""The shape of ``risk``, read with ast from every module (lazy imports included, relative ones resolved).

The rules (issue 29, ``../shared/STYLE.md``):

- no import cycle between modules, even one hidden in a function;
- a layer imports only its own layer and those below it (:data:`LAYERS`), never one above;
- no module imports another package's ``_private`` name or module;
- no function over 80 lines and no module over 400 lines, outside the database migrations.

A failure names the file, the line and the import (or the function). The checker runs on any
package folder, so the tests at the end hold it to a small made-up package that breaks every rule.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "risk"
# Lower may never import higher (the layers of issue 29). A module belongs to the longest
# name here that is its own name or a package above it; ``risk`` itself is the package's root only.
LAYERS: dict[str, int] = {
    "risk": 0, "risk.errors": 0, "risk.logs": 0, "risk.progress": 0, "risk.locks": 0, "risk.config": 0,
    "risk.data": 1, "risk.store": 1,
    "risk.labels": 2,
    "risk.features": 3,
    "risk.online": 4,
    "risk.models": 5,
    "risk.scoring": 6, "risk.impact": 6,
    "risk.serve": 7, "risk.term": 7, "risk.spark": 7,
    "risk.cli": 8, "risk.__main__": 8,
}  # fmt: skip
# Alembic's revision files are generated, and each is one long upgrade by nature.
EXEMPT_FROM_SIZE = ("risk/store/migrations/",)
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400


@dataclass(frozen=True)
class Import:
    """One imported module (or one name from it) of one import statement, within the package checked."""

    importer: str  # the importing module's dotted name
    file: str  # its path, relative to the folder above the package
    line: int
    target: str  # the imported module's dotted name (a name that is not a module counts as its module)
    name: str | None  # the name taken from ``target`` by ``from target import name``; None for the module itself
    statement: str  # the import statement as written

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.statement}"


@dataclass(frozen=True)
class Module:
    name: str
    file: str  # relative to the folder above the package
    tree: ast.Module
    lines: int
    is_package: bool


def read_modules(parent: Path, package: str) -> dict[str, Module]:
    """Every ``.py`` under ``parent / package``, parsed, by dotted module name."""
    modules = {}
    for path in sorted((parent / package).rglob("*.py")):
        relative = path.relative_to(parent)
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        text = path.read_text(encoding="utf-8")
        modules[".".join(parts)] = Module(".".join(parts), relative.as_posix(), ast.parse(text, str(relative)),
                                          len(text.splitlines()), is_package)
    return modules


def _known(name: str, modules: Mapping[str, Module]) -> str | None:
    """The module ``name`` names, or the nearest package above it that is one of ``modules``."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports_of(module: Module, modules: Mapping[str, Module]) -> Iterator[Import]:
    """Each module of the package that ``module`` imports anywhere (top, function, TYPE_CHECKING), one per name."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            named = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, one level up per extra dot
                here = module.name if module.is_package else module.name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    here = here.rpartition(".")[0]
                base = f"{here}.{base}" if base else here
            # ``from package import module`` imports that module; ``from module import name``, the module.
            named = [(f"{base}.{alias.name}", None) if f"{base}.{alias.name}" in modules else (base, alias.name)
                     for alias in node.names]
        else:
            continue
        for dotted, name in named:
            target = _known(dotted, modules)
            if target is not None and target != module.name:
                yield Import(module.name, module.file, node.lineno, target, name, ast.unparse(node))


def all_imports(modules: Mapping[str, Module]) -> list[Import]:
    return [found for module in modules.values() for found in _imports_of(module, modules)]


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """The import statements inside each cycle (a strongly connected group of two or more modules), one list each."""
    graph: dict[str, set[str]] = {}
    for found in imports:
        graph.setdefault(found.importer, set()).add(found.target)
        graph.setdefault(found.target, set())
    groups = _strongly_connected(graph)
    return [sorted({str(found) for found in imports if found.importer in group and found.target in group})
            for group in groups if len(group) > 1]


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, without recursion (a long import chain is no stack risk)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def layer_of(module: str, layers: Mapping[str, int]) -> int | None:
    """The layer of ``module``: that of the longest entry of ``layers`` that is it or a package above it."""
    if module in layers:
        return layers[module]
    owners = [name for name in layers if module.startswith(name + ".") and name.count(".") > 0]
    return layers[max(owners, key=len)] if owners else None


def unlayered(modules: Mapping[str, Module], layers: Mapping[str, int]) -> list[str]:
    return [f"{m.file}: {m.name} is in no layer" for m in modules.values() if layer_of(m.name, layers) is None]


def upward_imports(imports: list[Import], layers: Mapping[str, int]) -> list[str]:
    """Imports from a lower layer of something in a higher one."""
    found = []
    for each in imports:
        low, high = layer_of(each.importer, layers), layer_of(each.target, layers)
        if low is not None and high is not None and high > low:
            found.append(f"{each} (layer {low} {each.importer} imports layer {high} {each.target})")
    return found


def _package_of(module: str) -> str:
    """``risk.data.synth.engine`` → ``risk.data``: the subpackage of the root a module belongs to."""
    return ".".join(module.split(".")[:2])


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(imports: list[Import]) -> list[str]:
    """Imports of a ``_private`` name, or of a name through a ``_private`` module, of another package."""
    found = []
    for each in imports:
        if _package_of(each.importer) == _package_of(each.target):
            continue
        private = [part for part in (*each.target.split("."), each.name or "") if _private(part)]
        if private:
            found.append(f"{each} ({each.importer} takes {', '.join(private)} from {_package_of(each.target)})")
    return found


def _exempt(module: Module) -> bool:
    return module.file.startswith(tuple(EXEMPT_FROM_SIZE))


def long_functions(modules: Mapping[str, Module], limit: int = MAX_FUNCTION_LINES) -> list[str]:
    found = []
    for module in modules.values():
        if _exempt(module):
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(f"{module.file}:{node.lineno}: {node.name} is {length} lines (at most {limit})")
    return found


def long_modules(modules: Mapping[str, Module], limit: int = MAX_MODULE_LINES) -> list[str]:
    return [f"{m.file}: {m.lines} lines (at most {limit})" for m in modules.values()
            if m.lines > limit and not _exempt(m)]


@functools.cache
def risk_modules() -> dict[str, Module]:
    return read_modules(ROOT, PACKAGE)


@functools.cache
def risk_imports() -> list[Import]:
    return all_imports(risk_modules())


def _lines(found: list) -> str:
    return "\n".join(map(str, found))


def test_the_package_has_no_import_cycle():
    cycles = import_cycles(risk_imports())
    assert not cycles, "import cycles:\n" + "\n\n".join(_lines(cycle) for cycle in cycles)


def test_every_module_has_a_layer():
    assert not unlayered(risk_modules(), LAYERS), _lines(unlayered(risk_modules(), LAYERS))


def test_no_layer_imports_a_higher_one():
    found = upward_imports(risk_imports(), LAYERS)
    assert not found, "imports of a higher layer:\n" + _lines(found)


def test_no_module_takes_another_packages_private_names():
    found = private_imports(risk_imports())
    assert not found, "private names imported across packages:\n" + _lines(found)


def test_no_function_is_over_80_lines():
    found = long_functions(risk_modules())
    assert not found, "functions too long:\n" + _lines(found)


def test_no_module_is_over_400_lines():
    found = long_modules(risk_modules())
    assert not found, "modules too long:\n" + _lines(found)


# The checker itself, on a made-up package ``pkg`` (layer 0: pkg.base, pkg.util; layer 1: pkg.app) that breaks
# each rule once.
MADE_UP = {
    "pkg/__init__.py": "",
    "pkg/base/__init__.py": "",
    "pkg/base/one.py": "import pkg.base.two\n",
    # The cycle back is lazy and relative: ``..`` is pkg, so this is pkg.base.one.
    "pkg/base/two.py": "def later():\n    from ..base import one\n    return one\n",
    "pkg/base/three.py": "from pkg.util.helpers import _hidden, shown\nfrom pkg.util._impl import value\n",
    "pkg/base/four.py": "from .one import _inner\n",  # private, but within its own package: allowed
    "pkg/base/five.py": "from pkg import app\n",  # layer 0 importing layer 1
    "pkg/util/__init__.py": "",
    "pkg/util/_impl.py": "value = 1\n",
    "pkg/util/helpers.py": "_hidden = shown = 1\n",
    "pkg/util/long.py": "def long():\n" + "    x = 1\n" * 81 + "\n" * 320,
    "pkg/app.py": "from pkg.base.one import two\n",  # downward: allowed
    "pkg/stray.py": "",
}
MADE_UP_LAYERS = {"pkg": 0, "pkg.base": 0, "pkg.util": 0, "pkg.app": 1}


def made_up(tmp_path: Path) -> dict[str, Module]:
    for name, text in MADE_UP.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return read_modules(tmp_path, "pkg")


def test_the_checker_finds_a_cycle_through_a_lazy_relative_import(tmp_path: Path):
    cycles = import_cycles(all_imports(made_up(tmp_path)))
    assert cycles == [
        ["pkg/base/one.py:1: import pkg.base.two", "pkg/base/two.py:2: from ..base import one"]]


def test_the_checker_finds_an_import_of_a_higher_layer(tmp_path: Path):
    assert upward_imports(all_imports(made_up(tmp_path)), MADE_UP_LAYERS) == [
        "pkg/base/five.py:1: from pkg import app (layer 0 pkg.base.five imports layer 1 pkg.app)"]


def test_the_checker_finds_a_module_without_a_layer(tmp_path: Path):
    assert unlayered(made_up(tmp_path), MADE_UP_LAYERS) == ["pkg/stray.py: pkg.stray is in no layer"]


def test_the_checker_finds_private_names_taken_from_another_package(tmp_path: Path):
    assert private_imports(all_imports(made_up(tmp_path))) == [
        "pkg/base/three.py:1: from pkg.util.helpers import _hidden, shown (pkg.base.three takes _hidden from pkg.util)",
        "pkg/base/three.py:2: from pkg.util._impl import value (pkg.base.three takes _impl from pkg.util)"]


def test_the_checker_finds_a_long_function_and_a_long_module(tmp_path: Path):
    modules = made_up(tmp_path)
    assert long_functions(modules) == ["pkg/util/long.py:1: long is 82 lines (at most 80)"]
    assert long_modules(modules) == ["pkg/util/long.py: 402 lines (at most 400)"]
