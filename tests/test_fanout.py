"""The replicate chains on a real Dask cluster: a `dask scheduler` and two `dask worker`
processes on 127.0.0.1. A sweep of two chains through them runs one on each worker and gives
the same results, bit for bit, as the same sweep run locally (in a process of its own, which
runs the chains side by side on a local Dask cluster where it has two CPUs); a worker killed in
the middle of a chain's stage loses nothing (the scheduler gives the chain to the other worker,
which removes the leftovers and finishes it).

The sweeps are shared: the local one runs once for the module (its chains are the reference
the Dask ones must equal, and the start of the killed-worker test's chain), and one run of the
main training beside a learning-curve chain serves both the test of that run and the pinned
chain's test. Under pytest-xdist the module's tests stay on one worker (``xdist_group``, with
``make test``'s ``--dist loadgroup``), so each shared sweep runs once."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import TINY_SEEDS

pytestmark = pytest.mark.xdist_group("fanout")  # one worker runs the module: fixtures shared

# Two learning-curve chains (seed 0 on 400 and 800 rows), one per worker; the quick profile's
# run covers the chains of other seeds.
SWEEP = {**TINY_SEEDS, "seeds": [0], "train_rows": [400, 800]}
FIRST = {**SWEEP, "train_rows": SWEEP["train_rows"][:1]}
# One learning-curve chain beside the main run (its pins keep its results, not its
# checkpoints; a full-size chain keeps its checkpoints too: test_pins).
CURVE = {**TINY_SEEDS, "seeds": [0], "train_rows": [1000]}
CURVE_CHAIN = "seed0-rows1000"
MAIN_TRAINING = ("02_train_mlp", "03_train_mamba", "03b_train_mlp_law", "04_evaluate")


def _with_sweep(finished_tiny, folder: Path, sweep: dict = SWEEP) -> Path:
    """A copy of the finished tiny run whose profile asks for ``sweep``."""
    return _copy_with_sweep(finished_tiny[0], folder, sweep)


def _copy_with_sweep(source: Path, folder: Path, sweep: dict) -> Path:
    """A copy of the project at ``source`` whose profile asks for ``sweep``."""
    root = folder / "project"
    shutil.copytree(source, root, symlinks=True)
    path = root / "params" / "tiny.yaml"
    profile = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**profile, "04b_seeds": sweep}))
    return root


def _chains(root: Path, scheduler=None, log=lambda *_: None) -> dict:
    from coverage_lib.pipeline import definitions, replicate_chains

    os.environ["COVERAGE_PROJECT_ROOT"] = str(root)
    return replicate_chains.run_chains("tiny", definitions.stage_params("tiny"), False, scheduler,
                                       log)


@contextlib.contextmanager
def cluster(root: Path, workers: int = 2):
    """A scheduler and ``workers`` single-threaded worker processes (no nanny: killing one
    kills what it runs) on loopback, seeing ``root`` as the project; yields (scheduler
    file, worker processes). Each chain's notebooks use the profile's ``chain_threads`` CPU
    threads there, as they do locally: with another count training's float sums would round
    differently and the results would no longer be bit-identical to the local run's."""
    env = {**os.environ, "COVERAGE_PROJECT_ROOT": str(root)}
    folder = root / "dask"
    folder.mkdir()
    file = str(folder / "scheduler.json")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", file], env=env, cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not os.path.exists(file) and time.time() < deadline:
            time.sleep(0.2)
        workers_ = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                      "--scheduler-file", file, "--host", "127.0.0.1",
                                      "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                      "--local-directory", str(folder / f"w{i}")],
                                     env=env, cwd=root, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for i in range(workers)]
        procs += workers_
        from distributed import Client
        with Client(scheduler_file=file, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield file, workers_
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait()


def results_of(root: Path) -> dict:
    """What a sweep produced, per replicate: its evaluation's numbers, every training
    history's per-epoch losses, and the data set's MANIFEST."""
    out = {}
    for run in sorted((root / "data" / "tiny" / "runs").iterdir()):
        replicate = json.loads((run / "results" / "replicate.json").read_text())
        histories = {p.name: {k: v for k, v in json.loads(p.read_text()).items()
                              if k in ("train_loss", "val_loss", "val_mae", "best_epoch")}
                     for p in sorted((run / "models").glob("*_training_history.json"))}
        out[run.name] = {"accuracy": replicate["accuracy"], "routing": replicate["routing"],
                         "lightgbm": replicate["lightgbm"], "histories": histories,
                         "manifest": (run / "dataset" / "MANIFEST.txt").read_text()}
    return out


def no_partial_files(root: Path) -> list:
    """Leftovers of an interrupted write or stage anywhere in the runs."""
    runs = root / "data" / "tiny" / "runs"
    return sorted(str(p.relative_to(runs)) for p in runs.rglob("*")
                  if p.name.endswith((".tmp", ".running.ipynb", ".failed.ipynb")))


class LocalSweep:
    """The same sweep run locally in a process of its own (its own project root), started
    when the module's first test starts so that it runs beside that test's Dask sweep; its
    log lines go to stderr."""

    def __init__(self, root: Path):
        self.root = root
        code = ("import json, sys\n"
                "from coverage_lib.pipeline import definitions, replicate_chains\n"
                "s = replicate_chains.run_chains('tiny', definitions.stage_params('tiny'), False,"
                " None,"
                " lambda line: print(line, file=sys.stderr))\n"
                "print(json.dumps(sorted(s)))")
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=root,
                                     env={**os.environ, "COVERAGE_PROJECT_ROOT": str(root)},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._names, self.log = None, ""

    def names(self) -> list:
        if self._names is None:
            out, self.log = self.proc.communicate(timeout=600)
            assert self.proc.returncode == 0, self.log
            self._names = json.loads(out.splitlines()[-1])
        return self._names


@pytest.fixture(scope="module")
def local_sweep(finished_tiny, tmp_path_factory):
    # the whole sweep: the first test runs it on Dask, the second finishes its first chain
    # there from halfway
    sweep = LocalSweep(_with_sweep(finished_tiny, tmp_path_factory.mktemp("local")))
    yield sweep
    if sweep.proc.poll() is None:
        sweep.proc.kill()


def test_a_sweep_on_two_dask_workers_equals_the_local_one(local_sweep, finished_tiny,
                                                          tmp_path, monkeypatch):
    root = _with_sweep(finished_tiny, tmp_path)
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(root))
    lines = []
    with cluster(root) as (scheduler, _):
        summary = _chains(root, scheduler, lines.append)
    assert sorted(summary) == ["seed0-rows400", "seed0-rows800"]
    assert all(s["status"] == "ran" for chain in summary.values() for s in chain.values())
    assert local_sweep.names() == ["seed0-rows400", "seed0-rows800"]
    results = results_of(root)
    assert results == results_of(local_sweep.root)
    # a learning-curve point is scored on the test split only: no OOD predictions
    assert all(set(r["accuracy"]) == {"test"} for r in results.values())
    if len(os.sched_getaffinity(0)) >= 2:  # locally, the two chains ran side by side
        assert "on a local Dask cluster of 2 workers, 1 CPU thread(s) each" in local_sweep.log
    # the chains' own lines reached the client, and both workers took part
    assert any("replicate (notebooks/replicate.ipynb): done" in line for line in lines)
    assert "Dask: 2 workers" in "\n".join(lines)
    assert len({line.rsplit("[", 1)[1] for line in lines if "done in" in line}) == 2
    assert no_partial_files(root) == []


def _unrun(run: Path, names) -> None:
    """Undo stages ``names`` of the chain folder ``run``: their stamps and every file they
    recorded (executed notebooks included) removed, as before they ran."""
    for name in names:
        stamp = run / "stamps" / f"{name}.json"
        for rel in json.loads(stamp.read_text())["outputs"]:
            (run / rel).unlink()
        stamp.unlink()


def _halfway(local_sweep, folder: Path) -> tuple:
    """A copy of the local sweep's project with only its first chain, whose last two stages (a
    training stage and the evaluation) have not run yet: (root, chain name, those stages)."""
    from coverage_lib.pipeline import definitions

    name = local_sweep.names()[0]  # waits for the local sweep
    root = _copy_with_sweep(local_sweep.root, folder, FIRST)
    runs = root / "data" / "tiny" / "runs"
    for other in set(local_sweep.names()) - {name}:
        shutil.rmtree(runs / other)
    left = [s.name for s in definitions.chain_stages()[-2:]]
    _unrun(runs / name, left)
    return root, name, left


def test_a_worker_killed_mid_stage_loses_nothing(local_sweep, tmp_path, monkeypatch):
    from distributed import Client

    # one chain, its first stages done (stamped): its next stage starts on one worker, which
    # is killed, and the other worker skips the stages done and reruns the rest
    root, name, left = _halfway(local_sweep, tmp_path)
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(root))
    runs = root / "data" / "tiny" / "runs"
    with cluster(root) as (scheduler, workers):
        outcome = {}
        sweep = threading.Thread(target=lambda: outcome.update(
            summary=_chains(root, scheduler)))
        sweep.start()
        killed = killed_in = None
        with Client(scheduler_file=scheduler, timeout="60s") as client:
            pids = client.run(os.getpid)
            deadline = time.time() + 240
            while killed is None and time.time() < deadline and sweep.is_alive():
                for address, keys in client.processing().items():
                    for key in keys:
                        caught = str(key).split("-tiny-")[1].rsplit("-", 1)[0]
                        running = list((runs / caught / "executed").glob(".*.running.ipynb"))
                        if running:
                            os.kill(pids[address], signal.SIGKILL)
                            killed, killed_in = caught, running[0].name[1:-len(".running.ipynb")]
                            break
                    if killed:
                        break
                time.sleep(0.2)
        sweep.join(timeout=600)
        assert killed, "no chain was caught mid-stage"
        assert sum(w.poll() is not None for w in workers) == 1  # one worker gone
    assert sorted(outcome["summary"]) == [killed] and killed == name
    # the stages done before were skipped; the one killed and those after it ran
    assert killed_in in left
    rerun = left[left.index(killed_in):]
    assert {s: r["status"] for s, r in outcome["summary"][killed].items()} \
        == {s: "ran" if s in rerun else "skipped" for s in outcome["summary"][killed]}
    assert no_partial_files(root) == []
    assert results_of(root) == {killed: results_of(local_sweep.root)[killed]}
    # every file a stage recorded is the one on disk (a chain's record of its cut,
    # stamps/dataset.json, names a data set by identity and fingerprint, no files)
    from coverage_lib.core.io import sha256_file
    for stamp in runs.glob("*/stamps/*.json"):
        data = stamp.parent.parent
        recorded = json.loads(stamp.read_text())
        assert "outputs" in recorded or stamp.name == "dataset.json", stamp
        for rel, sha in recorded.get("outputs", {}).items():
            assert sha256_file(data / rel) == sha, (stamp, rel)


@pytest.fixture(scope="module")
def beside(finished_tiny, tmp_path_factory):
    """The finished run with a learning-curve chain (``CURVE``) and its main training and
    evaluation to run again, run once: (root, summary, log lines). The test of that run
    reads it; the pinned-chain test pins a copy of it."""
    from coverage_lib.pipeline import run

    root = _with_sweep(finished_tiny, tmp_path_factory.mktemp("beside"), CURVE)
    for name in MAIN_TRAINING:
        (root / "data" / "tiny" / "stamps" / f"{name}.json").unlink()  # trains again
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COVERAGE_PROJECT_ROOT", str(root))
        summary = run.run("tiny", log=lines.append)
    return root, summary, lines


def test_the_main_run_trains_beside_the_chains_and_their_evaluation_waits_for_it(beside):
    root, summary, lines = beside
    main = root / "data" / "tiny"
    assert [summary[n]["status"] for n in ("01_data", *MAIN_TRAINING, "04b_seeds")] \
        == ["skipped", "ran", "ran", "ran", "ran", "ran"]
    assert list(summary["chains"]) == [CURVE_CHAIN]
    # the chain's training ran in a task of its own; the run's table says so, with its CPU
    chain = summary["chains"][CURVE_CHAIN]
    assert [s["status"] for s in chain.values()] == ["ran"] * 4
    assert all(s.get("user_s") is not None for s in chain.values())
    text = "\n".join(lines)
    workers = "a local Dask cluster of 2 workers" if len(os.sched_getaffinity(0)) >= 2 \
        else "this process"
    assert f"({CURVE_CHAIN}), beside the main run, on {workers}, 1 CPU thread(s) each" in text
    # the replicate's evaluation refits the main run's LightGBM choice: it starts after the
    # main run's evaluation is done; the replicate's training did not wait for it
    def at(key):
        return next(i for i, line in enumerate(lines) if key in line)

    done_main = at("main run [4/4] 04_evaluate (notebooks/04_evaluate.ipynb): done")
    assert at(f"{CURVE_CHAIN} [4/4] replicate (notebooks/replicate.ipynb): running") > done_main
    if workers != "this process":
        assert at(f"{CURVE_CHAIN} [1/3] 02_train_mlp (notebooks/02_train_mlp.ipynb): "
                  "running") < done_main
    assert no_partial_files(root) == []
    assert (main / "results" / "seeds.json").is_file()


def test_pinned_curve_chains_keep_their_results_not_their_checkpoints_and_a_fresh_clone_skips_them(
        beside, tmp_path, monkeypatch):
    from coverage_lib.pipeline import pins, run

    # the learning-curve chain run beside the main run, every stage finished: pinned
    source, first, _ = beside
    root = tmp_path / "project"
    shutil.copytree(source, root, symlinks=True)
    monkeypatch.setenv("COVERAGE_PROJECT_ROOT", str(root))
    main = root / "data" / "tiny"
    assert first["chains"][CURVE_CHAIN]["replicate"]["status"] == "ran"
    pins.pin("tiny", log=lambda *_: None)
    listed = pins.read_manifest("tiny")
    chain = f"runs/{CURVE_CHAIN}/"
    assert {chain + "results/replicate.json", chain + "stamps/02_train_mlp.json",
            chain + "models/mlp_training_history.json", "models/best_mlp_coverage.pth",
            "results/metrics.json"} <= set(listed)
    assert not [f for f in listed if f.startswith(chain) and f.endswith(".pth")]
    assert not [f for f in listed if f.startswith(("models/lightgbm", chain + "executed/02"))]

    shutil.rmtree(main)  # a fresh clone: the pins, no data
    lines = []
    again = run.run("tiny", log=lines.append)
    assert again["01_data"]["status"] == "ran"
    assert {n: s["status"] for n, s in again.items() if n not in ("01_data", "chains")} \
        == dict.fromkeys(("02_train_mlp", "03_train_mamba", "03b_train_mlp_law", "04_evaluate",
                          "04b_seeds", "05_plots", "06_interactive"), "skipped")
    assert [s["status"] for s in again["chains"][CURVE_CHAIN].values()] == ["skipped"] * 4
    assert not (main / chain / "models" / "best_mlp_coverage.pth").exists()
    assert not (main / "models" / "lightgbm").exists()
    assert f"{CURVE_CHAIN}: its result is up to date" in "\n".join(lines)

    # a changed evaluation parameter makes the chain's evaluation stale: it trains again first,
    # beside the main evaluation (the pins kept no checkpoints), then only evaluates after it;
    # the run stops at the seeds stage (the figures and the interactive page are not at issue)
    path = root / "params" / "tiny.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["04_evaluate"]["selector_tolerance"] = 0.02
    path.write_text(yaml.safe_dump(profile))
    lines = []
    third = run.run("tiny", log=lines.append, until="04b_seeds")
    assert [s["status"] for s in third["chains"][CURVE_CHAIN].values()] == ["ran"] * 4
    def at(key):
        return next(i for i, line in enumerate(lines) if key in line)

    assert at(f"{CURVE_CHAIN} [1/3] 02_train_mlp (notebooks/02_train_mlp.ipynb): running") \
        < at(f"{CURVE_CHAIN} [4/4] replicate (notebooks/replicate.ipynb): running")
    assert (main / chain / "models" / "best_mlp_coverage.pth").is_file()
