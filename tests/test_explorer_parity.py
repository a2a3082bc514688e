"""The live explorer's numerics (``explorer_web/explorer_core.js``, the file the book's page
runs) computed in Node from the exported checkpoints of the tiny run, against the library's
own: both backbones' ``predict``, the Selector's ``predict`` and ``route``, on in-domain and
out-of-domain links (1000 GHz, 200 mm/h of rain, 20 km away). The tolerance is the browser
test's (tests/browser/test_book_browser.py); when a Python forward pass that the page mirrors
changes, these tests fail and name the file to update."""
import json
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from coverage_lib.core import domain
from coverage_lib.core.schema import FEATURES, TARGETS
from coverage_lib.datasets import dataset
from coverage_lib.evaluation.selector import Selector
from coverage_lib.models.law_head import LawHeaded
from coverage_lib.report import explorer

CORE = "coverage_lib/report/explorer_web/explorer_core.js"
RTOL, ATOL = 1e-4, 1e-5   # the browser test's: float32's rounding, and its last bits around 0
TIE = 1e-5                # a gate input this near a split may fall either side of it
UPDATE = (f"the browser's numerics no longer compute what the library does: update {CORE} "
          f"(and coverage_lib/report/explorer.py where model.json must carry a new constant)")
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node (Node.js) is not installed: the "
                                "explorer's JavaScript cannot be run outside a browser")

DRIVER = r"""
const fs = require("fs"), path = require("path");
const [folder, linksFile, outFile] = process.argv.slice(2);
const core = require(path.join(folder, "explorer_core.js"));
const M = JSON.parse(fs.readFileSync(path.join(folder, "model.json"), "utf8"));
const bytes = fs.readFileSync(path.join(folder, M.weights.file));
const W = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
core.prepare(M, W);
const links = JSON.parse(fs.readFileSync(linksFile, "utf8"));
const start = process.hrtime.bigint();
const out = links.map((x) => {
  const r = core.route(M, x), s = core.select(M, x);
  return { primary: r.primary, backup: r.backup, answer: r.answer, reason: r.reason,
           routed_to: r.routed_to, out_of_domain: r.out_of_domain,
           rules_broken: r.rules_broken.join(","), confidence_score: r.confidence_score,
           gate_margin: r.gate_margin, select_reason: s.reason, select_routed_to: s.routed_to };
});
const ms = Number(process.hrtime.bigint() - start) / 1e6;
fs.writeFileSync(outFile, JSON.stringify({ ms, links: out }));
"""


def parity_links(data) -> pd.DataFrame:
    """60 links: 20 test links, 4 from each single-feature OOD split, the six reference links
    of ``domain`` and each of them at 1000 GHz, in 200 mm/h of rain and 20 km away."""
    folder = data / "dataset"
    parts = [dataset.load_split(folder, "test", FEATURES).sample(20, random_state=5)]
    for split in ("ood_frequency", "ood_rain", "ood_distance"):
        parts.append(dataset.load_split(folder, split, FEATURES).sample(4, random_state=5))
    reference = domain.reference_links(3.5)[FEATURES]
    parts.append(reference)
    for column, value in (("frequency_ghz", 1000.0), ("rain_rate_mmh", 200.0),
                          ("distance_m", 20000.0)):
        parts.append(reference.assign(**{column: value}))
    return pd.concat(parts, ignore_index=True)


def run_core(folder, links: pd.DataFrame, tmp_path) -> dict:
    """explorer_core.js in Node on ``links`` with the files exported to ``folder``."""
    script, given, answer = tmp_path / "driver.js", tmp_path / "links.json", tmp_path / "out.json"
    script.write_text(DRIVER)
    given.write_text(json.dumps(links[FEATURES].to_numpy(dtype=float).tolist()))
    done = subprocess.run([NODE, str(script), str(folder), str(given), str(answer)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{CORE} failed in Node:\n{done.stderr}\n{UPDATE}"
    return json.loads(answer.read_text())


def compare(selector, links: pd.DataFrame, js: dict) -> dict:
    """Assert that ``js`` (``run_core``'s answer) is what the library computes for ``links``;
    returns counts of the routes seen."""
    primary_y, backup_y, flags = selector.route(links)
    chosen = selector.predict(links)
    keys = selector.keys
    expected = {keys[0]: selector.primary.predict(links), keys[1]: selector.backup.predict(links)}
    # route's answers are predict's
    np.testing.assert_array_equal(primary_y[TARGETS], expected[keys[0]][TARGETS])
    ties = 0
    for k, page in enumerate(js["links"]):
        where = f"link {k} {links.iloc[k][FEATURES].to_dict()}"
        for key, got in ((keys[0], page["primary"]), (keys[1], page["backup"])):
            np.testing.assert_allclose(
                got, expected[key].iloc[k][TARGETS].to_numpy(dtype=float), rtol=RTOL, atol=ATOL,
                err_msg=f"{key}.predict, {where} (targets {TARGETS}): {UPDATE}")
        row = flags.iloc[k]
        assert page["out_of_domain"] == row["out_of_domain"], (where, page, UPDATE)
        assert page["rules_broken"] == row["rules_broken"], (where, page, UPDATE)
        # only a gate input within float32's rounding of a split may score or route otherwise
        tie = page["gate_margin"] < TIE
        assert tie or np.isclose(page["confidence_score"], row["confidence_score"], rtol=0,
                                 atol=1e-9), \
            (f"the confidence gate's score, {where}: Python {row['confidence_score']}, the page "
             f"{page['confidence_score']}: {UPDATE}")
        if page["reason"] != row["reason"]:
            assert tie and {page["reason"], row["reason"]} == {"", "low_confidence"}, \
                (f"Selector.route, {where}: Python gives reason {row['reason']!r}, the page "
                 f"{page['reason']!r}: {UPDATE}")
            ties += 1
            continue
        assert page["routed_to"] == row["routed_to"] == chosen["routed_to"].iloc[k], (where, UPDATE)
        assert (page["select_reason"], page["select_routed_to"]) == \
            (chosen["reason"].iloc[k], chosen["routed_to"].iloc[k]), \
            f"Selector.predict's route, {where}: {UPDATE}"
        np.testing.assert_allclose(page["answer"], chosen.iloc[k][TARGETS].to_numpy(dtype=float),
                                   rtol=RTOL, atol=ATOL,
                                   err_msg=f"Selector.predict, {where}: {UPDATE}")
    assert ties <= 2, f"{ties} links sit on a gate split: the comparison lost its power"
    return chosen["reason"].value_counts().to_dict()


def export(selector, folder):
    """``explorer.write_assets`` for a Selector in memory."""
    payload, weights = explorer.bundle(selector, {"profile": "tiny"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(payload, allow_nan=False))
    (folder / "weights.bin").write_bytes(weights)
    for name in explorer.CODE_FILES:
        shutil.copyfile(explorer.WEB / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def exported(finished_tiny, tmp_path_factory):
    """(the tiny run's Selector, its links, the explorer's files, Node's answers)."""
    data = finished_tiny[0] / "data" / "tiny"
    folder = tmp_path_factory.mktemp("explorer")
    explorer.write_assets(data, folder, {"profile": "tiny"})
    links = parity_links(data)
    js = run_core(folder, links, tmp_path_factory.mktemp("node"))
    return explorer.load_selector(data), links, folder, js


def test_the_page_computes_what_the_library_does(exported):
    selector, links, _, js = exported
    start = time.perf_counter()
    reasons = compare(selector, links, js)
    print(f"{len(links)} links: Node {js['ms']:.0f} ms, Python "
          f"{time.perf_counter() - start:.2f} s; routes {reasons}")
    assert len(links) >= 50
    assert reasons.get("out_of_domain", 0) >= 20 and sum(reasons.values()) > \
        reasons["out_of_domain"], reasons   # links inside the training domain too
    x = links[FEATURES]
    assert (x["frequency_ghz"] == 1000).sum() == 6 and (x["rain_rate_mmh"] == 200).sum() == 6


def test_both_routes_of_the_confidence_gate(exported, tmp_path):
    """The tiny run's gate may send every in-domain link to the backup: with the score
    threshold moved to the middle of the links' scores, both routes are compared."""
    selector, links, _, _ = exported
    scores = selector.route(links)[2]
    inside = scores.loc[scores["out_of_domain"] == "", "confidence_score"].sort_values()
    middle = len(inside) // 2
    moved = Selector(selector.primary, selector.backup, selector.dataset_stats,
                     thresholds={**selector.thresholds, "score_threshold": float(
                         (inside.iloc[middle - 1] + inside.iloc[middle]) / 2)})
    js = run_core(export(moved, tmp_path / "explorer"), links, tmp_path)
    reasons = compare(moved, links, js)
    assert reasons.get("", 0) >= 1 and reasons.get("low_confidence", 0) >= 1, reasons


def test_a_bidirectional_backup_of_two_layers(exported, tmp_path):
    """The tiny run's backup scans one way in one layer; the paper's scans both ways: a
    freshly initialised two-layer bidirectional CoverageMamba3 (seeded) is compared too."""
    import torch

    from coverage_lib.models.mamba_backbone import CoverageMamba3, Mamba3Config

    selector, links, _, _ = exported
    torch.manual_seed(0)
    backup = CoverageMamba3(selector.backup.normalizer.stats,
                            Mamba3Config(d_model=8, d_state=4, n_layers=2, headdim=4, expand=1,
                                         bidirectional=True),
                            selector.backup.physics_assumptions).eval()
    other = Selector(selector.primary, backup, selector.dataset_stats,
                     thresholds=selector.thresholds)
    js = run_core(export(other, tmp_path / "explorer"), links, tmp_path)
    compare(other, links, js)


def test_a_changed_forward_pass_names_the_file(exported, monkeypatch):
    """The same comparison once the backup's Python forward pass changes (its normalised
    outputs scaled by 1.001): it fails, naming explorer_core.js."""
    selector, links, _, js = exported
    forward = LawHeaded.forward
    monkeypatch.setattr(LawHeaded, "forward", lambda self, x: forward(self, x) * 1.001)
    with pytest.raises(AssertionError, match="update coverage_lib/report/explorer_web/"
                                             "explorer_core.js"):
        compare(selector, links, js)


def test_model_json_carries_the_library_constants(exported):
    """What the page's numerics read, as the library defines it."""
    from coverage_lib.evaluation.selector import REASONS
    from coverage_lib.models.law_head import (MEDIUM_COEFFICIENTS, PATH_COEFFICIENTS,
                                              SECTION_ROUNDS, SECTIONS)
    from coverage_lib.models.normalization import AREA_OFFSET_KM2, FEATURE_TRANSFORMS
    from coverage_lib.physics import propagation

    selector, _, folder, _ = exported
    payload = json.loads((folder / "model.json").read_text())
    physics = payload["physics"]
    assert physics["thermal_noise_dbm_1mhz"] == propagation.thermal_noise_dbm(1.0, 0.0)
    assert physics["max_spectral_efficiency"] == propagation.MAX_SPECTRAL_EFFICIENCY
    assert physics["area_offset_km2"] == AREA_OFFSET_KM2
    assert payload["transforms"]["features"] == [FEATURE_TRANSFORMS.get(c) for c in FEATURES]
    assert payload["selector"]["reasons"] == list(REASONS)
    law = payload["models"][selector.keys[1]]["law"]
    assert (law["sections"], law["rounds"]) == (SECTIONS, SECTION_ROUNDS)
    coefficients = {c["name"]: c for c in law["coefficients"]}
    assert len(coefficients) == len(PATH_COEFFICIENTS) + len(MEDIUM_COEFFICIENTS)
    assert coefficients["intercept"]["offset"] == pytest.approx(
        selector.backup.law.intercept_centre, rel=1e-12)
    assert coefficients["intercept"]["scale"] == pytest.approx(
        selector.backup.law.intercept_scale, rel=1e-12)
