"""Notebooks narrate, call the library and show (the house style): at most 40 lines of code
outside the parameters cell, and no loop, comprehension or function definition in a cell; the
logic lives in coverage_lib, where it is tested."""
import ast
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_CODE_LINES = 40
LOGIC = (ast.For, ast.While, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp,
         ast.FunctionDef, ast.Lambda, ast.ClassDef)


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_notebook_narrates_and_calls(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    lines = sum(len(c.source.splitlines()) for c in cells)
    assert lines <= MAX_CODE_LINES, f"{path.name}: {lines} lines of code"
    for cell in cells:
        found = [type(n).__name__ for n in ast.walk(ast.parse(cell.source))
                 if isinstance(n, LOGIC)]
        assert not found, f"{path.name}: {found} in a cell:\n{cell.source}"
