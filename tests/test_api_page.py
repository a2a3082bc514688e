"""The book's API page documents every module of coverage_lib (autodoc, one section each)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_library_module_has_a_section():
    page = (REPO / "book" / "api.md").read_text()
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts)
                     for p in (REPO / "coverage_lib").rglob("*.py")
                     if p.name not in ("__init__.py", "__main__.py"))
    missing = [m for m in modules if f".. automodule:: {m}\n" not in page]
    assert not missing, f"book/api.md has no section for {missing}"
