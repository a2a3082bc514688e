"""The layer rule of ``coverage_lib``, read from the source with ``ast`` (nothing is imported).

``coverage_lib/__init__.py`` declares ``LAYERS`` (bottom to top), each a subpackage
``coverage_lib/<layer>/``. A module may import modules of its own layer or of the layers below;
the top-level ``__init__`` imports nothing from the package (it counts as below every layer) and
``__main__``, the entry point, may import anything (it counts as above every layer). Every other
module lies in a layer, and no modules import one another in a circle.

Every import counts, at any depth: module level, inside functions, under ``if TYPE_CHECKING``.
Imports by string (``importlib.import_module("coverage_lib.x")``) are not seen.
"""
import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "coverage_lib"
WHOLE_MODULE = "(whole module)"  # the "name" of an ``import a.b`` edge


def declared_layers(package_dir):
    """``LAYERS`` as assigned in ``<package>/__init__.py`` (parsed, not imported)."""
    tree = ast.parse((Path(package_dir) / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "LAYERS" for t in targets):
                return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"{package_dir}/__init__.py assigns no LAYERS tuple")


def modules(package_dir):
    """{dotted module name: file} of every .py under the package (a package is its __init__)."""
    package_dir = Path(package_dir)
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(package_dir):
    """{importer: {imported: names}} over the package's modules: every import of one of its
    modules, at any depth, relative ones resolved. ``from p import m`` with ``m`` a module is an
    edge to ``p.m``; ``from m import name`` an edge to ``m`` tied by ``name``."""
    package_dir = Path(package_dir)
    package = package_dir.name
    known = modules(package_dir)
    graph = {}
    for module, path in known.items():
        edges = graph.setdefault(module, {})
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        edges.setdefault(alias.name, set()).add(WHOLE_MODULE)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, up level - 1
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if not (source == package or source.startswith(package + ".")):
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    target = sub if sub in known else source
                    edges.setdefault(target, set()).add(alias.name)
    return graph


def layer_of(module, package, layers):
    """Index of the module's layer: -1 for the top-level __init__, len(layers) for __main__,
    None for a module in no layer."""
    parts = module.split(".")
    if parts == [package]:
        return -1
    if parts == [package, "__main__"]:
        return len(layers)
    if len(parts) > 1 and parts[1] in layers:
        return layers.index(parts[1])
    return None


def circles(graph):
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    nodes = sorted(set(graph) | {t for edges in graph.values() for t in edges})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def violations(package_dir, layers):
    """Human-readable messages: upward imports, modules in no layer, circles. [] when clean."""
    package = Path(package_dir).name
    layers = tuple(layers)
    names = {-1: "top level", len(layers): "entry point", **dict(enumerate(layers))}
    graph = import_graph(package_dir)
    messages = []
    for module in sorted(graph):
        if layer_of(module, package, layers) is None:
            messages.append(f"{module} is in no layer (layers: {', '.join(layers)})")
    for module, edges in sorted(graph.items()):
        i = layer_of(module, package, layers)
        for target, tied in sorted(edges.items()):
            j = layer_of(target, package, layers)
            if i is not None and j is not None and j > i:
                messages.append(f"{module} ({names[i]}) imports {target} ({names[j]}), above it: "
                                f"{', '.join(sorted(tied))}")
    for component in circles(graph):
        members = set(component)
        ties = [f"{a} imports {b} ({', '.join(sorted(graph[a][b]))})"
                for a in component for b in sorted(graph.get(a, ())) if b in members]
        messages.append(f"circle among {', '.join(component)}: {'; '.join(ties)}")
    return messages


def test_the_package_keeps_its_layers():
    found = violations(PACKAGE_DIR, declared_layers(PACKAGE_DIR))
    assert found == [], "\n".join(found)


# Synthetic packages "toy" with layers core < physics < report: {file: source}, and the
# fragments a message must hold.
LAYERS = ("core", "physics", "report")
BASE = {"__init__.py": "", "core/__init__.py": "", "core/schema.py": "FEATURES = ()\n",
        "physics/__init__.py": "", "report/__init__.py": "",
        "report/tables.py": "def render():\n    pass\n"}
CASES = {
    "upward at module level": (
        {"core/util.py": "from toy.report.tables import render\n"},
        ["toy.core.util (core) imports toy.report.tables (report), above it: render"]),
    "upward inside a function": (
        {"physics/rules.py": "def f():\n    from toy.report import tables\n"},
        ["toy.physics.rules (physics) imports toy.report.tables (report), above it: tables"]),
    "upward under TYPE_CHECKING": (
        {"core/util.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    import toy.physics.rules\n", "physics/rules.py": ""},
        ["toy.core.util (core) imports toy.physics.rules (physics), above it: (whole module)"]),
    "relative upward": (
        {"physics/rules.py": "from ..report import tables\n"},
        ["toy.physics.rules (physics) imports toy.report.tables (report), above it: tables"]),
    "relative upward to a package's __init__": (
        {"physics/rules.py": "from ..report import render\n",
         "report/__init__.py": "from .tables import render\n"},
        ["toy.physics.rules (physics) imports toy.report (report), above it: render"]),
    "the top-level __init__ imports": (
        {"__init__.py": "from .core import schema\n"},
        ["toy (top level) imports toy.core.schema (core), above it: schema"]),
    "circle inside one layer": (
        {"core/a.py": "from .b import g\ndef f():\n    pass\n",
         "core/b.py": "def g():\n    from toy.core.a import f\n"},
        ["circle among toy.core.a, toy.core.b", "toy.core.a imports toy.core.b (g)",
         "toy.core.b imports toy.core.a (f)"]),
    "circle through a subpackage's __init__": (
        {"core/__init__.py": "from .a import f\n", "core/a.py": "from . import schema\n"
                                                                "from toy.core import g\n"},
        ["circle among toy.core, toy.core.a", "toy.core imports toy.core.a (f)",
         "toy.core.a imports toy.core (g)"]),
    "a module importing itself": (
        {"core/a.py": "from . import a\n"}, ["circle among toy.core.a: toy.core.a imports "
                                              "toy.core.a (a)"]),
    "module directly in the package": (
        {"helpers.py": ""}, ["toy.helpers is in no layer"]),
    "module in an unlisted subpackage": (
        {"extras/__init__.py": "", "extras/widgets.py": ""},
        ["toy.extras is in no layer", "toy.extras.widgets is in no layer"]),
}


def write_package(root, files):
    for name, source in {**BASE, **files}.items():
        path = root / "toy" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root / "toy"


@pytest.mark.parametrize("files, expected", CASES.values(), ids=CASES.keys())
def test_violations_are_caught(tmp_path, files, expected):
    found = "\n".join(violations(write_package(tmp_path, files), LAYERS))
    for fragment in expected:
        assert fragment in found


def test_a_clean_downward_tree_has_no_violation(tmp_path):
    package = write_package(tmp_path, {
        "__init__.py": 'LAYERS = ("core", "physics", "report")\n__version__ = "0"\n',
        "__main__.py": "from toy.report import tables\nfrom . import physics\n",
        "core/__init__.py": "from .schema import FEATURES\n",
        "core/util.py": "import os\nfrom toy import __version__\nfrom .schema import FEATURES\n",
        "physics/rules.py": "from ..core import schema\nfrom ..core.schema import FEATURES\n"
                            "def f():\n    from toy.core.util import os\n",
        "report/tables.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                            "    import toy.physics.rules\nfrom . import plots\n",
        "report/plots.py": "import toy.core\n"})
    assert declared_layers(package) == LAYERS
    assert violations(package, declared_layers(package)) == []
    graph = import_graph(package)
    assert graph["toy.physics.rules"] == {"toy.core.schema": {"schema", "FEATURES"},
                                          "toy.core.util": {"os"}}
    assert graph["toy.report.tables"] == {"toy.physics.rules": {"(whole module)"},
                                          "toy.report.plots": {"plots"}}
    assert graph["toy.__main__"] == {"toy.report.tables": {"tables"}, "toy.physics": {"physics"}}
