"""``verify``: a rerun from nothing in a scratch project compared with the pins, claim by claim;
a claim that does not agree fails it, bad input is refused before any work."""
import json

import pytest

from coverage_lib.pipeline import cli, pins, verify

from conftest import scratch_copy


def _goal(name, value, met, half=None):
    return {"goal": name, "value": value, "limit": 1.0, "kind": "max", "met": met,
            "half_width": half}


def test_a_goal_agrees_to_the_printed_digits_or_over_seeds_within_its_interval():
    pinned = [_goal("a", 0.12344, True), _goal("b", 0.5, True), _goal("c", 0.5, True, 0.1)]
    rows = verify.goal_claims(pinned, [_goal("a", 0.12341, True), _goal("b", 0.5001, True),
                                       _goal("c", 0.58, True)], "x: ", interval=True)
    assert [r["ok"] for r in rows] == [True, False, True]
    rows = verify.goal_claims(pinned, [_goal("a", 0.12344, False), _goal("c", 0.61, True)],
                              "x: ", interval=True)
    assert [(r["claim"], r["ok"]) for r in rows] == [("x: a", False), ("x: b", False),
                                                     ("x: c", False)]


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
    assert len(list((scratch / "data" / "tiny" / "stamps").glob("*.json"))) == 8
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
