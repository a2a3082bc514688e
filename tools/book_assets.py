"""Sphinx local extension (``sphinx: local_extensions`` in _config.yml): what readers get.

Four jobs, in every build of the book (``make paper``, ``make test``, ``make book``, a bare
``jupyter-book build``):

- The theme copies its source maps (``*.map``, about 3.4 MB) into ``_build/html/_static``.
  A browser fetches a map only when its developer tools are open, so they are deleted once
  the HTML is written, with the ``sourceMappingURL`` comment that pointed at each one.
- The training notebooks show tqdm's progress bar, an ipywidget. The book shows its text
  form instead (``nb_mime_priority_overrides`` in _config.yml): the widget needs JavaScript
  from a CDN. But the text form stored in the notebook is the bar as it was created
  ("0/8 [00:00<?, ?it/s]"); the bar's final state lives in the notebook's saved widget
  state. The text is rewritten from that state, so the book reads as the bar ended.
- Tables (pandas' ``table.dataframe``, in notebook outputs and pasted by ``glue``) get a
  compact style (``TABLE_CSS``, in each page's head: no static file, see _config.yml on
  ``_static``): a smaller font, numbers on one line and right-aligned, headers and row labels
  that wrap, and a horizontal scroll bar where a table is still wider than the column instead
  of being clipped. Every table of a page is typeset to fit the column at 1280 px
  (``typeset_tables``): its header cells may break at a camelCase boundary ("Coverage|MLP"),
  after "_" and before "("; a long hash in a cell every 16 characters; a path in code after
  "/". The breaks are ``<wbr>``: where the line does not break, nothing shows, and a copied
  cell reads as it did. "mean ± half-width" is set with narrow no-break spaces. The index's
  tables (Sphinx's) may break their long dotted names.
- A script the theme's extensions register twice (an inline ``const`` declaration among
  them, a SyntaxError on every page) is written once (``unique_scripts``).
"""
import html
import json
import re
from pathlib import Path

from docutils import nodes

__all__ = ["TABLE_CSS", "header_breaks", "progress_bar_text", "remove_source_maps",
           "setup", "typeset_tables", "unique_scripts"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TABLE_CSS = """<style>
table.dataframe { display: block; max-width: 100%; overflow-x: auto; font-size: 0.74rem;
                  border-collapse: collapse; margin: 0.6rem 0 1rem; border: none; }
table.dataframe th, table.dataframe td { padding: 0.15rem 0.3rem; border: none;
                                         border-bottom: 1px solid var(--pst-color-border); }
table.dataframe td { white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums; }
table.dataframe thead th, table.dataframe tbody th { white-space: normal; }
/* "thead tr th" outranks the rules of pandas' <style scoped>, which browsers do not scope */
table.dataframe thead tr th { vertical-align: bottom; text-align: right; }
table.dataframe tbody th { text-align: left; }
article table td code span.pre { white-space: normal; }
table.indextable td, table.indextable td a { overflow-wrap: anywhere; }
article table:not(.dataframe) td, article table:not(.dataframe) th { vertical-align: top; }
article table:not(.dataframe) tbody tr { border-bottom: 1px solid var(--pst-color-border); }
</style>"""


def remove_source_maps(outdir) -> list[Path]:
    """Delete every ``*.map`` under ``outdir/_static``; return the deleted paths.

    The comment naming a deleted map (``//# sourceMappingURL=x.js.map`` in ``x.js``,
    ``/*# sourceMappingURL=x.css.map*/`` in ``x.css``) is removed from the file beside it.
    """
    static = Path(outdir) / "_static"
    removed = sorted(static.rglob("*.map")) if static.is_dir() else []
    for map_path in removed:
        map_path.unlink()
        source = map_path.with_suffix("")  # x.js.map -> x.js
        if source.is_file():
            comment = re.compile(
                r"^/[*/]# sourceMappingURL=" + re.escape(map_path.name) + r"(\s*\*/)?\s*$",
                re.MULTILINE)
            text = source.read_text(encoding="utf-8")
            stripped = comment.sub("", text)
            if stripped != text:
                source.write_text(stripped, encoding="utf-8")
    return removed


def progress_bar_text(widget_state: dict, model_id: str) -> str | None:
    """tqdm's text line for its notebook widget ``model_id`` in a saved widget state.

    ``tqdm.notebook`` draws an HBox of three widgets: HTML (description and percentage),
    FloatProgress, HTML (counts, times, postfix); the text form puts a 10-character bar
    between the two. None when ``model_id`` is not such a box.
    """
    box = widget_state.get(model_id, {}).get("state", {})
    children = [widget_state.get(child.removeprefix("IPY_MODEL_"), {})
                for child in box.get("children", [])]
    if [child.get("model_name") for child in children] != [
            "HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, progress, right = (child.get("state", {}) for child in children)
    fraction = progress.get("value", 0) / progress["max"] if progress.get("max") else 0
    filled = round(10 * min(max(fraction, 0), 1))
    line = f"{left.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(line).replace("\u2007", " ")  # tqdm pads the HTML with figure spaces


def _final_progress_text(app, doctree) -> None:
    source = Path(app.env.doc2path(app.env.docname))
    bundles = [node for node in doctree.findall(nodes.container)
               if node.get("nb_element") == "mime_bundle"
               and {WIDGET_VIEW, "text/plain"} <= {child.get("mime_type") for child in node.children}]
    if source.suffix != ".ipynb" or not bundles:
        return
    metadata = json.loads(source.read_text(encoding="utf-8")).get("metadata", {})
    widget_state = metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for bundle in bundles:
        by_type = {child["mime_type"]: child for child in bundle.children}
        model_id = re.search(r'"model_id":\s*"(\w+)"', by_type[WIDGET_VIEW].astext())
        text = model_id and progress_bar_text(widget_state, model_id.group(1))
        if text:
            for block in by_type["text/plain"].findall(nodes.literal_block):
                block[:] = [nodes.Text(text)]
                block.rawsource = text


def _on_build_finished(app, exception) -> None:
    # Only the HTML builders copy the theme's _static; a failed build is left as it is.
    if exception is None and app.builder.format == "html":
        remove_source_maps(app.outdir)


_TABLE = re.compile(r"<table\b.*?</table>", re.S)
_CELL = re.compile(r"(<(t[hd])\b[^>]*>)(.*?)(</\2>)", re.S)
_TAG = re.compile(r"(<[^>]*>)")
_CAMEL = re.compile(r"(?<=[a-z]{3})(?=[A-Z][A-Za-z0-9])")  # CoverageMLP -> Coverage|MLP, not Qo|S
_UNDERSCORE = re.compile(r"(?<=[^\W_])_(?=[^\W_])")  # mae_vs_median -> mae_|vs_|median
_PAREN = re.compile(r"(?<=\S)\(")             # ood_multiple(dB) -> ood_multiple|(dB)
_HASH = re.compile(r"[0-9a-f]{32,}")          # a sha256 or a git commit in full
_PATH = re.compile(r"/(?=[^/\s<])")             # data/paper/models -> data/|paper/|models
WBR = "<wbr>"


def header_breaks(text: str) -> str:
    """``text`` (a header cell's HTML) with a ``<wbr>`` at each camelCase boundary (three
    lower-case letters, then a capital and a letter or digit: "Coverage|MLP", not "Qo|S"),
    after each "_" between letters or digits and before each "(" that follows a non-space:
    where a narrow column may break a label without cutting a word."""
    return "".join(part if part.startswith("<") else
                   _PAREN.sub(WBR + "(", _UNDERSCORE.sub("_" + WBR, _CAMEL.sub(WBR, part)))
                   for part in _TAG.split(text))


def _cell_breaks(text: str, header: bool) -> str:
    out, in_code = [], False
    for part in _TAG.split(text):
        if part.startswith("<"):
            in_code = (in_code or part.startswith("<code")) and not part.startswith("</code")
        else:
            part = _HASH.sub(lambda m: WBR.join(m.group()[i:i + 16]
                                                for i in range(0, len(m.group()), 16)), part)
            if in_code:
                part = _PATH.sub("/" + WBR, part)
            else:  # "mean ± half-width" with narrow no-break spaces: one unit
                part = part.replace(" ± ", "&#8239;±&#8239;")
        out.append(part)
    text = "".join(out)
    return header_breaks(text) if header else text


def typeset_tables(body: str) -> str:
    """Every table in ``body`` (a page's HTML) with break opportunities (``<wbr>``) where a
    narrow column may break a cell: header cells (``th``: column headers and row labels) at
    camelCase boundaries, after "_" and before "(" (``header_breaks``); any cell in a long
    hexadecimal hash every 16 characters and in inline code after each "/" (a path); " ± "
    outside code with narrow no-break spaces. Nothing outside tables and no tag changes."""
    def table(match):
        return _CELL.sub(lambda c: c.group(1) + _cell_breaks(c.group(3), c.group(2) == "th")
                         + c.group(4), match.group())

    return _TABLE.sub(table, body)


def unique_scripts(scripts) -> list:
    """``scripts`` (a page's ``script_files``) without repeats: an inline script or a file
    listed twice with the same attributes is kept once, where it first appears. The theme's
    extensions register some inline scripts twice, and a second ``const THEBE_JS_URL = ...``
    is a SyntaxError in the reader's console on every page."""
    seen, out = set(), []
    for script in scripts:
        key = (str(getattr(script, "filename", script)),
               tuple(sorted((getattr(script, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            out.append(script)
    return out


def _table_style(app, pagename, templatename, context, doctree) -> None:
    if context.get("script_files"):
        context["script_files"] = unique_scripts(context["script_files"])
    context["metatags"] = context.get("metatags", "") + TABLE_CSS
    if context.get("body"):
        context["body"] = typeset_tables(context["body"])


def setup(app):
    app.connect("doctree-read", _final_progress_text)
    app.connect("html-page-context", _table_style)
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
