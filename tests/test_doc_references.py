"""Every dotted name of the library that the docs cite (README, data/README.md, the book's
pages, the notebooks, the library's own docstrings and comments) names a module or an
attribute that exists: a move inside coverage_lib cannot leave a page pointing nowhere."""
import importlib
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"coverage_lib(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


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
