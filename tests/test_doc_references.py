"""Every dotted name of the library that the docs cite (README, data/README.md, the book's
pages, the notebooks, the library's own docstrings and comments) names a module or an
attribute that exists: a move inside coverage_lib cannot leave a page pointing nowhere. Both
forms: the full ``coverage_lib.core.schema.FEATURES`` anywhere, and the short ``schema.FEATURES``
(a module's last name, then an attribute) inside backquotes."""
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"coverage_lib(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
QUOTED = re.compile(r"`+([^`]+)`+")
SHORT = re.compile(r"(?<![\w.])([a-z_][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")
FILE_ENDINGS = {"py", "ipynb", "json", "md", "yaml", "js", "css", "txt", "npz", "html"}


def texts() -> dict:
    found = {p: p.read_text() for p in [REPO / "README.md", REPO / "data" / "README.md",
                                        *(REPO / "book").glob("*.md"),
                                        *(REPO / "coverage_lib").rglob("*.py")]}
    for path in (REPO / "notebooks").glob("*.ipynb"):
        found[path] = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    return found


def resolves(reference: str) -> bool:
    parts = reference.split(".")
    for i in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_cited_library_name_exists():
    broken = sorted({(str(path.relative_to(REPO)), ref) for path, text in texts().items()
                     for ref in REFERENCE.findall(text) if not resolves(ref)})
    assert not broken, "names that no longer exist: " + "; ".join(f"{f}: {r}" for f, r in broken)


def test_the_check_catches_a_moved_name():
    assert resolves("coverage_lib.core.schema.FEATURES")
    assert not resolves("coverage_lib.dataset.FEATURES")  # where it was before the layers


def short_modules() -> dict:
    """{last name: [full names]} of every coverage_lib module and package."""
    import coverage_lib

    found = {"coverage_lib": ["coverage_lib"]}
    for info in pkgutil.walk_packages(coverage_lib.__path__, "coverage_lib."):
        found.setdefault(info.name.rsplit(".", 1)[1], []).append(info.name)
    return found


def short_resolves(full: str, name: str) -> bool:
    """Whether module ``full`` has ``name``: an attribute, a submodule, or a method of one of
    its classes (``selector.predict`` where ``selector`` is a ``Selector``)."""
    module = importlib.import_module(full)
    if hasattr(module, name) or resolves(f"{full}.{name}"):
        return True
    return any(hasattr(c, name) for _, c in inspect.getmembers(module, inspect.isclass)
               if c.__module__ == full)


def short_references(text: str, modules: dict) -> set:
    """The ``module.NAME`` forms inside backquotes whose first name is a library module's."""
    return {m.groups() for span in QUOTED.findall(text) for m in SHORT.finditer(span)
            if m.group(1) in modules and m.group(2) not in FILE_ENDINGS}


def test_every_short_cited_name_exists():
    modules = short_modules()
    broken = sorted({(str(path.relative_to(REPO)), f"{short}.{name}")
                     for path, text in texts().items()
                     for short, name in short_references(text, modules)
                     if not any(short_resolves(full, name) for full in modules[short])})
    assert not broken, "short names that no longer exist: " + "; ".join(
        f"{f}: {r}" for f, r in broken)


def test_the_short_check_catches_a_moved_name():
    modules = short_modules()
    found = short_references("see ``physics.ASSUMPTIONS`` and `schema.FEATURES`, not a.b", modules)
    assert found == {("physics", "ASSUMPTIONS"), ("schema", "FEATURES")}
    assert not any(short_resolves(full, "ASSUMPTIONS") for full in modules["physics"])
    assert any(short_resolves(full, "ASSUMPTIONS") for full in modules["propagation"])
