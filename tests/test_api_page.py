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


def test_the_page_is_the_one_tools_api_page_writes():
    """The page follows the layers: regenerate it with `python tools/api_page.py`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("api_page", REPO / "tools" / "api_page.py")
    api_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api_page)
    assert (REPO / "book" / "api.md").read_text() == api_page.page(), \
        "book/api.md is out of date: run python tools/api_page.py"
