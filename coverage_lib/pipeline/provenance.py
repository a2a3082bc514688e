"""Provenance of a pipeline run: what produced the numbers in the book.

``collect(profile)`` gathers the git commit (and whether the working tree had uncommitted
changes), every stage's parameters and wall time (from its stamp), the data set's checksums
(``MANIFEST.txt``), the versions of the libraries that matter and the machine. ``markdown``
renders it as the tables of the book's reproducibility page. The pipeline writes both after
every run (``data/<profile>/results/provenance.json``, ``book/executed/provenance.md``).
"""
from __future__ import annotations

import json
import subprocess
from importlib import metadata

from ..core.paths import project_root, resolve
from ..core.machine import machine

PACKAGES = ("coverage_lib", "torch", "numpy", "pandas", "scipy", "lightgbm", "matplotlib",
            "papermill", "nbval", "jupyter-book", "myst-nb", "sphinx", "itur")


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict:
    """The checkout's commit and whether tracked files differ from it (None outside git)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes": None if status is None else bool(status)}


def versions() -> dict:
    """Installed version of each package of ``PACKAGES`` (None where absent)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _seconds(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else ""


def _stage(name: str, notebook: str) -> str:
    """A stage as the stage table names it: its name, and its notebook where that is not
    ``notebooks/<name>.ipynb`` (the file name under ``notebooks/``, else its path)."""
    if notebook == f"notebooks/{name}.ipynb":
        return name
    return f"{name} (`{notebook.removeprefix('notebooks/')}`)"


def _when(finished: str | None) -> str:
    """An ISO time in UTC ("2026-12-02T13:46:55Z") as the stage table shows it, date and time
    apart ("2026-12-02 13:46:55"): a narrow column breaks it between them."""
    return (finished or "").replace("T", " ").removesuffix("Z")


def collect(profile: str, stages) -> dict:
    """Provenance of the latest run of ``profile`` over ``stages`` (pipeline.stages())."""
    data = resolve(f"data/{profile}")
    runs = {}
    for stage in stages:
        stamp = data / "stamps" / f"{stage.name}.json"
        if stamp.is_file():
            s = json.loads(stamp.read_text())
            runs[stage.name] = {"notebook": stage.notebook, "wall_s": s.get("wall_s"),
                                "user_s": s.get("user_s"), "sys_s": s.get("sys_s"),
                                "finished": s.get("finished"), "parameters": s.get("parameters"),
                                "git": s.get("git") or {}}
    manifest = data / "dataset" / "MANIFEST.txt"
    files = []
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, size, sha = line.split()
                files.append({"file": name, "bytes": int(size), "sha256": sha})
    return {"profile": profile, "git": git_state(), "stages": runs, "dataset_manifest": files, "versions": versions(),
            "machine": machine()}


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def headline(prov: dict) -> str:
    """One paragraph for the book's first page: the profile it shows and the code that ran it
    (full commit hash, and whether the working tree was clean)."""
    git = prov["git"] or {}
    if not git.get("commit"):
        code = "outside a git checkout (no commit recorded)"
    else:
        state = {True: "with uncommitted changes to tracked files", False: "clean tree",
                 None: "tree state unknown"}[git.get("uncommitted_changes")]
        code = f"commit `{git['commit']}` ({state})"
    finished = max((r["finished"] or "" for r in prov["stages"].values()), default="")
    return (f"This copy of the book shows the **{prov['profile']}** profile "
            f"(`params/{prov['profile']}.yaml`), run at {code}"
            + (f"; its last stage finished {finished} UTC" if finished else "") + ".\n")


def markdown(prov: dict) -> str:
    """The provenance as MyST markdown (tables only; included by the reproducibility page)."""
    m = prov["machine"]
    def commit_of(git):
        if not git or not git.get("commit"):
            return "not recorded"
        return f"`{git['commit'][:12]}`" + (" + uncommitted changes"
                                            if git.get("uncommitted_changes") else "")

    total = sum(r["wall_s"] or 0 for r in prov["stages"].values())
    parts = [
        _table(("", ""), [("profile", f"`{prov['profile']}`"),
                          ("git commit (book built from)", commit_of(prov["git"])),
                          ("CPU", f"{m['cpu']}, {m['cpu_count']} logical CPUs"),
                          ("GPU", m["cuda_device"] or "none"),
                          ("torch threads", m["torch_threads"]), ("Python", m["python"])]),
        "**Wall time per stage** and its kernel's user and system CPU time (the latest run of "
        "each; a stage is skipped only when its notebook, parameters, inputs and the code of "
        "the library modules it imports are unchanged, so a skipped stage's results are those "
        "this code gives; a high system share would be a bug, not noise). A stage runs "
        "`notebooks/<stage>.ipynb`, or the notebook named beside it:",
        _table(("stage", "wall time [s]", "user / system CPU [s]", "finished (UTC)",
                "run at commit"),
               [(_stage(name, r["notebook"]), _seconds(r.get("wall_s")),
                 " / ".join(_seconds(r.get(k)) for k in ("user_s", "sys_s")).strip(" /"),
                 _when(r["finished"]), commit_of(r["git"])) for name, r in prov["stages"].items()]
               + [("**all stages**", f"**{total:.1f}** ({total / 60:.1f} min)", "", "", "")]),
        "**Parameters per notebook** (as papermill injected them):",
        _table(("stage", "parameters"),
               [(name, ", ".join(f"`{k}={json.dumps(v)}`" for k, v in r["parameters"].items()))
                for name, r in prov["stages"].items() if r["parameters"]]),
        "**Library versions:**",
        _table(("package", "version"), [(k, v or "not installed")
                                        for k, v in prov["versions"].items()]),
        "**Data set checksums** (`MANIFEST.txt`):",
        _table(("file", "bytes", "sha256"), [(f"`{f['file']}`", f"{f['bytes']:,}",
                                              f"`{f['sha256']}`")
                                             for f in prov["dataset_manifest"]]),
    ]
    return "\n\n".join(parts) + "\n"
