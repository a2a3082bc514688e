"""Sphinx local extension (``sphinx: local_extensions`` in _config.yml): what readers get.

Three jobs, in every build of the book (``make paper``, ``make test``, ``make book``, a bare
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
  ``_static``): a smaller font, row labels and numbers on one line, numbers right-aligned, and
  a horizontal scroll bar where a table is wider than the column instead of being clipped.
"""
import html
import json
import re
from pathlib import Path

from docutils import nodes

__all__ = ["TABLE_CSS", "progress_bar_text", "remove_source_maps", "setup"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TABLE_CSS = """<style>
table.dataframe { display: block; max-width: 100%; overflow-x: auto; font-size: 0.82rem;
                  border-collapse: collapse; margin: 0.6rem 0 1rem; border: none; }
table.dataframe th, table.dataframe td { padding: 0.2rem 0.55rem; border: none;
                                         border-bottom: 1px solid var(--pst-color-border); }
table.dataframe tbody th, table.dataframe td { white-space: nowrap; }
table.dataframe td { text-align: right; font-variant-numeric: tabular-nums; }
table.dataframe thead th { vertical-align: bottom; text-align: right; }
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


def _table_style(app, pagename, templatename, context, doctree) -> None:
    context["metatags"] = context.get("metatags", "") + TABLE_CSS


def setup(app):
    app.connect("doctree-read", _final_progress_text)
    app.connect("html-page-context", _table_style)
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
