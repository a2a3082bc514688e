"""``verify``: a rerun from nothing in a scratch project compared with the pins, claim by claim;
a claim that does not agree fails it, bad input is refused before any work."""
import json
import math

import pytest

from coverage_lib.core.io import sha256_file
from coverage_lib.models import registry
from coverage_lib.pipeline import cli, pins, verify

from conftest import STAGE_COUNT, scratch_copy


def _goal(name, value, met, half=None):
    return {"goal": name, "value": value, "limit": 1.0, "kind": "max", "met": met,
            "half_width": half}


def test_a_goal_agrees_to_the_printed_digits_or_over_seeds_within_its_interval():
    pinned = [_goal("a", 0.12344, True), _goal("b", 0.5, True), _goal("c", 0.5, True, 0.1)]
    rows = verify.goal_claims(pinned, [_goal("a", 0.12341, True), _goal("b", 0.5001, True),
                                       _goal("c", 0.58, True)], "x: ", verify.mean_bounds(pinned))
    assert [r["ok"] for r in rows] == [True, False, True]
    rows = verify.goal_claims(pinned, [_goal("a", 0.12344, False), _goal("c", 0.65, True)],
                              "x: ", verify.mean_bounds(pinned))
    assert [(r["claim"], r["ok"]) for r in rows] == [("x: a", False), ("x: b", False),
                                                     ("x: c", False)]


def _over(name, mean, half, values=(1, 2, 3), met=True):
    """A goal judged over seeds (``seeds_stage.goals``): mean, half-width and the seeds' values."""
    return {**_goal(name, mean, met, half), "values": list(values)}


def test_seed_0_agrees_within_the_prediction_interval_of_one_more_seed():
    over = [_over("a", 0.5, 0.1), _over("b", 0.5, None)]  # three seeds: 0.5 ± 0.1·√4
    bounds = verify.prediction_bounds(over)
    assert bounds == {"a": pytest.approx((0.3, 0.7))}  # b: one value, no interval
    assert verify.mean_bounds(over)["a"] == pytest.approx((0.5 - 0.1 * math.sqrt(2),
                                                           0.5 + 0.1 * math.sqrt(2)))
    pinned = [_goal("a", 0.45, True), _goal("b", 0.45, True)]
    rows = verify.goal_claims(pinned, [_goal("a", 0.65, True), _goal("b", 0.4501, True)],
                              "seed 0: ", bounds)
    assert [(r["ok"], r["rule"]) for r in rows] == [(True, verify.WITHIN),
                                                    (False, verify.DIGITS)]
    assert "[0.3000, 0.7000]" in rows[0]["detail"] and "one seed" in rows[1]["detail"]
    rows = verify.goal_claims(pinned, [_goal("a", 0.71, True), _goal("b", 0.45, True)],
                              "seed 0: ", bounds)
    assert [(r["ok"], r["rule"]) for r in rows] == [(False, verify.WITHIN),
                                                    (True, verify.DIGITS)]


def test_a_flipped_decided_verdict_fails_an_undecided_one_is_not_compared():
    pinned = [_over("a", 0.5, 0.1), _over("b", 0.5, 0.1, met=None), _over("c", 0.5, 0.1)]
    bounds = verify.mean_bounds(pinned)
    rows = verify.goal_claims(pinned, [_goal("a", 0.55, False), _goal("b", 0.55, True),
                                       _goal("c", 0.55, None)], "over seeds: ", bounds)
    assert [r["ok"] for r in rows] == [False, True, True]
    assert rows[0]["detail"].endswith("verdict True → False")
    rows = verify.goal_claims(pinned, [_goal("a", 0.5, False)], "x: ")  # same digits, flipped
    assert rows[0]["ok"] is False and rows[0]["rule"] == verify.DIGITS


def _errors(mean, half):
    """seeds.json's accuracy on test: every backbone and target at (mean, half-width)."""
    iv = {"mean": mean, "half_width": half,
          "low": mean - (half or 0), "high": mean + (half or 0)}
    return {"accuracy": {"test": {k: {"received_power_dbm": iv, "coverage_radius_m": iv}
                                  for k in registry.BACKBONES}}}


def test_a_test_error_over_seeds_agrees_within_the_pinned_mean_plus_minus_half_width_root_2():
    n = 2 * len(registry.BACKBONES)
    assert {(r["ok"], r["rule"]) for r in verify.error_claims(_errors(1.0, 0.1),
                                                              _errors(1.14, 0.1))} \
        == {(True, verify.WITHIN)}
    assert [r["ok"] for r in verify.error_claims(_errors(1.0, 0.1), _errors(1.15, 0.1))] \
        == [False] * n
    assert {(r["ok"], r["rule"]) for r in verify.error_claims(_errors(1.0, None),
                                                              _errors(1.01, None))} \
        == {(False, verify.DIGITS)}
    rows = verify.error_claims(_errors(1.0, 0.1), _errors(1.0004, 0.2))
    assert verify.counts(rows + verify.serving_claims(
        {"serving": {"goals": [_goal("t", 1.0, True)]}},
        {"serving": {"goals": [_goal("t", 2.0, False)]}})) == {
        "claims": n + 1, "reproduced": n, "printed_digits": n, "within_interval": 0,
        "mismatches": 0, "timings": 1}


def _pin(root, text="a"):
    """pins/tiny/ with a MANIFEST (its header as ``pin`` writes it) of one file."""
    folder = root / "pins" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / text).write_text(text)
    (folder / "MANIFEST.txt").write_text(
        f"# pinned by `python -m coverage_lib pin --profile tiny` at commit {'c' * 40} on vm "
        f"(AMD EPYC, 2 logical CPUs), 2026-01-01T00:00:00Z; sha256  bytes  path\n"
        f"{sha256_file(folder / text)}  1  {text}\n")
    return sha256_file(folder / "MANIFEST.txt")


FORMAT_1 = {"when": "2026-12-03T15:16:44Z", "host": "vm", "cpu": "AMD EPYC", "cpu_count": 2,
            "commit": "6464e98", "wall_s": 7247.3, "claims": 74, "reproduced": 64}
MACHINE = {"cpu": "Intel Xeon", "flags": ["avx2", "avx512f", "avx512bw"], "cpu_count": 16,
           "dispatch": "baseline", "gemm_peak_gflops": 812.3}


@pytest.fixture()
def bare(tmp_path, monkeypatch):
    """An empty project root, with ``verify.record``'s machine and commit fixed (no GEMM timed)."""
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setattr(verify, "machine_entry", lambda dispatch: {**MACHINE,
                                                                   "dispatch": dispatch})
    monkeypatch.setattr(verify, "git_state", lambda: {"commit": "d" * 40})
    return tmp_path


def test_the_first_format_of_verified_reads_as_one_verification_to_the_printed_digits(bare):
    sha = _pin(bare)
    (bare / "pins" / "tiny" / "VERIFIED.json").write_text(
        json.dumps({"manifest_sha256": sha, **FORMAT_1}))
    [entry] = pins.verifications("tiny")
    assert entry["printed_digits"] == 64 and entry["within_interval"] == 0
    assert entry["timings"] == 10 and entry["until"] is None
    assert pins.verified("tiny") == entry and entry["machine"]["cpu"] == "AMD EPYC"
    text = pins.headline("tiny")
    assert ("reproduced from nothing by `python -m coverage_lib verify` on vm (AMD EPYC, 2 "
            "logical CPUs), 2026-12-03T15:16:44Z, in 121 min: 64 of 74 claims agreed to the "
            "printed digit, 0 within their interval, the rest are timings") in text
    _pin(bare, "b")  # pinned again: that verification is of other pins
    assert pins.verifications("tiny") == [] and pins.verified("tiny") is None
    assert "not yet reproduced" in pins.headline("tiny")


def _rows(digits, within, timings):
    return ([verify._row("d", 1, 1, verify.DIGITS, True)] * digits
            + [verify._row("w", 1, 2, verify.WITHIN, True)] * within
            + [verify._row("t", 1, 2, "timing", None)] * timings)


def test_a_verification_of_the_same_pins_is_appended_those_of_other_pins_dropped(bare):
    sha = _pin(bare)
    path = bare / "pins" / "tiny" / "VERIFIED.json"
    path.write_text(json.dumps({"manifest_sha256": sha, **FORMAT_1}))
    verify.record("tiny", _rows(3, 2, 1), 600.0, "04_evaluate", "baseline")
    found = json.loads(path.read_text())
    assert found["format"] == pins.VERIFIED_FORMAT and len(found["verifications"]) == 2
    old, new = pins.verifications("tiny")
    assert old["host"] == "vm" and new["until"] == "04_evaluate"
    assert new["machine"] == MACHINE and new["commit"] == "d" * 40
    assert (new["claims"], new["printed_digits"], new["within_interval"], new["timings"],
            new["mismatches"]) == (6, 3, 2, 1, 0)
    assert pins.verified("tiny") == old  # the latest full one
    assert pins.check("tiny") is not None  # VERIFIED.json is no pinned file
    text = pins.headline("tiny")
    assert "`python -m coverage_lib verify` 2 times:\n\n- on vm (AMD EPYC" in text
    assert ("(Intel Xeon, 16 logical CPUs, AVX-512; baseline CPU dispatch, fp32 GEMM peak 812 "
            "GFLOP/s)") in text
    assert ("in 10 min, the main run only (`--until 04_evaluate`): 3 of 6 claims agreed to the "
            "printed digit, 2 within their interval, the rest are timings") in text
    (bare / "pins" / "tiny" / "a").unlink()
    _pin(bare, "b")  # new pins: the next verification replaces both
    verify.record("tiny", _rows(4, 0, 1), 60.0)
    [entry] = json.loads(path.read_text())["verifications"]
    assert entry["until"] is None and pins.verified("tiny") == entry


@pytest.mark.parametrize("agreement, sentence", [
    (None, None),
    ({"state": "new"}, None),
    ({"state": "different", "where": "train rows (2100 recorded, 2099 here)"},
     "Data set regenerated here: it differs from the pinned one (train rows (2100 recorded, "
     "2099 here), beyond the tolerance 1e-09), so every stage that reads it ran again here: "
     "the numbers below are this machine's, not the pinned ones."),
    ({"state": "bit-identical"}, "Data set regenerated here: bit-identical to the pinned one."),
    ({"state": "within-tolerance", "rtol": 1e-9, "max_relative": 3e-16,
      "where": "test/sinr_db sum", "recorded_at": "2026-01-01T00:00:00Z"},
     "Data set regenerated here: agrees with the pinned one within a relative 1e-09 (largest "
     "difference 3e-16 in test/sinr_db sum; the last bits differ: another CPU)."),
])
def test_the_headline_says_which_data_the_numbers_stand_on(bare, agreement, sentence):
    _pin(bare)
    stamps = bare / "data" / "tiny" / "stamps"
    stamps.mkdir(parents=True)
    (stamps / "01_data.json").write_text(json.dumps(
        {"wall_s": 1.0, **({} if agreement is None else {pins.DATA_AGREEMENT: {
            "rtol": 1e-9, "max_relative": 0.0, "where": "", "recorded_at": "", **agreement}})}))
    text = pins.headline("tiny")
    assert text.startswith("Its results are pinned in `pins/tiny/`")
    if sentence is None:
        assert "Data set" not in text
    else:
        assert text.endswith(f"\n\n{sentence}\n")


def test_verify_refuses_an_unknown_cpu_dispatch_before_any_work(bare, monkeypatch):
    monkeypatch.setattr(verify, "stage_params", lambda *_: pytest.fail("work was started"))
    with pytest.raises(ValueError, match=r"dispatch must be one of \['native', 'baseline'\]; "
                                         r"got 'avx9'"):
        verify.verify("tiny", dispatch="avx9")
    assert not (bare / "build").exists()


@pytest.fixture()
def pinned(finished_tiny, tmp_path, monkeypatch):
    root = scratch_copy(finished_tiny, tmp_path, monkeypatch)
    pins.pin("tiny", log=lambda *_: None)
    return root


def test_verify_reruns_from_nothing_and_records_that_the_pins_were_reproduced(pinned, capsys):
    assert "not yet reproduced" in pins.headline("tiny")
    assert cli.main(["verify", "--profile", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "verify: " in out and " 0 not," in out and "seed 0: " in out
    scratch = pinned / "build" / "verify" / "tiny"
    assert not (scratch / "pins").exists()  # it ran from nothing: every stage ran there
    assert len(list((scratch / "data" / "tiny" / "stamps").glob("*.json"))) == STAGE_COUNT
    record = pins.verified("tiny")
    serving = len(json.loads((pinned / "pins" / "tiny" / "results" / "metrics.json")
                             .read_text())["serving"]["goals"])
    assert record["claims"] >= 10 and record["reproduced"] == record["claims"] - serving
    assert pins.check("tiny")  # the record is not a pinned file changed by hand
    assert "reproduced from nothing by `python -m coverage_lib verify`" in pins.headline("tiny")
    pins.pin("tiny", log=lambda *_: None)  # new pins are not verified
    assert pins.verified("tiny") is None


def test_verify_refuses_bad_input_before_any_work(pinned, capsys):
    assert cli.main(["verify", "--profile", "tiny", "--until", "02_train_mlp"]) == 2
    assert "until must be one of ['04_evaluate'" in capsys.readouterr().err
    assert cli.main(["verify", "--profile", "nope"]) == 2
    assert not (pinned / "build" / "verify").exists()


def test_the_claim_table_gives_each_part_its_verdicts_and_the_commands(pinned):
    from coverage_lib.pipeline import claims
    from coverage_lib.report import verdicts

    text = claims.markdown("tiny")
    assert all(claim in text for claim, _ in verdicts.CLAIMS)
    assert "`python -m coverage_lib verify --profile tiny --until 04_evaluate`" in text
    assert "min of stage time on this machine" in text and "goals met)" in text
