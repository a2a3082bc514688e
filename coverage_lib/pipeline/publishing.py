"""Publishing: one finished, up-to-date profile put into the book's source tree
(``book/executed/``) whole, with its provenance; ``check_book`` that the book holds one
profile only.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat

from . import claims, pins, profiles
from ..core.io import atomic_write_text
from ..report import ablation, explorer, glue_contract
from ..core.paths import project_root, resolve
from .definitions import data_dir_of, stage_params, stages
from .execution import is_injected, refresh_prose_of
from .locks import profile_lock
from .stamps import read_stamp, stage_hash, stale_reason, stamp_path
from . import provenance


BOOK_EXECUTED_DIR = "book/executed"


def write_provenance(profile: str) -> dict:
    """data/<profile>/results/provenance.json: what produced this run."""
    prov = provenance.collect(profile, stages())
    atomic_write_text(resolve(data_dir_of(profile)) / "results" / "provenance.json",
                      json.dumps(prov, indent=1) + "\n")
    return prov


def finished_profiles() -> list[str]:
    """Profiles whose every stage has a recorded success (a stamp)."""
    found = []
    for profile in profiles.available_profiles():
        data = resolve(data_dir_of(profile))
        if all(stamp_path(data, s).is_file() for s in stages()):
            found.append(profile)
    return found


def publish(profile: str | None = None, log=print) -> str:
    """Put one profile's finished run into the book's source (``book/executed/``), replacing
    whatever profile was there, and return the profile's name.

    ``profile`` None: the paper profile once it has finished, else the quick one (else any
    finished one). A profile
    whose run is not finished or not up to date (a stage that ``run`` would not skip) is
    refused, naming the stage and why, and the book's source is left as it was. The executed
    notebooks, figures, MANIFEST, provenance, the profile's headline for the first page and
    the ablation (``report.ablation``, from the finished results) are written to a fresh
    folder that then replaces ``book/executed/`` whole, so the book never mixes profiles
    (``check_book``).
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
            path = stamp_path(data, stage)
            stamp = read_stamp(path)
            reason = stale_reason(stage, stamp, stage_hash(stage, all_params[stage.name]), data)
            if reason is not None:
                raise ValueError(f"profile {profile!r} cannot be published: stage {stage.name}: "
                                 f"{reason}; run `python -m coverage_lib run --profile "
                                 f"{profile}` first")
            refresh_prose_of(stage, data, stamp, path)
        _mirror_to_book(profile)
    check_book()
    log(f"book source: {BOOK_EXECUTED_DIR}/ now holds profile {profile!r}")
    return profile


def _mirror_to_book(profile: str) -> None:
    """Write the profile's book files to a fresh folder, then put it in place of
    ``book/executed/`` whole (renames: the book never shows half of one)."""
    book = project_root() / BOOK_EXECUTED_DIR
    book.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".executed.", dir=book.parent))
    try:
        data = resolve(data_dir_of(profile))
        prov = write_provenance(profile)
        atomic_write_text(fresh / "provenance.md", provenance.markdown(prov))
        atomic_write_text(fresh / "profile.md",
                          provenance.headline(prov) + "\n" + pins.headline(profile))
        atomic_write_text(fresh / "claims.md", claims.markdown(profile))
        for stage in stages():
            shutil.copyfile(data / "executed" / f"{stage.name}.ipynb",
                            fresh / f"{stage.name}.ipynb")
        (fresh / "figures").mkdir()
        for figure in (data / "figures").glob("*.png"):  # what the pages show
            shutil.copyfile(figure, fresh / "figures" / figure.name)
        results = data / "results"  # the ablation, worded from the finished results
        ablation.write(data, results / "seeds.json", results / "metrics.json", fresh)
        shutil.copyfile(data / "dataset" / "MANIFEST.txt", fresh / "MANIFEST.txt")
        explorer.write_assets(data, fresh / "static" / "explorer",
                              {"profile": profile, "commit": prov.get("git", {}).get("commit")})
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
    """The ``profile`` parameter papermill injected into the executed notebook ``path``."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if is_injected(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and any(
                        getattr(t, "id", None) == "profile" for t in node.targets):
                    return ast.literal_eval(node.value)
    return None


def check_book() -> str:
    """The profile ``book/executed/`` holds; ValueError if it holds none, misses a stage's
    notebook, mixes profiles (a notebook executed for another profile than PROFILE.txt) or
    breaks the glue contract (``report.glue_contract.check``: a name a page pastes that its notebook
    did not glue, or a glued name no page pastes)."""
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
    problems = glue_contract.check(book, project_root() / "book", project_root() / "notebooks")
    if problems:
        raise ValueError("the book's pages and the executed notebooks disagree on what is "
                         "glued (a stage that glues reruns when the names its pages paste "
                         "change):\n" + "\n".join(f"- {p}" for p in problems))
    return profile
