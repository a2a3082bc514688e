"""The batch pipeline: execute the notebooks in order with papermill, one profile at a time.

Every parameter is passed explicitly from ``params/<profile>.yaml`` (plus ``profile`` and
``data_dir``), all of them validated before any stage runs. A stage whose notebook's
code cells, parameters, library code and input files are unchanged since its last success,
and whose outputs are still the files it wrote, is skipped (content hashes and output
checksums in ``data/<profile>/stamps/``); ``force`` reruns everything. One run per profile at a
time (``profile_lock``). Executed copies land in ``data/<profile>/executed/``; ``publish``
puts one finished profile into the book's source tree, whole. A profile with replicates (seeds,
learning curves) runs them as chains beside the main run's training and evaluation
(``run_chains``), on a local or a given Dask cluster.
"""
from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import profiles
from ..core import validation
from ..models import registry
from ..datasets import dataset, replicates
from ..evaluation import intervals, runner
from ..report import figures, link_widgets
from ..training import trainer
from ..core.io import atomic_write_text
from ..core.paths import project_root, resolve
from .provenance import git_state


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str
    reads: tuple = ()   # files or folders under data/<profile>/: this stage's inputs
    writes: tuple = ()  # files or folders under data/<profile>/ this stage writes
    rules: dict = field(default_factory=dict, compare=False)  # its parameters' rules, its owner's


def stages() -> list[Stage]:
    """The stages in order: the data; one training stage per registered backbone
    (``registry``: its notebook, checkpoint and history); the evaluation, the figures and the
    interactive page, which read every backbone. Each stage's parameter rules are its owner's
    (the data set's, the trainer's and the backbone's, the evaluation's, the seeds', the
    figures'). A new notebook stage is one entry here, its rules beside the code it calls, its
    section in each profile and its page in ``_toc.yml``."""
    backbones = list(registry.BACKBONES.values())
    checkpoints = tuple(f"models/{b.checkpoint}" for b in backbones)
    routed = tuple(f"models/{registry.by_role(r).checkpoint}" for r in ("primary", "backup"))
    return [
        Stage("01_data", "notebooks/01_data.ipynb", writes=("dataset",),
              rules=dataset.PARAMETERS),
        *(Stage(b.stage, b.notebook, reads=("dataset",),
                writes=(f"models/{b.checkpoint}", f"models/{b.history}"),
                rules=trainer.stage_rules(b)) for b in backbones),
        Stage("04_evaluate", "notebooks/04_evaluate.ipynb", rules=runner.PARAMETERS,
              reads=("dataset", *checkpoints),
              writes=("models/lightgbm", "results/metrics.json",
                      "results/selector_thresholds.json", "models/onnx")),
        Stage("04b_seeds", "notebooks/04b_seeds.ipynb",
              reads=("results/metrics.json", f"{replicates.RUNS_DIR}/*/{REPLICATE_RESULT}"),
              writes=("results/seeds.json",), rules=intervals.PARAMETERS),
        Stage("05_plots", "notebooks/05_plots.ipynb",
              reads=("dataset", "models", "results/metrics.json",
                     "results/selector_thresholds.json", "results/seeds.json"),
              writes=("figures",), rules=figures.PARAMETERS),
        Stage("06_interactive", "notebooks/06_interactive.ipynb",
              reads=("dataset", *routed, "results/selector_thresholds.json"),
              rules=link_widgets.PARAMETERS),
    ]


REPLICATE_RESULT = "results/replicate.json"
SEEDS_STAGE = "04b_seeds"  # the replicate chains run before it (``run_chains``)
EVALUATION_STAGE = "04_evaluate"


def chain_stages() -> list[Stage]:
    """The stages of a replicate chain (``replicates``), in its own folder: one training stage
    per registered backbone (the main run's notebooks) and the replicate evaluation."""
    backbones = list(registry.BACKBONES.values())
    return [*(Stage(b.stage, b.notebook, reads=("dataset",),
                    writes=(f"models/{b.checkpoint}", f"models/{b.history}")) for b in backbones),
            Stage("replicate", "notebooks/replicate.ipynb",
                  reads=("dataset", *(f"models/{b.checkpoint}" for b in backbones)),
                  writes=(REPLICATE_RESULT,))]


BOOK_EXECUTED_DIR = "book/executed"


class PipelineError(RuntimeError):
    """A stage failed; the message names the notebook and the cell."""


class PipelineBusy(RuntimeError):
    """Another run of the same profile holds its lock; the message names it."""


LOCK_FILE = ".pipeline.lock"


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def profile_lock(profile: str, log=print):
    """Hold ``data/<profile>/.pipeline.lock`` for the duration of a run: one run per profile.

    The lock is the kernel's (``flock``, taken atomically and released when the process ends,
    however it ends); the file says who holds it (PID, host, start time, command). A second
    run is refused at once with ``PipelineBusy`` naming the running one. A file whose holder
    is gone (a run killed with SIGKILL) is taken over with a warning.
    """
    data = resolve(data_dir_of(profile))
    data.mkdir(parents=True, exist_ok=True)
    path = data / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock(fd)
            raise PipelineBusy(
                f"profile {profile!r} is already being run by PID {holder.get('pid', '?')} "
                f"on {holder.get('host', '?')} (started {holder.get('started', '?')}: "
                f"{holder.get('command', '?')}); it holds {path}. Wait for it to finish, or "
                f"stop it, then run again.") from None
        earlier = _read_lock(fd)
        if earlier.get("pid") not in (None, os.getpid()):
            state = "no longer running" if not _pid_alive(earlier["pid"]) else \
                "not holding the lock"
            log(f"warning: taking over the lock of an earlier run of profile {profile!r} "
                f"(PID {earlier['pid']}, started {earlier.get('started', '?')}), "
                f"{state}: it was interrupted")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(sys.argv) or "python"}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # an empty file: nobody holds it
    finally:
        os.close(fd)  # releases the flock


def _read_lock(fd) -> dict:
    raw = os.pread(fd, 4096, 0)
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except ValueError:
        holder = {"pid": "?", "started": "unreadable lock file"}
    return holder if isinstance(holder, dict) else {}


def _remove_leftovers(data: Path, log=print) -> None:
    """Partial files of an interrupted run (killed during a stage or during a write): the
    executed notebook papermill was writing, and atomic writes' temporary files. Only called
    under the profile's lock, so no other run can be writing them."""
    leftovers = sorted(data.glob("executed/.*.running.ipynb")) + sorted(data.rglob(".*.tmp"))
    for path in leftovers:
        path.unlink(missing_ok=True)
        log(f"removed {path.relative_to(data)}, left behind by an interrupted run")


def data_dir_of(profile: str) -> str:
    return f"data/{profile}"


def stage_params(profile: str) -> dict:
    """Validated parameters of every stage: {stage: params}. Raises before any work."""
    from papermill import inspect_notebook

    config = profiles.load_profile(profile)
    unknown = sorted(set(config) - {s.name for s in stages()})
    if unknown:
        raise ValueError(f"params/{profile}.yaml names unknown stage {unknown[0]!r}; stages: "
                         f"{[s.name for s in stages()]}")
    absent = [s.name for s in stages() if s.name not in config]
    if absent:
        raise ValueError(f"params/{profile}.yaml has no section for stage {absent[0]!r}: every "
                         f"stage's parameters are passed explicitly")
    out = {}
    for stage in stages():
        if not resolve(stage.notebook).exists():
            raise ValueError(f"stage {stage.name}: notebook {stage.notebook} does not exist")
        p = {**config[stage.name], "profile": profile,
             "data_dir": data_dir_of(profile)}
        declared = set(inspect_notebook(str(resolve(stage.notebook))))
        extra = sorted(set(p) - declared)
        if extra:
            raise ValueError(f"unknown parameter {extra[0]!r} for {stage.notebook} (stage "
                             f"{stage.name}); its parameters are {sorted(declared)}")
        out[stage.name] = validation.validate(stage.name, stage.rules, p)
    return out


def _sha256_files(paths) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(project_root())).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _imported_modules(source: str, package: str = "") -> set[str]:
    """Names of the ``coverage_lib`` modules that ``source`` imports, anywhere in it
    (function-level imports included). ``package`` resolves relative imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return {n for n in names if n == "coverage_lib" or n.startswith("coverage_lib.")}


def library_files(source: str) -> list[Path]:
    """The library files a notebook's code depends on: every ``coverage_lib`` module it
    imports, what those import, and so on (each package's ``__init__`` included), plus the
    data files shipped beside them (the gas table beside the physics). The registry names the backbones' modules
    without importing them, so code that imports the registry depends on each of them too.
    Editing any other module leaves the stage's hash unchanged."""
    root = project_root()
    seen, todo, files = set(), list(_imported_modules(source)), set()
    while todo:
        name = todo.pop()
        if name == "coverage_lib.models.registry":
            todo.extend(b.module for b in registry.BACKBONES.values())
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way are imported too
            prefix = ".".join(parts[:i])
            if prefix in seen:
                continue
            seen.add(prefix)
            base = root.joinpath(*prefix.split("."))
            path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
            if not path.is_file():
                continue  # a name imported from a module, not a module
            files.add(path)
            package = prefix if path.name == "__init__.py" else prefix.rpartition(".")[0]
            todo.extend(_imported_modules(path.read_text(), package))
    shipped = {f for module in files for f in module.parent.glob("*.npz")}
    return sorted(files | shipped)


def _code_digest(paths) -> str:
    """Hash of Python sources by what they do: their syntax tree without docstrings (comments
    and formatting never reach the tree), so editing documentation reruns nothing. Other
    files are hashed byte for byte."""
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(project_root())).encode())
        if path.suffix != ".py":
            h.update(path.read_bytes())
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                    and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        h.update(ast.dump(tree).encode())
    return h.hexdigest()


def stage_hash(stage: Stage, p: dict) -> str:
    """Content hash of what determines a stage's results: the notebook's code cells, its
    parameters, the code of the library modules it imports (``library_files``,
    ``_code_digest``) and the stage's input files. The notebook's prose is not hashed:
    fixing a sentence retrains nothing (``refresh_prose`` puts it into the executed copy)."""
    nb = nbformat.read(resolve(stage.notebook), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    cells = "\n".join(f"code:{c.source}" for c in nb.cells if c.cell_type == "code")
    library = library_files("\n".join(line for line in code.splitlines()
                                      if not line.lstrip().startswith(("%", "!"))))
    data = resolve(p["data_dir"])
    inputs = sorted(f for entry in stage.reads for f in _entry_files(data, entry))
    h = hashlib.sha256()
    for part in (cells, json.dumps(p, sort_keys=True), _code_digest(library),
                 _sha256_files(inputs)):
        h.update(part.encode())
    return h.hexdigest()


def _entry_files(data: Path, entry: str) -> list[Path]:
    """The files a ``reads`` entry names: a file, every file under a folder, or the files
    matching a glob pattern (``runs/*/results/replicate.json``)."""
    if "*" in entry:
        return [f for f in data.glob(entry) if f.is_file()]
    target = data / entry
    return [target] if target.is_file() else [f for f in target.rglob("*") if f.is_file()]


def output_checksums(stage: Stage, data: Path) -> dict:
    """{path under data/<profile>/: sha256} of every file a stage wrote (its ``writes`` and
    its executed notebook): recorded in the stage's stamp, compared before skipping it."""
    paths = [data / "executed" / f"{stage.name}.ipynb"]
    for entry in stage.writes:
        target = data / entry
        paths += [target] if target.is_file() else sorted(
            f for f in target.rglob("*") if f.is_file() and not f.name.endswith(".tmp"))
    return {str(p.relative_to(data)): _sha256_of(p) for p in paths if p.is_file()}


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def stale_reason(stage: Stage, stamp: dict, digest: str, data: Path) -> str | None:
    """Why a stage must run again, or None if it is up to date: its inputs (the hash) or its
    outputs (the recorded checksums) differ from its last success."""
    if not stamp:
        return "no record of a successful run"
    if stamp.get("hash") != digest:
        return "its notebook, parameters, library code or inputs changed"
    recorded = stamp.get("outputs")
    if not recorded:
        return "its stamp records no output checksums (written by an older version)"
    missing = [w for w in stage.writes if not (data / w).exists()]
    if missing:
        return f"{missing[0]} is missing"
    current = output_checksums(stage, data)
    for rel, sha in recorded.items():
        if current.get(rel) != sha:
            what = "is missing" if rel not in current else "changed"
            return f"{rel} {what} since {stage.name} wrote it"
    return None


def _is_injected(cell) -> bool:
    return "injected-parameters" in cell.metadata.get("tags", [])


def refresh_prose(notebook, executed: Path) -> bool:
    """Give the executed copy the notebook's current prose (markdown and raw cells), keeping
    its code cells, outputs and injected parameters. Only when the code cells are the same
    (otherwise the stage reruns anyway). Returns True if the copy changed."""
    source = nbformat.read(resolve(notebook), as_version=4)
    done = nbformat.read(executed, as_version=4)
    ran = [c for c in done.cells if c.cell_type == "code" and not _is_injected(c)]
    if [c.source for c in ran] != [c.source for c in source.cells if c.cell_type == "code"]:
        return False
    injected, ran_iter, cells = [c for c in done.cells if _is_injected(c)], iter(ran), []
    for cell in source.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        cells.append(next(ran_iter))
        if "parameters" in cell.metadata.get("tags", []):
            cells.extend(injected)
    if [(c.cell_type, c.source) for c in cells] == [(c.cell_type, c.source) for c in done.cells]:
        return False
    done.cells = cells
    atomic_write_text(executed, nbformat.writes(done))
    return True


def _refresh_prose_of(stage: Stage, data: Path, stamp: dict, stamp_path: Path) -> bool:
    """``refresh_prose`` for an up-to-date stage, recording the executed copy's new checksum
    in its stamp; True if the prose changed."""
    if not refresh_prose(stage.notebook, data / "executed" / f"{stage.name}.ipynb"):
        return False
    stamp["outputs"] = output_checksums(stage, data)
    atomic_write_text(stamp_path, json.dumps(stamp, indent=1))
    return True


def _tag_parameters_cell(path: Path) -> None:
    """Hide the defaults (the ``parameters`` cell) in the executed copy: readers see the
    injected values instead."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
    atomic_write_text(path, nbformat.writes(nb))


def _write_provenance(profile: str) -> dict:
    """data/<profile>/results/provenance.json: what produced this run."""
    from . import provenance

    prov = provenance.collect(profile, stages())
    atomic_write_text(resolve(data_dir_of(profile)) / "results" / "provenance.json",
                      json.dumps(prov, indent=1) + "\n")
    return prov


def finished_profiles() -> list[str]:
    """Profiles whose every stage has a recorded success (a stamp)."""
    found = []
    for profile in profiles.available_profiles():
        stamps = resolve(data_dir_of(profile)) / "stamps"
        if all((stamps / f"{s.name}.json").is_file() for s in stages()):
            found.append(profile)
    return found


def publish(profile: str | None = None, log=print) -> str:
    """Put one profile's finished run into the book's source (``book/executed/``), replacing
    whatever profile was there, and return the profile's name.

    ``profile`` None: the paper profile once it has finished, else the quick one (else any
    finished one). A profile
    whose run is not finished or not up to date (a stage that ``run`` would not skip) is
    refused, naming the stage and why, and the book's source is left as it was. The executed
    notebooks, figures, MANIFEST, provenance and the profile's headline for the first page
    are written to a fresh folder that then replaces ``book/executed/`` whole, so the book
    never mixes profiles (``check_book``).
    """
    if profile is None:
        done = finished_profiles()
        profile = next((p for p in ("paper", "quick", *done) if p in done), None)
        if profile is None:
            raise ValueError("no profile has finished a run yet: run "
                             "`python -m coverage_lib run --profile quick` (or paper) first")
    all_params = stage_params(profile)
    data = resolve(data_dir_of(profile))
    with profile_lock(profile, log):
        for stage in stages():
            stamp_path = data / "stamps" / f"{stage.name}.json"
            stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
            reason = stale_reason(stage, stamp, stage_hash(stage, all_params[stage.name]), data)
            if reason is not None:
                raise ValueError(f"profile {profile!r} cannot be published: stage {stage.name}: "
                                 f"{reason}; run `python -m coverage_lib run --profile "
                                 f"{profile}` first")
            _refresh_prose_of(stage, data, stamp, stamp_path)
        _mirror_to_book(profile)
    check_book()
    log(f"book source: {BOOK_EXECUTED_DIR}/ now holds profile {profile!r}")
    return profile


def _mirror_to_book(profile: str) -> None:
    from . import provenance

    book = project_root() / BOOK_EXECUTED_DIR
    book.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".executed.", dir=book.parent))
    try:
        data = resolve(data_dir_of(profile))
        prov = _write_provenance(profile)
        atomic_write_text(fresh / "provenance.md", provenance.markdown(prov))
        atomic_write_text(fresh / "profile.md", provenance.headline(prov))
        for stage in stages():
            shutil.copyfile(data / "executed" / f"{stage.name}.ipynb",
                            fresh / f"{stage.name}.ipynb")
        (fresh / "figures").mkdir()
        for figure in (data / "figures").glob("*.png"):  # what the pages show
            shutil.copyfile(figure, fresh / "figures" / figure.name)
        shutil.copyfile(data / "dataset" / "MANIFEST.txt", fresh / "MANIFEST.txt")
        atomic_write_text(fresh / "PROFILE.txt", profile + "\n")
        os.chmod(fresh, 0o755)
        old = book.with_name(f".{book.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if book.exists():
            book.rename(old)
        fresh.rename(book)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _injected_profile(path: Path) -> str | None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if _is_injected(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and any(
                        getattr(t, "id", None) == "profile" for t in node.targets):
                    return ast.literal_eval(node.value)
    return None


def check_book() -> str:
    """The profile ``book/executed/`` holds; ValueError if it holds none, misses a stage's
    notebook, or mixes profiles (a notebook executed for another profile than PROFILE.txt)."""
    book = project_root() / BOOK_EXECUTED_DIR
    if not (book / "PROFILE.txt").is_file():
        raise ValueError(f"{BOOK_EXECUTED_DIR}/ holds no published run: run "
                         f"`python -m coverage_lib book --profile <profile>` first")
    profile = (book / "PROFILE.txt").read_text().strip()
    for stage in stages():
        path = book / f"{stage.name}.ipynb"
        if not path.is_file():
            raise ValueError(f"{BOOK_EXECUTED_DIR}/ lacks {path.name}: publish a finished run "
                             f"with `python -m coverage_lib book --profile {profile}`")
        found = _injected_profile(path)
        if found != profile:
            raise ValueError(f"refusing to build a book from a mix of profiles: "
                             f"{BOOK_EXECUTED_DIR}/{path.name} was executed for profile "
                             f"{found!r}, the book is for {profile!r} (PROFILE.txt); publish one "
                             f"profile with `python -m coverage_lib book --profile <profile>`")
    return profile


def _ipc_kernel_manager():
    """A kernel manager that talks to its kernel over local IPC sockets instead of loopback
    TCP: nothing listens on a port, and ipykernel has no reason to print its "running over TCP
    without encryption" warning at every stage. Each kernel's sockets get a path of their own
    in Jupyter's runtime folder (jupyter_client's default, ``kernel-ipc-N`` in the working
    folder, is shared by every kernel started there: a kernel of a run killed outright, or of
    another profile running beside this one, would collide with it)."""
    import uuid

    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
            super().__init__(transport="ipc",
                             ip=str(runtime / f"coverage-{uuid.uuid4().hex[:16]}-ipc"), **kwargs)

    return IPCKernelManager


def run_stage(stage: Stage, p: dict, executed: Path) -> None:
    import papermill as pm

    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    try:
        pm.execute_notebook(str(resolve(stage.notebook)), str(tmp), parameters=p,
                            kernel_name="python3", cwd=str(project_root()),
                            progress_bar=False, log_output=False,
                            kernel_manager_class=_ipc_kernel_manager())
    except pm.PapermillExecutionError as err:
        failed = executed.with_name(f"{executed.stem}.failed.ipynb")
        shutil.move(tmp, failed)
        raise PipelineError(
            f"stage {stage.name} failed in {stage.notebook}, cell {err.cell_index} "
            f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
            f"the executed notebook with the error is {failed}") from None
    _tag_parameters_cell(tmp)
    tmp.replace(executed)
    executed.with_name(f"{executed.stem}.failed.ipynb").unlink(missing_ok=True)


def run(profile: str, force: bool = False, log=print, scheduler: str | None = None,
        until: str | None = None) -> dict:
    """Run every stage of ``profile``; returns {stage: 'ran' | 'skipped'} and wall times
    (and the replicate chains' under "chains").

    ``scheduler``: a Dask scheduler's address (``tcp://host:8786``) or scheduler file (a path
    ending in .json) to send the replicate chains to; None runs them here. ``until``: the
    name of the last stage to run (e.g. "01_data" to generate the data set only); None runs
    them all. Bad parameters → ValueError before anything is touched; another run of the
    same profile in progress → ``PipelineBusy``, also before anything is touched."""
    all_params = stage_params(profile)  # validation first: nothing is touched on bad input
    if until is not None:
        validation.one_of(*(s.name for s in stages()))("until", until)
    if scheduler is not None:
        from . import fanout

        validation.non_empty_str("scheduler", scheduler)
        log(f"Dask scheduler {scheduler}: {fanout.check_scheduler(scheduler)} workers now")
    with profile_lock(profile, log):
        return _run_locked(profile, all_params, force, log, scheduler, until)


def _run_locked(profile: str, all_params: dict, force: bool, log,
                scheduler: str | None = None, until: str | None = None) -> dict:
    data = resolve(data_dir_of(profile))
    _remove_leftovers(data, log)
    summary = {}
    plan = stages()
    if until is not None:
        plan = plan[:[s.name for s in plan].index(until) + 1]
    # with replicates to run, the main run's training and evaluation run beside them
    beside = SEEDS_STAGE in [s.name for s in plan] and bool(replicate_list(all_params))
    side = {s.name for s, _ in main_chain(profile, all_params).steps} if beside else set()
    for i, stage in enumerate(plan, 1):
        if stage.name in side:
            if stage.name not in summary:  # the first of them: all run now
                chains_run = run_chains(profile, all_params, force, scheduler, log,
                                        with_main=True)
                summary.update(chains_run.pop(MAIN_CHAIN))
                summary["chains"] = chains_run
            continue
        summary[stage.name] = run_stage_if_stale(
            stage, all_params[stage.name], data, force,
            f"[{i}/{len(plan)}] {stage.name} ({stage.notebook})", log)
    _write_provenance(profile)
    log(f"executed notebooks: {data / 'executed'} (for the book: python -m coverage_lib book "
        f"--profile {profile})")
    return summary


def run_stage_if_stale(stage: Stage, p: dict, data: Path, force: bool, prefix: str,
                       log) -> dict:
    """Run one stage whose outputs live under ``data`` unless it is up to date (its stamp in
    ``data/stamps/``); {"status": "ran" | "skipped", "wall_s"}."""
    (data / "executed").mkdir(parents=True, exist_ok=True)
    (data / "stamps").mkdir(parents=True, exist_ok=True)
    digest = stage_hash(stage, p)
    stamp_path = data / "stamps" / f"{stage.name}.json"
    executed = data / "executed" / f"{stage.name}.ipynb"
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    reason = "--force" if force else stale_reason(stage, stamp, digest, data)
    if reason is None:
        note = " (its prose was refreshed from the notebook)" \
            if _refresh_prose_of(stage, data, stamp, stamp_path) else ""
        log(f"{prefix}: unchanged since its last success, skipped{note}")
        return {"status": "skipped", "wall_s": stamp.get("wall_s")}
    if reason.endswith("wrote it"):  # an output changed under a valid stamp
        log(f"{prefix}: {reason}: rerunning {stage.name} ...")
    else:
        log(f"{prefix}: running ({reason}) ...")
    stamp_path.unlink(missing_ok=True)
    start = time.perf_counter()
    run_stage(stage, p, executed)
    wall = time.perf_counter() - start
    atomic_write_text(stamp_path, json.dumps(
        {"hash": digest, "wall_s": round(wall, 2), "parameters": p, "git": git_state(),
         "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "outputs": output_checksums(stage, data)}, indent=1))
    log(f"{prefix}: done in {wall:.1f} s")
    return {"status": "ran", "wall_s": round(wall, 2)}


# -- replicate chains (seeds and learning curves) -----------------------------------------------

@dataclass(frozen=True)
class Chain:
    """One replicate's stages and their parameters, run in its own folder (``data_dir``)."""
    profile: str
    replicate: replicates.Replicate
    data_dir: str
    data_seed: int
    split_fractions: tuple
    steps: tuple  # ((Stage, params), ...)
    threads: int = 1  # CPU threads of its notebooks' kernels, wherever it runs

    @property
    def name(self) -> str:
        return self.replicate.name


def replicate_list(all_params: dict) -> list:
    """The seeds stage's replicates but the main run (``replicates.replicates``)."""
    sweep = all_params[SEEDS_STAGE]
    return [r for r in replicates.replicates(sweep["seeds"], sweep["train_rows"])
            if not r.is_main]


def chains(profile: str, all_params: dict, evaluated: bool = True) -> list[Chain]:
    """The replicate chains of a profile (every replicate of the seeds stage but the main
    run), with each stage's parameters: the main run's, with the replicate's folder, seed and
    epoch budget; the replicate evaluation refits LightGBM with the main run's chosen
    hyper-parameters (read from its ``results/metrics.json``, so call this after the
    evaluation stage). ``evaluated`` False: the training stages only (before that)."""
    sweep, main_dir = all_params[SEEDS_STAGE], data_dir_of(profile)
    todo = replicate_list(all_params)
    if not todo:
        return []
    from ..datasets.dataset import load_stats
    from ..core.paths import dataset_dir

    n_full = load_stats(dataset_dir(main_dir))["n_rows"]
    metrics = json.loads((resolve(main_dir) / "results" / "metrics.json").read_text()) \
        if evaluated else None
    evaluation = all_params["04_evaluate"]
    data_params = all_params["01_data"]
    out = []
    for replicate in todo:
        run_dir = replicate.data_dir(main_dir)
        steps = []
        for stage in chain_stages()[:-1]:
            p = dict(all_params[stage.name])
            p.update(data_dir=run_dir, seed=replicate.seed, epochs=replicates.epochs_for(
                p["epochs"], n_full, replicate.train_rows, sweep["max_epoch_factor"]))
            steps.append((stage, p))
        if metrics is not None:
            steps.append((chain_stages()[-1], replicate_params(
                profile, run_dir, replicate, metrics, evaluation)))
        out.append(Chain(profile, replicate, run_dir, data_params["seed"],
                         tuple(data_params["split_fractions"]), tuple(steps),
                         sweep["chain_threads"]))
    return out


def replicate_params(profile: str, run_dir: str, replicate, metrics: dict,
                     evaluation: dict) -> dict:
    """The replicate evaluation's parameters: the main run's chosen LightGBM hyper-parameters
    (its ``metrics``) and its evaluation parameters (``evaluation``)."""
    return validation.validate("replicate", runner.REPLICATE_PARAMETERS, {
        "profile": profile, "data_dir": run_dir, "seed": replicate.seed,
        "lightgbm_params": {t: c["params"] for t, c in metrics["lightgbm"]["chosen"].items()},
        # the rules only where the book's tables use them: a seed's run on every row
        "physics_rows": evaluation["physics_rows"] if replicate.train_rows is None else 0,
        **{k: evaluation[k] for k in ("lightgbm_max_rounds", "lightgbm_early_stopping",
                                      "lightgbm_min_improvement", "selector_quantile")}})


MAIN_CHAIN = "main run"


def main_chain(profile: str, all_params: dict) -> Chain:
    """The main run's training stages and its evaluation as a chain of their own (in the
    profile's folder, on the data stage's data set), to run beside the replicate chains."""
    data_params, main_dir = all_params["01_data"], data_dir_of(profile)
    names = [s.name for s in chain_stages()[:-1]] + [EVALUATION_STAGE]
    steps = tuple((s, all_params[s.name]) for s in stages() if s.name in names)
    return Chain(profile, replicates.Replicate(0), main_dir, data_params["seed"],
                 tuple(data_params["split_fractions"]), steps,
                 all_params[SEEDS_STAGE]["chain_threads"])


def run_named_chain(profile: str, name: str, force: bool = False, log=print) -> dict:
    """Run replicate chain ``name`` of ``profile`` whole, its parameters read now (after the
    main run's evaluation): stages that ran beside the main run are skipped, stamped."""
    chain = {c.name: c for c in chains(profile, stage_params(profile))}[name]
    return run_chain(chain, force, log)


@contextlib.contextmanager
def _folder_lock(folder: Path, what: str):
    """An exclusive ``flock`` on ``folder/.chain.lock`` while a chain runs there (released
    when its process ends, however it ends)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".chain.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusy(f"{what} is already running in {folder}") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def kernel_threads(threads: int):
    """Notebook kernels started meanwhile (they inherit this process's environment) use
    ``threads`` CPU threads (``OMP_NUM_THREADS``: torch, LightGBM and NumPy's BLAS)."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def run_chain(chain: Chain, force: bool = False, log=print) -> dict:
    """Run one replicate chain where this process runs: its data set, then its stages, each
    skipped when up to date (stamps in the chain's folder, as the main run's), their kernels
    on ``chain.threads`` CPU threads. Leftovers of an interrupted attempt (a worker killed
    mid-stage) are removed first."""
    data = resolve(chain.data_dir)
    name = MAIN_CHAIN if chain.replicate.is_main else chain.name
    with _folder_lock(data, name), kernel_threads(chain.threads):
        if not chain.replicate.is_main:  # the main run's own are removed under its lock
            _remove_leftovers(data, log)
            start = time.perf_counter()
            if replicates.write_dataset(data_dir_of(chain.profile), chain.replicate,
                                        chain.data_seed, chain.split_fractions, log):
                log(f"{name}: wrote its data set in {time.perf_counter() - start:.1f} s")
        summary = {}
        for i, (stage, p) in enumerate(chain.steps, 1):
            summary[stage.name] = run_stage_if_stale(
                stage, p, data, force,
                f"{name} [{i}/{len(chain.steps)}] {stage.name} ({stage.notebook})", log)
        return summary


def local_workers(n_chains: int, threads: int) -> int:
    """How many chains run side by side here: one per ``threads`` of this process's CPUs, at
    most one per chain."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(n_chains, (cpus or 1) // threads))


def run_chains(profile: str, all_params: dict, force: bool, scheduler: str | None,
               log=print, with_main: bool = False) -> dict:
    """Every replicate chain of ``profile``; {chain name: its stages' summaries}.

    Given a Dask scheduler's address (or scheduler file), fanned out to that cluster; else side
    by side on a local Dask cluster of one worker per ``chain_threads`` CPUs
    (``local_workers``), or in this process where that is one (``fanout``). Every chain's
    kernels use ``chain_threads`` threads on any of these, so its results do not depend on
    where it ran. ``with_main``: the main run's training and evaluation (``main_chain``, under
    ``MAIN_CHAIN`` in the result) run beside the chains' training; each chain's evaluation,
    which refits the main run's LightGBM choice, waits for it."""
    from . import fanout

    names = [r.name for r in replicate_list(all_params)]
    if not names:
        return {}
    first = [main_chain(profile, all_params), *chains(profile, all_params, evaluated=False)] \
        if with_main else []
    threads = all_params[SEEDS_STAGE]["chain_threads"]
    workers = local_workers(len(names) + with_main, threads)
    where = (f"on the Dask cluster at {scheduler}" if scheduler else
             f"on a local Dask cluster of {workers} workers" if workers > 1 else "in this process")
    log(f"{len(names)} replicate chains ({', '.join(names)})"
        f"{', beside the main run,' if with_main else ''} {where}, {threads} CPU thread(s) each")
    if scheduler:
        return fanout.run_on_dask(profile, names, first, scheduler, force, log)
    if workers > 1:
        return fanout.run_locally(profile, names, first, workers, force, log)
    done = {MAIN_CHAIN: run_chain(first[0], force, log)} if with_main else {}
    return {**done, **{name: run_named_chain(profile, name, force, log) for name in names}}


SCHEDULER_ENV = "COVERAGE_DASK_SCHEDULER"


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coverage_lib",
                                     description="Run the D²TL Coverage notebook pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the notebooks of a profile with papermill")
    run_p.add_argument("--profile", required=True,
                       help=f"parameter profile: one of {profiles.available_profiles()}")
    run_p.add_argument("--force", action="store_true", help="rerun stages even if unchanged")
    run_p.add_argument("--until", default=None, metavar="STAGE",
                       help="the last stage to run (e.g. 01_data); default: every stage")
    run_p.add_argument("--scheduler", default=os.environ.get(SCHEDULER_ENV) or None,
                       help="send the replicate chains (seeds, learning curves) to the Dask "
                            "scheduler at this address (tcp://host:8786) or scheduler file "
                            f"(*.json); default ${SCHEDULER_ENV}, else run them here")
    book_p = sub.add_parser("book", help="put a finished run into the book's source "
                                         "(book/executed/), one profile only")
    book_p.add_argument("--profile", default=None,
                        help="the profile the book shows (default: paper once it has "
                             "finished, else quick)")
    book_p.add_argument("--check", action="store_true",
                        help="only check that book/executed/ holds one profile, whole")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.profile, force=args.force, scheduler=args.scheduler, until=args.until)
        elif args.check:
            print(f"book/executed/ holds profile {check_book()!r}")
        else:
            publish(args.profile)
    except (ValueError, PipelineError, PipelineBusy) as err:
        print(f"error: {err}", file=sys.stderr)
        return {ValueError: 2, PipelineBusy: 3}.get(type(err), 1)
    return 0
