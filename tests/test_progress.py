"""A running stage's progress: lines a kernel reports reach the pipeline's log, prefixed, while
the stage runs; the run ends with a table of its stages' times."""
import time

from coverage_lib.core import progress
from coverage_lib.pipeline import execution, run


def test_a_report_is_a_no_op_without_a_pipeline(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.ENV, raising=False)
    progress.report("epoch 1/3")  # nothing to write to, nothing raised
    assert list(tmp_path.iterdir()) == []


def test_reported_lines_are_read_back_whole_and_once(monkeypatch, tmp_path):
    path = tmp_path / "stage.progress"
    monkeypatch.setenv(progress.ENV, str(path))
    progress.report("epoch 1/3: 2.0 s")
    progress.report("epoch 2/3:\n 1.9 s")  # one line whatever it holds
    lines, offset = progress.read_from(path, 0)
    assert [m for _, m in lines] == ["epoch 1/3: 2.0 s", "epoch 2/3: 1.9 s"]
    with open(path, "a") as fh:
        fh.write("123.0 half a li")  # a line still being written is left for later
    assert progress.read_from(path, offset) == ([], offset)


def test_the_pipeline_logs_what_the_kernel_reports_while_it_runs(monkeypatch, tmp_path):
    path, logged = tmp_path / ".stage.progress", []
    monkeypatch.setenv(progress.ENV, str(path))
    with execution.followed_progress(path, "[2/8] 02_train_mlp", logged.append, every_s=0.05):
        progress.report("epoch 1/2: 0.5 s, validation MAE 0.17388 (best)")
        time.sleep(0.3)
        seen_while_running = list(logged)
        progress.report("epoch 2/2: 0.4 s, validation MAE 0.13984 (best)")
    assert seen_while_running == ["[2/8] 02_train_mlp: epoch 1/2: 0.5 s, validation MAE "
                                  "0.17388 (best)"]
    assert logged[-1].endswith("epoch 2/2: 0.4 s, validation MAE 0.13984 (best)")
    assert not path.exists()


def test_the_stage_table_shows_every_stage_and_chain_with_its_cpu_split():
    table = run.stage_table({
        "01_data": {"status": "skipped", "wall_s": 4.4},
        "02_train_mlp": {"status": "ran", "wall_s": 8.8, "user_s": 11.4, "sys_s": 0.8},
        "chains": {"seed1-rowsall": {"02_train_mlp": {"status": "ran", "wall_s": 9.0,
                                                      "user_s": 8.1, "sys_s": 0.3}}}})
    lines = table.splitlines()
    assert lines[0].split() == ["stage", "status", "wall", "s", "user", "s", "system", "s"]
    assert lines[1].split() == ["01_data", "skipped", "4.4", "–", "–"]
    assert lines[2].split() == ["02_train_mlp", "ran", "8.8", "11.4", "0.8"]
    assert lines[3].split() == ["seed1-rowsall", "/", "02_train_mlp", "ran", "9.0", "8.1", "0.3"]


def test_the_run_estimate_counts_only_what_will_run_and_the_chains_at_their_workers():
    from coverage_lib.pipeline import definitions, run

    plan = definitions.stages()[:3]
    names = {s.name for s in plan}
    assert "no earlier run of them recorded" in run._estimate(plan, names, {})
    walls = {plan[0].name: 60.0, plan[1].name: 540.0, plan[2].name: 3000.0}
    text = run._estimate(plan, {plan[0].name, plan[1].name}, walls,
                         1200.0, 2, 2)
    assert text.startswith("3 stages: 2 to run, 2 replicate chains to run, 1 up to date, "
                           "to be skipped; about 30 min of stage time")
    assert "2 at a time: about 15 min of wall time" in text
    assert "wall time" not in run._estimate(plan, {plan[0].name}, walls, 0.0, 0, 2)
    # a fresh clone whose stages are current: no minutes for stages it skips
    assert run._estimate(plan, set(), walls) == "3 stages: none to run, 3 up to date, to be skipped"
