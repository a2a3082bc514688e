"""Glue: the values the book's pages paste from the executed notebooks, and the contract
between them: every name a page pastes is glued by the notebook it names, and every name a
notebook glues is pasted somewhere (``glue_for_book`` glues only what the pages use; ``check``,
run when a run is published, finds any drift).

A notebook glues a value with ``myst_nb.glue(name, value, display=...)``; in the executed
notebook that is a ``display_data`` output of a code cell whose metadata holds
``{"scrapbook": {"name": name, "mime_prefix": prefix}}``, ``prefix`` being
``"application/papermill.record/"`` for ``display=False`` (the output's mime types carry it) and
``""`` for ``display=True``. A page pastes it with a role or a directive (myst-nb 1.x,
``myst_nb/ext/glue``), parsed here as myst-nb parses them:

- roles ``{glue}``, ``{glue:}`` and ``{glue:any}`` whose content is ``[doc::]name``;
- role ``{glue:text}`` whose content is ``[doc::]name[:format]`` (split at the last ``:``
  first, then at ``::``: with a ``doc::`` the format is required, as in myst-nb);
- directives ``{glue}``, ``{glue:}`` and ``{glue:any}`` with the name as argument and an
  optional ``:doc:`` option (also in a ``---`` YAML option block); backtick or colon fences;
- role ``{glue:md}`` whose content is ``name[:format]``, and directives ``{glue:md}``,
  ``{glue:figure}`` and ``{glue:math}``: these only ever paste from the page's own document
  (no ``doc``).

Names are not global across the book in myst-nb 1.x: a name without ``doc`` is looked up only
in the glue data of the document being parsed (``retrieve_glue_data``: the notebook's own
``nb_client.glue_data``; a plain Markdown page has none), a ``doc`` names the other document
by a path relative to the page, with its suffix (a pending reference, resolved after reading
from the ``<doc>.glue.json`` myst-nb writes to its output folder for every notebook that
glued something; an unknown name is a ``glue_ref`` warning). So here an unprefixed name
belongs to the page itself: for a notebook's Markdown cells, that notebook; for a ``book/*.md``
page, the page, which glues nothing, so ``check`` reports it. A ``doc`` is reduced to its file name
(``executed/05_plots.ipynb`` → ``05_plots.ipynb``).

Glue written inside a literal code block is counted too (the pages hold no such examples).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat

from ..core.paths import project_root

CROSS_DOC = {"glue", "glue:", "glue:any", "glue:text"}  # forms that accept doc::name / :doc:

_ROLE = re.compile(r"\{(glue(?::[a-z]*)?)\}(`+)(.*?)\2", re.S)
_DIRECTIVE = re.compile(r"^[ \t]*(`{3,}|:{3,})\{(glue(?::[a-z]*)?)\}[ \t]*(.*?)[ \t]*$", re.M)
_OPTION = re.compile(r"^[ \t]*:([\w-]+):[ \t]*(.*?)[ \t]*$")
_YAML_OPTION = re.compile(r"^[ \t]*([\w-]+)[ \t]*:[ \t]*(.*?)[ \t]*$")


@dataclass(frozen=True)
class GlueUse:
    """One paste: the page, its line, the role or directive, the notebook's file name (the
    page's own file name when no ``doc`` is given) and the glue name; ``local``: no ``doc``."""

    page: str
    line: int
    form: str
    notebook: str
    name: str
    local: bool


def glue_uses(pages: dict[str, str]) -> list[GlueUse]:
    """Every glue role and directive in ``pages`` ({page path: Markdown text}), in page order."""
    uses = []
    for page, text in pages.items():
        own = PurePosixPath(page).name
        for m in _DIRECTIVE.finditer(text):
            fence, form, name = m.groups()
            doc = _directive_options(text[m.end():], fence).get("doc") if form in CROSS_DOC \
                else None
            uses.append(_use(page, text, m.start(), form, own, name, doc))
        for m in _ROLE.finditer(text):
            form, content = m.group(1), m.group(3).strip()
            if form in ("glue:text", "glue:md"):  # key[:format], split at the last ":"
                key_fmt = content.rsplit(":", 1)
                content = key_fmt[0] if len(key_fmt) == 2 else content
            doc = None
            if form in CROSS_DOC and "::" in content:
                doc, content = content.split("::", 1)
            uses.append(_use(page, text, m.start(), form, own, content, doc))
    return sorted(uses, key=lambda u: (list(pages).index(u.page), u.line))


def used_names(pages: dict[str, str]) -> set[tuple[str, str]]:
    """The (notebook file name, glue name) pairs ``pages`` paste; a name without ``doc`` belongs
    to the page's own file (see the module's docstring)."""
    return {(u.notebook, u.name) for u in glue_uses(pages)}


def glued_names(notebook) -> set[str]:
    """The names an executed notebook (an nbformat node) glued: its code cells' outputs with
    ``scrapbook`` metadata."""
    return {output["metadata"]["scrapbook"]["name"]
            for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if "scrapbook" in output.get("metadata", {})}


def markdown_of(notebook) -> str:
    """A notebook's Markdown cells as one text (for ``glue_uses``; lines count across cells)."""
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def check(executed_dir: Path, pages_dir: Path, notebooks_dir: Path) -> list[str]:
    """The broken glue contract: what ``pages_dir/*.md`` and the Markdown of
    ``notebooks_dir/*.ipynb`` paste against what ``executed_dir/*.ipynb`` glued. A notebook's own
    names are checked in its executed copies: those whose papermill ``input_path`` is it (one
    source notebook can give several stages), else the copy of the same file name. [] when the
    contract holds."""
    executed_dir, pages_dir = Path(executed_dir), Path(pages_dir)
    notebooks_dir = Path(notebooks_dir)
    executed, source_of = {}, {}
    for path in sorted(executed_dir.glob("*.ipynb")):
        if path.name.startswith("."):  # a stage's partial output (.<stage>.running.ipynb)
            continue
        nb = nbformat.read(path, as_version=4)
        executed[path.name] = glued_names(nb)
        source = nb.metadata.get("papermill", {}).get("input_path")
        source_of[path.name] = PurePosixPath(source).name if source else path.name
    pages = {str(p): p.read_text() for p in sorted(pages_dir.glob("*.md"))}
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        pages[str(path)] = markdown_of(nbformat.read(path, as_version=4))

    problems, used, missing = [], set(), {}
    for use in glue_uses(pages):
        where = f"{use.page}:{use.line}: {{{use.form}}} {use.name!r}"
        if use.page.endswith(".ipynb") and use.local:
            targets = sorted(e for e, s in source_of.items() if s == use.notebook)
            if not targets:
                problems.append(f"{where}: {executed_dir} holds no executed copy of "
                                f"{use.notebook}")
        elif use.local and use.form == "glue:text" and use.name.endswith(".ipynb:"):
            problems.append(f"{where}: a {{glue:text}} naming its notebook needs a format "
                            f"(`<notebook>::name:s`): without one, myst-nb reads the name as "
                            f"the format")
            continue
        elif use.local:
            problems.append(
                f"{where} names no notebook: myst-nb looks it up in the page itself, which glues "
                f"nothing" + (" (write `executed/<notebook>.ipynb::name`, or the directive's "
                              ":doc: option)" if use.form in CROSS_DOC else
                              f" ({{{use.form}}} pastes only from the same notebook)"))
            continue
        elif use.notebook not in executed:
            missing.setdefault((use.page, use.notebook), []).append(use)
            continue
        else:
            targets = [use.notebook]
        for target in targets:
            used.add((target, use.name))
            if use.name not in executed[target]:
                close = difflib.get_close_matches(use.name, sorted(executed[target]), n=3)
                problems.append(f"{where}: {target} glues no {use.name!r}"
                                + (f" (close: {', '.join(close)})" if close else ""))
    for (page, notebook), uses in missing.items():
        names = ", ".join(dict.fromkeys(f"{u.name!r} (line {u.line})" for u in uses))
        problems.append(f"{page} pastes from {notebook}, which is not in {executed_dir}: {names}")
    for notebook, names in executed.items():
        for name in sorted(names):
            if (notebook, name) not in used:
                problems.append(f"{notebook} glues {name!r}, which no page uses")
    return problems


def _use(page, text, offset, form, own, name, doc) -> GlueUse:
    line = text.count("\n", 0, offset) + 1
    notebook = PurePosixPath(doc.strip()).name if doc else own
    return GlueUse(page, line, form, notebook, name.strip(), doc is None)


def _directive_options(rest: str, fence: str) -> dict[str, str]:
    """The ``:key: value`` lines (or the ``---`` YAML block) opening a directive's body."""
    lines = rest.split("\n")[1:]
    options = {}
    if lines and lines[0].strip() == "---":
        for line in lines[1:]:
            if line.strip() == "---":
                break
            if m := _YAML_OPTION.match(line):
                options[m.group(1)] = m.group(2)
        return options
    for line in lines:
        m = _OPTION.match(line)
        if not m or line.strip().startswith(fence[0] * 3):
            break
        options[m.group(1)] = m.group(2)
    return options


def book_pages(root: Path | None = None) -> dict[str, str]:
    """{page path: text} of the book's pages (``book/*.md`` under the project root)."""
    root = project_root() if root is None else root
    return {str(p.relative_to(root)): p.read_text() for p in sorted((root / "book").glob("*.md"))}


def names_used_from(notebook: str, pages: dict[str, str] | None = None) -> list[str]:
    """The glue names the book's pages paste from ``notebook`` (its file name, e.g.
    ``05_plots.ipynb``), sorted."""
    pages = book_pages() if pages is None else pages
    return sorted({name for nb, name in used_names(pages) if nb == notebook})


def glue_for_book(values: dict, notebook: str) -> dict:
    """Glue the entries of ``values`` that the book's pages paste from ``notebook`` (myst-nb,
    ``display=False``) and return them; the rest are the notebook's own to show. A name ending
    in ``_md`` holds Markdown, glued as its HTML (CommonMark, markdown-it): a page can paste a
    glued output from another document only as text, HTML or an image. A name a page pastes
    that ``values`` lacks is left to ``check`` to report when the run is published."""
    from IPython.display import HTML
    from markdown_it import MarkdownIt
    from myst_nb import glue

    wanted = {name: values[name] for name in names_used_from(notebook) if name in values}
    for name, value in wanted.items():
        html = name.endswith("_md") and MarkdownIt("commonmark").enable("table").render(value)
        glue(name, HTML(html) if html else value, display=False)
    return wanted
