"""The CPU dispatch switch (``pipeline.dispatch``): ``--cpu-dispatch baseline`` starts kernels
that compute with numpy's dispatched SIMD features off and PyTorch at its default ISA, wherever
they start; a bad value is refused before any work."""
import json
import os
import subprocess
import sys

import pytest

from coverage_lib.pipeline import cli, dispatch, execution


def test_the_baseline_environment_turns_off_what_numpy_and_pytorch_dispatch_to():
    env = dispatch.environment("baseline")
    assert env["ATEN_CPU_CAPABILITY"] == "default"
    assert env["NPY_DISABLE_CPU_FEATURES"].split() == dispatch.numpy_dispatched()
    assert dispatch.environment("native") == {}


def test_a_process_started_with_it_computes_at_the_baseline():
    code = "import json; from coverage_lib.core import machine; print(json.dumps(machine.simd()))"
    found = {}
    for which in dispatch.DISPATCHES:
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env={**os.environ, **dispatch.environment(which)})
        found[which] = json.loads(out.stdout.splitlines()[-1])
    assert found["baseline"]["torch_cpu_capability"] == "DEFAULT"
    assert found["baseline"]["numpy_simd"] == []
    assert found["native"]["numpy_simd"] or found["native"]["torch_cpu_capability"] != "DEFAULT"


def test_kernels_started_meanwhile_get_it_and_it_is_undone_after():
    before = os.environ.get(dispatch.ENV)
    with dispatch.kernels_under("baseline"):
        assert dispatch.current() == "baseline"
        env = dispatch.kernel_environment(execution.kernel_environment(dict(os.environ)))
        assert env["ATEN_CPU_CAPABILITY"] == "default"
    assert os.environ.get(dispatch.ENV) == before


def test_a_bad_dispatch_is_refused_naming_it_before_any_work(project, capsys):
    from coverage_lib.pipeline import run

    with pytest.raises(ValueError, match=r"cpu_dispatch must be one of \['native', 'baseline'\]; "
                                         r"got 'avx9'"):
        run.run("tiny", cpu_dispatch="avx9", log=lambda *_: None)
    assert not (project / "data").exists()
    with pytest.raises(SystemExit):  # argparse's choices: exit status 2, naming the choices
        cli.main(["run", "--profile", "tiny", "--cpu-dispatch", "avx9"])
    assert "invalid choice: 'avx9'" in capsys.readouterr().err
