"""The glue contract (coverage_lib/report/glue_contract.py) on small synthetic books, and its parser on
the real pages."""
import re
from pathlib import Path

import nbformat
import pytest

from coverage_lib.report import glue_contract
from coverage_lib.report.glue_contract import check, glued_names, used_names

REPO = Path(__file__).resolve().parents[1]
RECORD = "application/papermill.record/"


def glued_output(name, text, display=False):
    """A glued value's output in an executed notebook, as ``myst_nb.glue`` writes it (checked
    against myst_nb itself in ``test_the_fixture_is_what_myst_nb_glue_writes``)."""
    prefix = "" if display else RECORD
    return nbformat.v4.new_output("display_data", data={prefix + "text/plain": text},
                                  metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})


def write_executed(folder, stage, names, source=None):
    """``folder/<stage>.ipynb``, executed: one code cell gluing ``names`` (the first one shown),
    papermill's ``input_path`` the source notebook (default: the stage's own)."""
    cell = nbformat.v4.new_code_cell("glue_all(values)", execution_count=1, outputs=[
        glued_output(name, "1.5", display=i == 0) for i, name in enumerate(names)])
    cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="not glued\n"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A stage"), cell])
    nb.metadata["papermill"] = {"input_path": f"/somewhere/notebooks/{source or stage}.ipynb"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{stage}.ipynb")


def write_source(folder, name, markdown):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown),
                                         nbformat.v4.new_code_cell("x = 1")])
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


RESULTS_PAGE = """# Results
The test split holds {glue:text}`executed/05_plots.ipynb::n_test:,.0f` links, over
{glue:text}`executed/04b_seeds.ipynb::seeds_n:.0f` seeds.

```{glue} table_test_mae
:doc: executed/05_plots.ipynb
```

:::{glue:any} table_bands
---
doc: executed/05_plots.ipynb
---
:::
"""


@pytest.fixture
def book(tmp_path):
    """A book whose contract holds: two pages, the stages they paste from, and the shared
    training notebook, whose prose pastes its own (unprefixed) glued number."""
    executed, pages, notebooks = tmp_path / "executed", tmp_path / "book", tmp_path / "notebooks"
    write_executed(executed, "05_plots", ["n_test", "table_test_mae", "table_bands"])
    write_executed(executed, "04b_seeds", ["seeds_n"])
    write_executed(executed, "03b_train_mlp_law", ["epochs"], source="train")
    write_executed(executed, "01_data", [])
    pages.mkdir()
    (pages / "results.md").write_text(RESULTS_PAGE)
    (pages / "intro.md").write_text("Trained on {glue:text}`executed/04b_seeds.ipynb::seeds_n:d`"
                                    " seeds; {glue}`executed/05_plots.ipynb::n_test` links.\n")
    write_source(notebooks, "train", "It ran {glue:text}`epochs:.0f` epochs.")
    write_source(notebooks, "01_data", "# The data (no glue)")
    return executed, pages, notebooks


def test_the_contract_holds(book):
    assert check(*book) == []


def test_a_name_no_notebook_glues(book):
    executed, pages, notebooks = book
    (pages / "training.md").write_text("Best: {glue:text}`executed/05_plots.ipynb::n_tests:d`\n")
    [problem] = check(*book)
    for fragment in ("training.md", "05_plots.ipynb", "'n_tests'", "close: n_test"):
        assert fragment in problem


def test_a_glued_name_no_page_uses(book):
    executed, pages, notebooks = book
    write_executed(executed, "05_plots", ["n_test", "table_test_mae", "table_bands", "n_train"])
    assert check(*book) == ["05_plots.ipynb glues 'n_train', which no page uses"]


def test_a_page_naming_a_missing_notebook(book):
    executed, pages, notebooks = book
    (pages / "selector.md").write_text("```{glue} table_routing\n:doc: executed/07_x.ipynb\n```\n")
    [problem] = check(*book)
    for fragment in ("selector.md", "07_x.ipynb", "'table_routing'", "not in"):
        assert fragment in problem


def test_a_page_pasting_without_naming_the_notebook(book):
    # myst-nb 1.x looks an unprefixed name up in the page's own document only
    executed, pages, notebooks = book
    (pages / "models.md").write_text("```{glue} table_bands\n```\n")
    [problem] = check(*book)
    assert "models.md" in problem and "'table_bands'" in problem and "names no notebook" in problem


def test_a_glue_text_naming_its_notebook_without_a_format(book):
    executed, pages, notebooks = book
    (pages / "training.md").write_text("{glue:text}`executed/05_plots.ipynb::n_test`\n")
    [problem] = check(*book)
    assert "training.md" in problem and "needs a format" in problem


def test_a_notebook_pasting_its_own_name_that_it_does_not_glue(book):
    executed, pages, notebooks = book
    write_source(notebooks, "train", "It ran {glue:text}`epochs:.0f` epochs, {glue}`best`.")
    [problem] = check(*book)
    assert "train.ipynb" in problem and "03b_train_mlp_law.ipynb glues no 'best'" in problem


# page text → the (notebook, name) pairs it uses, as myst-nb reads them
USES = [
    ("{glue:text}`executed/04b_seeds.ipynb::seeds_n:.0f`", {("04b_seeds.ipynb", "seeds_n")}),
    ("{glue:text}`n_test:,.0f` and {glue:text}`n_test`", {("page.md", "n_test")}),
    ("{glue}`executed/05_plots.ipynb::bf16` {glue:}`a` {glue:any}`../x/y.ipynb::b`",
     {("05_plots.ipynb", "bf16"), ("page.md", "a"), ("y.ipynb", "b")}),
    ("{glue:md}`verdict_md:myst`", {("page.md", "verdict_md")}),
    # myst-nb splits off the format first: with a notebook but no format, the name is lost
    ("{glue:text}`executed/05_plots.ipynb::n_test`", {("page.md", "executed/05_plots.ipynb:")}),
    ("````{glue} t\n:doc: executed/05_plots.ipynb\n:other: 1\n````", {("05_plots.ipynb", "t")}),
    ("```{glue:figure} fig\n:doc: executed/05_plots.ipynb\n:name: f\n```", {("page.md", "fig")}),
    ("  ```{glue:md} m\n  :format: myst\n  ```", {("page.md", "m")}),
]


@pytest.mark.parametrize("text, expected", USES)
def test_used_names(text, expected):
    assert used_names({"book/page.md": text}) == expected


def test_the_fixture_is_what_myst_nb_glue_writes(monkeypatch):
    from myst_nb.ext import glue

    shown = []
    monkeypatch.setattr(glue, "ipy_display", lambda bundle, raw, metadata: shown.append(
        nbformat.v4.new_output("display_data", data=bundle, metadata=metadata)))
    glue.glue("hidden", 1.5, display=False)
    glue.glue("shown", 1.5)
    assert shown == [glued_output("hidden", "1.5"), glued_output("shown", "1.5", display=True)]
    assert shown[0]["metadata"] == {"scrapbook": {"name": "hidden", "mime_prefix": RECORD}}
    assert glued_names(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        outputs=shown)])) == {"hidden", "shown"}


def test_every_glue_use_in_the_real_pages_is_understood():
    pages = {str(p.relative_to(REPO)): p.read_text() for p in sorted((REPO / "book").glob("*.md"))}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        pages[str(path.relative_to(REPO))] = glue_contract.markdown_of(nbformat.read(path, 4))
    uses = glue_contract.glue_uses(pages)
    assert len(uses) == sum(len(re.findall(r"\{glue", text)) for text in pages.values())
    assert len(uses) >= 60  # the pages paste about 66 values
    # the book's executed notebooks: the stages _toc.yml lists under book/executed/
    stages = {f"{s}.ipynb" for s in re.findall(r"file:\s*book/executed/(\w+)",
                                               (REPO / "_toc.yml").read_text())}
    assert {"04b_seeds.ipynb", "05_plots.ipynb", "03b_train_mlp_law.ipynb"} <= stages
    for use in uses:
        assert re.fullmatch(r"[A-Za-z_]\w*", use.name), use
        if use.page.endswith(".md"):
            assert not use.local and use.notebook in stages, use
        else:  # a notebook's own prose: that notebook (train.ipynb: stage 03b_train_mlp_law)
            assert use.notebook in stages | {"train.ipynb"}, use
