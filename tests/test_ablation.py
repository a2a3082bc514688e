"""The ablation the book states (coverage_lib.report.ablation): the backup's Mamba-3 encoder
against MLP encoders under the same law head, judged seed by seed; its sentence, table and
learning curves, built at publish time from finished results."""
import json

from coverage_lib.core.schema import TARGETS
from coverage_lib.evaluation import result_files
from coverage_lib.evaluation.seeds_stage import interval
from coverage_lib.models import registry
from coverage_lib.report import ablation

ABLATION, BACKUP = ablation.pair()
LABEL = f"{ABLATION.name} / {BACKUP.name}"


def seeds_result(ratios_by_target: dict, splits=("test", "ood_rain")) -> dict:
    """A seeds.json with the per-seed ratios ablation / backup given per target (the same on
    every split), and errors that agree with them."""
    backup = {t: interval([1.0, 1.0, 1.0]) for t in TARGETS}
    return {"level": 0.95, "seeds": [0, 1, 2],
            "accuracy": {s: {BACKUP.key: backup,
                             ABLATION.key: {t: interval(ratios_by_target[t]) for t in TARGETS}}
                         for s in splits},
            "ratios": {LABEL: {s: {t: interval(ratios_by_target[t]) for t in TARGETS}
                               for s in splits}}}


MIXED = {"received_power_dbm": [0.70, 0.72, 0.71],   # the ablation's error lower: encoder worse
         "sinr_db": [1.30, 1.31, 1.29],              # higher: the Mamba-3 encoder better
         "coverage_radius_m": [0.8, 1.2, 1.0],       # holds 1
         "coverage_area_km2": [0.9, 1.1, 1.05],
         "qos_score": [0.95, 1.05, 1.0]}
CONVERGED = {ABLATION.key: {"best_epoch": 20, "epochs": 30, "still_improving": False},
             BACKUP.key: {"best_epoch": 22, "epochs": 32, "still_improving": False}}


def test_the_verdict_reads_the_paired_ratio_for_the_mamba3_encoder():
    found = ablation.verdicts(seeds_result(MIXED))
    assert found[("test", "received_power_dbm")] == "worse"
    assert found[("test", "sinr_db")] == "better"
    assert {found[("ood_rain", t)] for t in ("coverage_radius_m", "coverage_area_km2",
                                             "qos_score")} == {"indistinguishable"}


def test_the_sentence_counts_the_verdicts_and_names_the_test():
    said = ablation.sentence(seeds_result(MIXED), CONVERGED)
    assert "lower errors on some and higher on others" in said
    assert "better on 2, worse on 2 and indistinguishable on 6 of the 10 errors" in said
    assert "paired 95 % t-interval of the per-seed ratio" in said
    assert "converged" in said and "still improving" not in said


def test_the_sentence_says_when_a_model_stopped_while_still_improving():
    training = {**CONVERGED, BACKUP.key: {"best_epoch": 5, "epochs": 5, "still_improving": True}}
    worse = {t: [0.7, 0.72, 0.71] for t in TARGETS}
    said = ablation.sentence(seeds_result(worse), training)
    assert "no lower error anywhere" in said
    assert f"{BACKUP.name} (best epoch 5 of 5) stopped at the epoch ceiling" in said


def test_a_model_at_its_ceiling_is_not_converged_even_if_its_last_epoch_was_not_its_best():
    # the trainer's rule: converged means stopped by the patience; a run that reached its
    # epoch ceiling a few epochs after its best has not shown that it stopped learning
    at_ceiling = {"best_epoch": 28, "epochs": 30, "still_improving": False,
                  "stopped": "ceiling", "converged": False}
    said = ablation.sentence(seeds_result(MIXED), {**CONVERGED, BACKUP.key: at_ceiling})
    assert f"{BACKUP.name} (best epoch 28 of 30) stopped at the epoch ceiling" in said


def test_one_seed_gives_no_verdict():
    one = seeds_result({t: [0.8] for t in TARGETS})
    assert set(ablation.verdicts(one).values()) == {"one seed only"}
    assert "with one seed there is no interval" in ablation.sentence(one, CONVERGED)


def test_the_table_has_a_row_per_split_and_target_test_first():
    table = ablation.table(seeds_result(MIXED, splits=("ood_rain", "test")))
    assert len(table) == 2 * len(TARGETS)
    assert table.index[0][0] == "test"
    assert list(table["the Mamba-3 encoder is"])[:2] == ["worse", "better"]


def write_histories(*folders):
    for folder in folders:
        folder.mkdir(parents=True)
        for b in registry.BACKBONES.values():
            (folder / b.history).write_text(json.dumps(
                {"val_mae": [0.2, 0.1, 0.09], "epoch_time_s": [1.0, 1.0, 1.5]}))


def test_write_puts_the_page_the_sentence_and_the_curves_in_the_book_folder(tmp_path):
    data = tmp_path / "data"
    write_histories(data / "models", data / "runs" / "seed1-rowsall" / "models")
    (data / "seeds.json").write_text(json.dumps(seeds_result(MIXED)))
    (data / "metrics.json").write_text(json.dumps({"format": result_files.FORMAT,
                                                   "training": CONVERGED}))
    book = tmp_path / "book"
    said = ablation.write(data, data / "seeds.json", data / "metrics.json", book)
    assert (book / "figures" / ablation.FIGURE).stat().st_size > 10_000
    assert (book / "ablation_verdict.md").read_text().startswith(said["sentence"] + "\n")
    page = (book / "ablation.md").read_text()
    assert said["sentence"] in page and f"executed/figures/{ablation.FIGURE}" in page


def test_the_curves_keep_the_books_smallest_font(tmp_path):
    import matplotlib.pyplot as plt

    from coverage_lib.core import figure_style

    write_histories(tmp_path / "models")
    fig = ablation.curves(tmp_path, [0, 1])  # seed 1's histories missing: left out
    assert not figure_style.too_small_text(fig)
    plt.close(fig)


def per_seed_accuracy(backup_rain_radius: float, ablation_rain_radius: float) -> dict:
    """One seed's accuracy on test and ood_rain with what the backup's goals read."""
    def entry(power, radius):
        return {"received_power_dbm": {"mae": 4.0, "mae_vs_median": power},
                "coverage_radius_m": {"mae": radius}}

    primary = registry.by_role("primary").key
    return {"test": {primary: entry(0.25, 20.0), BACKUP.key: entry(0.18, 15.0),
                     ABLATION.key: entry(0.17, 14.0)},
            "ood_rain": {BACKUP.key: entry(0.2, backup_rain_radius),
                         ABLATION.key: entry(0.2, ablation_rain_radius)}}


def test_the_backups_goals_are_judged_for_the_ablation_in_its_place():
    seeds = {"level": 0.95, "per_seed": {
        str(s): {"accuracy": per_seed_accuracy(32.0 + s, 20.0 + s), "physics": None}
        for s in range(3)}}
    pairs = ablation.goals(seeds, {"goals": []})
    by_goal = {g["goal"]: (g["met"], a["met"]) for g, a in pairs}
    assert by_goal["backup radius MAE on ood_rain (m)"] == (False, True)
    assert by_goal["backup received power vs median on test (dB)"] == (True, True)
    assert all(g["goal"].startswith("backup") for g, _ in pairs)
    said = ablation.goals_sentence(pairs)
    assert f"{BACKUP.name} misses 1 and leaves 0 undecided of its {len(pairs)} goals" in said
    assert f"{ABLATION.name} in its place meets 1 of them" in said
    assert "≤ 25: 21.000 ± " in said  # the ablation's mean over the seeds, with its interval
