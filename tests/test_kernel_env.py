"""Notebook kernels start with a plain process's allocator settings wherever the pipeline runs
them: Dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536, which (inherited by a
kernel) made every large tensor a fresh mmap and halved training speed."""
import json

import nbformat
import pytest

from coverage_lib.pipeline import execution

PROBE = ("import json, os\n"
         "print(json.dumps({k: v for k, v in os.environ.items()\n"
         "                  if k.startswith(('MALLOC_', 'OMP_', 'COVERAGE_'))}))")


def kernel_sees(folder) -> dict:
    """The MALLOC_*, OMP_* and COVERAGE_* variables a kernel started by the pipeline's kernel
    manager sees."""
    import papermill as pm

    source, done = folder / "probe.ipynb", folder / "done.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, source)
    pm.execute_notebook(str(source), str(done), kernel_name="python3", progress_bar=False,
                        kernel_manager_class=execution.kernel_manager_class())
    outputs = nbformat.read(done, 4).cells[0].outputs
    return json.loads("".join(o.get("text", "") for o in outputs if o.get("name") == "stdout"))


def test_the_kernel_environment_drops_only_the_allocator_settings():
    env = {"MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin"}
    assert execution.kernel_environment(env) == {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"}


@pytest.mark.slow  # a notebook kernel
def test_a_kernel_started_here_does_not_inherit_malloc_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seen = kernel_sees(tmp_path)
    assert "MALLOC_TRIM_THRESHOLD_" not in seen
    assert seen.get("OMP_NUM_THREADS") == "1"  # the thread budget still reaches it


@pytest.mark.slow  # a Dask LocalCluster and a notebook kernel
def test_a_kernel_started_on_a_dask_worker_does_not_inherit_the_nannys_settings(tmp_path):
    distributed = pytest.importorskip("distributed")

    def on_worker(folder):
        import os
        return dict(os.environ).get("MALLOC_TRIM_THRESHOLD_"), kernel_sees(folder)

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        worker_value, seen = client.submit(on_worker, tmp_path, pure=False).result(timeout=120)
    assert worker_value == "65536"  # what the nanny gives its workers (the premise)
    assert not any(k.startswith("MALLOC_") for k in seen), seen
