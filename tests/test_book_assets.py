"""The built book is light and offline: tools/book_assets.py and the book's _config.yml."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
SPHINX_CONFIG = CONFIG["sphinx"]["config"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def load_book_assets():
    spec = importlib.util.spec_from_file_location("book_assets", REPO / "tools" / "book_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_loads_the_local_extension():
    path = CONFIG["sphinx"]["local_extensions"]["book_assets"]
    assert (REPO / path / "book_assets.py").is_file()


def test_build_finished_removes_source_maps(tmp_path):
    static = tmp_path / "_static"
    (static / "scripts").mkdir(parents=True)
    (static / "styles").mkdir()
    (static / "scripts" / "theme.js").write_text("f();\n//# sourceMappingURL=theme.js.map")
    (static / "scripts" / "theme.js.map").write_text("{}")
    (static / "styles" / "theme.css").write_text("a{}\n/*# sourceMappingURL=theme.css.map*/")
    (static / "styles" / "theme.css.map").write_text("{}")
    (static / "keep.js").write_text("g();")

    class App:  # what the build-finished hook reads from Sphinx
        outdir = str(tmp_path)
        builder = type("Builder", (), {"format": "html"})()

    hooks = {}
    load_book_assets().setup(type("Sphinx", (), {"connect": lambda self, e, f: hooks.setdefault(e, f)})())
    hooks["build-finished"](App(), None)

    assert not list(tmp_path.rglob("*.map"))
    assert (static / "scripts" / "theme.js").read_text().strip() == "f();"
    assert (static / "styles" / "theme.css").read_text().strip() == "a{}"
    assert (static / "keep.js").read_text() == "g();"


def tqdm_state(value, total):
    """The widget state tqdm.notebook leaves in a notebook: an HBox of HTML, FloatProgress, HTML."""
    def model(name, **state):
        return {"model_name": name, "state": state}
    return {
        "box": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]),
        "left": model("HTMLModel", value="mlp\u2007epochs:\u2007100%"),
        "bar": model("FloatProgressModel", value=value, max=total),
        "right": model("HTMLModel", value="\u20078/8\u2007[00:04&lt;00:00,\u2007\u20071.75it/s]"),
    }


@pytest.mark.parametrize("value, bar", [(8.0, "██████████"), (4.0, "█████     "), (0.0, " " * 10)])
def test_progress_bar_text_is_tqdm_text_form(value, bar):
    text = load_book_assets().progress_bar_text(tqdm_state(value, 8.0), "box")
    assert text == f"mlp epochs: 100%|{bar}| 8/8 [00:04<00:00,  1.75it/s]"


def test_progress_bar_text_ignores_other_widgets():
    state = {"slider": {"model_name": "IntSliderModel", "state": {"value": 3}}}
    assert load_book_assets().progress_bar_text(state, "slider") is None
    assert load_book_assets().progress_bar_text({}, "missing") is None


def test_widgets_rank_below_text_for_html():
    overrides = {(builder, mime): rank for builder, mime, rank in
                 SPHINX_CONFIG["nb_mime_priority_overrides"]}
    # myst-nb's base ranks for html: text/plain 100, lower is preferred.
    assert overrides[("html", WIDGET_VIEW)] is None or overrides[("html", WIDGET_VIEW)] > 100


def test_config_names_no_remote_script():
    assert SPHINX_CONFIG["nb_ipywidgets_js"] == {}, "myst-nb's default loads require.js and the widget manager from CDNs"
    remote = re.compile(r"https?://|//cdn|jsdelivr|unpkg|cloudflare", re.IGNORECASE)
    assert not remote.search(json.dumps(SPHINX_CONFIG))
    assert not any(remote.search(p) for p in SPHINX_CONFIG["html_static_path"])
    assert not remote.search(SPHINX_CONFIG["mathjax_path"])


def test_mathjax_paths_agree():
    """_config.yml serves the folder that tools/vendor_mathjax.sh fills and the Makefile checks."""
    makefile = (REPO / "Makefile").read_text()
    mathjax = re.search(r"^MATHJAX := (\S+)$", makefile, re.MULTILINE).group(1)
    assert mathjax == f"{SPHINX_CONFIG['html_static_path'][0]}/{SPHINX_CONFIG['mathjax_path']}"
    assert "build/mathjax/static" in (REPO / "tools" / "vendor_mathjax.sh").read_text()


def test_header_cells_may_break_between_words_not_within():
    header_breaks = load_book_assets().header_breaks
    assert header_breaks("CoverageMLP + law head") == "Coverage<wbr>MLP + law head"
    assert header_breaks("CoverageMamba3") == "Coverage<wbr>Mamba3"
    assert header_breaks("ood_multiple") == "ood_<wbr>multiple"
    assert header_breaks("oracle(noise floor)") == "oracle<wbr>(noise floor)"
    assert header_breaks("oracle (noise floor)") == "oracle (noise floor)"  # a space already
    for word in ("QoS score [QoS units]", "SINR [dB]", "received power", "_private"):
        assert header_breaks(word) == word  # no break inside an acronym or a short word
    # tags and their attributes are left alone
    assert header_breaks('<a href="x_y">RainRate</a>') == '<a href="x_y">Rain<wbr>Rate</a>'


def test_tables_are_typeset_and_nothing_else():
    typeset = load_book_assets().typeset_tables
    sha = "0123456789abcdef" * 4
    body = ("<p>CoverageMLP ood_multiple 1.0 ± 0.1</p>"
            '<table class="dataframe"><thead><tr><th>CoverageMLP</th></tr></thead>'
            "<tbody><tr><th>ood_rain</th><td>4.482 ± 0.040</td><td>CoverageMLP</td></tr>"
            f'<tr><td><code class="docutils literal"><span class="pre">{sha}</span></code></td>'
            '<td><code><span class="pre">data/paper/results/</span></code></td></tr>'
            "</tbody></table>")
    out = typeset(body)
    assert out.startswith("<p>CoverageMLP ood_multiple 1.0 ± 0.1</p>")  # outside: as it was
    assert "<th>Coverage<wbr>MLP</th>" in out and "<th>ood_<wbr>rain</th>" in out
    assert "<td>CoverageMLP</td>" in out  # a cell's text breaks only in headers
    assert "<td>4.482&#8239;±&#8239;0.040</td>" in out
    assert "<wbr>".join(sha[i:i + 16] for i in range(0, 64, 16)) in out
    assert "data/<wbr>paper/<wbr>results/</span>" in out
    assert out.replace("<wbr>", "").replace("&#8239;±&#8239;", " ± ") == body


def test_every_page_gets_the_table_style_and_its_tables_typeset():
    assets = load_book_assets()
    hooks = {}
    assets.setup(type("Sphinx", (), {"connect": lambda self, e, f: hooks.setdefault(e, f)})())
    context = {"metatags": "<meta>", "body": "<table><tr><th>LightGBM</th></tr></table>"}
    hooks["html-page-context"](None, "page", "page.html", context, None)
    assert context["metatags"] == "<meta>" + assets.TABLE_CSS
    assert context["body"] == "<table><tr><th>Light<wbr>GBM</th></tr></table>"
    # headers and row labels wrap; numbers stay on one line
    assert "table.dataframe thead th, table.dataframe tbody th { white-space: normal; }" \
        in assets.TABLE_CSS
    assert re.search(r"table\.dataframe td \{ white-space: nowrap;", assets.TABLE_CSS)


def test_a_script_registered_twice_is_written_once():
    from sphinx.builders.html._assets import _JavaScript

    module = load_book_assets()
    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("a.js"), _JavaScript(None, body=body), _JavaScript("b.js"),
               _JavaScript(None, body=body), _JavaScript("a.js", **{"async": "async"})]
    kept = module.unique_scripts(scripts)
    assert [str(s.filename) for s in kept] == ["a.js", "None", "b.js", "a.js"]
    assert kept[1].attributes == {"body": body}
