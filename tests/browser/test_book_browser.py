"""The built book in a real browser (headless Chromium, tools/headless.py): the live explorer
answers as ``predict`` does, the book asks nothing of the network, and every table fits its
column at 1280 px.

These tests read a built book: ``$COVERAGE_BOOK_HTML`` (`make test` sets it to the test book it
has just built, and they fail if it is missing), else ``_build/html`` when it exists (skipped
otherwise). The explorer's answers are compared with the checkpoints of the run the book shows
(the profile named in its ``model.json``, under data/<profile>/).
"""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.datasets import dataset
from coverage_lib.report import explorer

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("headless", REPO / "tools" / "headless.py")
headless = importlib.util.module_from_spec(spec)
spec.loader.exec_module(headless)

PAGE = "book/explorer.html"
RTOL, ATOL = 1e-4, 1e-5   # ATOL: float32's last bits around a dB value of 0
SET_LINK = """(async () => {
  const link = %s, root = document.getElementById('d2tl-explorer');
  const before = Number(root.dataset.updates || 0);
  for (const [name, value] of Object.entries(link)) {
    const field = root.querySelector(`[data-feature="${name}"] .d2tl-value`);
    if (field.tagName === 'SELECT') {
      const option = Array.from(field.options).find(o => Number(o.value) === value);
      if (!option) throw new Error(`${name}: no option ${value}`);
      field.value = option.value;
    } else field.value = String(value);
    field.dispatchEvent(new Event('change'));
  }
  const read = {};
  for (const cell of root.querySelectorAll('.d2tl-outputs td[data-model]')) {
    (read[cell.dataset.model] ||= {})[cell.dataset.target] = Number(cell.dataset.value);
  }
  return JSON.stringify({answers: read, reason: root.dataset.reason,
                         routed_to: root.dataset.routedTo,
                         updates: Number(root.dataset.updates) - before,
                         curves: root.querySelectorAll('svg path[data-model]').length,
                         status: root.querySelector('.d2tl-status').textContent});
})()"""


def _book() -> Path:
    named = os.environ.get("COVERAGE_BOOK_HTML")
    if named:
        path = Path(named)
        if not (path / PAGE).is_file():
            pytest.fail(f"$COVERAGE_BOOK_HTML={named} holds no {PAGE}: build the book first")
        return path
    path = REPO / "_build" / "html"
    if not (path / PAGE).is_file():
        pytest.skip("no built book (make book, or set $COVERAGE_BOOK_HTML)")
    return path


@pytest.fixture(scope="module")
def html() -> Path:
    if headless.chromium_path() is None:
        pytest.fail("Chromium not found: `make test` installs the distribution's package")
    return _book()


@pytest.fixture(scope="module")
def book(html):
    with headless.Book(html) as opened:
        yield opened


@pytest.fixture(scope="module")
def shown(html):
    """(model.json, the Selector of the run it was exported from)."""
    payload = json.loads((html / "_static" / "explorer" / "model.json").read_text())
    data = REPO / "data" / payload["profile"]
    selector = explorer.load_selector(data)
    assert payload["checkpoints"] == selector.fingerprint, \
        "the book's explorer was exported from other checkpoints than data/<profile>'s"
    return payload, selector, data


def twenty_links(data: Path) -> pd.DataFrame:
    """14 test links and 2 from each single-feature OOD set, drawn with a fixed seed."""
    folder = data / "dataset"
    parts = [dataset.load_split(folder, "test", FEATURES).sample(14, random_state=11)]
    for split in ("ood_frequency", "ood_rain", "ood_distance"):
        parts.append(dataset.load_split(folder, split, FEATURES).sample(2, random_state=11))
    return pd.concat(parts)


def test_explorer_answers_as_predict(book, shown):
    payload, selector, data = shown
    links = twenty_links(data)
    primary, backup = payload["selector"]["primary"], payload["selector"]["backup"]
    expected = {primary: selector.primary.predict(links), backup: selector.backup.predict(links)}
    chosen = selector.predict(links)
    book.open(PAGE)
    book.evaluate("window.d2tlExplorer.ready")
    assert book.evaluate("document.getElementById('d2tl-explorer').dataset.state") == "ready"
    for k, (_, link) in enumerate(links.iterrows()):
        page = json.loads(book.evaluate(SET_LINK % json.dumps(
            {name: float(link[name]) for name in FEATURES})))
        assert page["updates"] >= 1 and page["curves"] == 8, page
        for key in (primary, backup):
            got = np.array([page["answers"][key][t] for t in TARGETS])
            want = expected[key].iloc[k][TARGETS].to_numpy(dtype=float)
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL,
                                       err_msg=f"link {k} ({key}): {dict(link)}")
        assert page["reason"] == chosen["reason"].iloc[k], (k, page["reason"])
        assert page["routed_to"] == chosen["routed_to"].iloc[k]
        np.testing.assert_allclose([page["answers"]["selector"][t] for t in TARGETS],
                                   chosen.iloc[k][TARGETS].to_numpy(dtype=float),
                                   rtol=RTOL, atol=ATOL)
    reasons = set(chosen["reason"])
    assert "out_of_domain" in reasons and "" in reasons  # both routes were exercised


def test_explorer_refuses_a_bad_value_by_name(book):
    book.open(PAGE)
    book.evaluate("window.d2tlExplorer.ready")
    page = json.loads(book.evaluate(SET_LINK % json.dumps({"distance_m": -5.0})))
    assert page["updates"] == 0
    assert "distance" in page["status"] and "-5" in page["status"], page["status"]


def test_the_book_asks_nothing_of_the_network(book):
    """The explorer and the pages around it load only the book's own files."""
    book.requests.clear()
    book.open(PAGE)
    book.evaluate("window.d2tlExplorer.ready")
    for page in ("book/intro.html", "book/results.html", "book/selector.html"):
        book.open(page)
    assert book.requests, "no request was recorded"
    outside = [u for u in book.requests
               if not u.startswith(book.origin + "/") and not u.startswith(("data:", "blob:"))]
    assert not outside, outside


def test_opened_as_a_file_the_page_says_why(html):
    with headless.Book(html, serve=False) as local:
        local.open(PAGE)
        local.wait_until("document.getElementById('d2tl-explorer').dataset.state")
        state = local.evaluate("document.getElementById('d2tl-explorer').dataset.state")
        text = local.evaluate("document.querySelector('#d2tl-explorer .d2tl-status').textContent")
    assert state == "file-refused"
    assert "file://" in text and "http.server" in text


def test_every_table_fits_its_column(book, html):
    pages = sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_")
                   and p.name != "index.html")  # index.html redirects to the first page
    too_wide = []
    for page in pages:
        book.open(page)
        too_wide += [(page, *row) for row in book.evaluate(
            """Array.from(document.querySelectorAll('article table')).map((t, i) =>
                 [i, t.scrollWidth, t.parentElement.clientWidth,
                  (t.querySelector('thead') || t).innerText.slice(0, 50)])
               .filter(([i, w, room]) => w > room)""")]
    assert not too_wide, "\n".join(map(str, too_wide))


def test_the_explorer_is_light(html):
    assets = html / "_static" / "explorer"
    sizes = {f.name: f.stat().st_size for f in assets.iterdir()}
    assert set(sizes) == set(explorer.ASSET_FILES)
    payload = json.loads((assets / "model.json").read_text())
    assert sizes["weights.bin"] == 4 * payload["weights"]["count"]
    total = sum(f.stat().st_size for f in html.rglob("*") if f.is_file())
    assert total <= 30 * 2 ** 20, f"the built book weighs {total / 2 ** 20:.1f} MiB (> 30)"
