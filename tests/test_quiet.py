"""The timings' quiet machine (``evaluation.quiet``): the evaluation's timings wait for every
replicate stage that is computing, and no replicate stage starts while they run."""
import subprocess
import sys
import textwrap
import time

from coverage_lib.evaluation import quiet

HOLD = textwrap.dedent("""
    import sys, time
    from coverage_lib.evaluation import quiet
    with getattr(quiet, sys.argv[2])(sys.argv[1], log=lambda *_: None):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
        print(time.time(), flush=True)  # the moment just before it lets go
""")


def _holder(folder, mode: str, seconds: float) -> subprocess.Popen:
    """Another process holding the lock ``mode`` ("computing" or "timing") for ``seconds``,
    returned once it holds it; it prints the time just before it lets go."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), mode, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_timings_wait_for_the_replicate_stages_computing(tmp_path):
    stages = [_holder(tmp_path, "computing", 1.5), _holder(tmp_path, "computing", 2.0)]
    said = []
    start = time.perf_counter()
    with quiet.timing(tmp_path, log=said.append) as waited:
        got = time.time()
    let_go = [float(p.communicate()[0]) for p in stages]
    assert got >= max(let_go)  # both stages had ended before the timings began
    assert waited >= 1.5 and time.perf_counter() - start >= 1.5
    assert said[0].startswith("timings: waiting until no replicate stage")


def test_no_replicate_stage_starts_during_the_timings(tmp_path):
    timings = _holder(tmp_path, "timing", 1.5)
    said = []
    with quiet.computing(tmp_path, log=said.append) as waited:
        got = time.time()
    assert got >= float(timings.communicate()[0])
    assert waited >= 1.0 and said == ["waiting for the main run's timings to finish"]


def test_nothing_holding_it_the_timings_start_at_once(tmp_path):
    said = []
    with quiet.timing(tmp_path, log=said.append) as waited:
        with quiet.timing(tmp_path / "another run", log=said.append):
            pass
    assert waited < 0.5 and said == []
