"""Content-hash stamps: whether a stage is up to date.

A stage's hash covers what determines its results: its notebook's code cells, its parameters,
the library modules its notebook imports (transitively, ``library_files``: so an edit to a
module of a layer the notebook does not reach reruns nothing) and its input files. Its stamp
(``data/<profile>/stamps/<stage>.json``) records that hash and the checksums of the files it
wrote after its last success; ``stale_reason`` compares both.
"""
from __future__ import annotations

import ast
import fnmatch
import functools
import hashlib
import json
from pathlib import Path

import nbformat

from ..core.io import atomic_write_text, sha256_file
from ..core.paths import project_root, resolve
from ..datasets import dataset
from ..models import registry
from ..report import glue_contract
from .definitions import Stage


def _sha256_listed(named) -> str:
    """One hash of (name, sha256) pairs (``_input_checksums``): computable from the files or from
    their recorded checksums when they are not here (a pinned chain's checkpoints)."""
    h = hashlib.sha256()
    for name, sha in named:
        h.update(name.encode())
        h.update(sha.encode())
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
    data files shipped beside them (the gas table beside the physics). The registry names the
    backbones' modules without importing them, so code that imports the registry depends on
    each of them too.
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
            todo.extend(_module_imports(path, package, *_version(path)))
    shipped = {f for module in files for f in module.parent.glob("*.npz")}
    return sorted(files | shipped)



def _version(path: Path) -> tuple:
    """What identifies a file's present content for the caches below: its modification time
    and size (a file edited in place gets another)."""
    found = path.stat()
    return found.st_mtime_ns, found.st_size


@functools.lru_cache(maxsize=None)
def _module_imports(path: Path, package: str, *_version) -> tuple:
    """``_imported_modules`` of the module at ``path``, parsed once per version of it."""
    return tuple(sorted(_imported_modules(path.read_text(), package)))


def _code_digest(paths) -> str:
    """Hash of Python sources by what they do: their syntax tree without docstrings (comments
    and formatting never reach the tree), so editing documentation reruns nothing. Other
    files are hashed byte for byte."""
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.relative_to(project_root())).encode())
        h.update(_file_digest(path, *_version(path)).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _file_digest(path: Path, *_version) -> str:
    """One file's part of ``_code_digest``, computed once per version of it (every stage's
    hash walks the same modules)."""
    h = hashlib.sha256()
    if path.suffix != ".py":
        h.update(path.read_bytes())
    else:
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



def stage_hash(stage: Stage, p: dict, recorded: dict | None = None) -> str:
    """Content hash of what determines a stage's results: the notebook's code cells, its
    parameters, the code of the library modules it imports (``library_files``,
    ``_code_digest``), the stage's input files and the glue names the book's pages paste from
    it (``report.glue_contract``: it glues only those, so a page that pastes a new name reruns it). The
    notebook's prose and the pages' prose are not hashed: fixing a sentence retrains nothing
    (``refresh_prose`` puts it into the executed copy). ``recorded``: {path under the data
    folder: sha256} of files the earlier stages wrote (their stamps' checksums), standing in for
    an input that is not here (a pinned replicate chain keeps its result, not its checkpoints):
    the hash is the one the files would give."""
    nb = nbformat.read(resolve(stage.notebook), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    cells = "\n".join(f"code:{c.source}" for c in nb.cells if c.cell_type == "code")
    library = library_files("\n".join(line for line in code.splitlines()
                                      if not line.lstrip().startswith(("%", "!"))))
    data = resolve(p["data_dir"])
    inputs = _input_checksums(data, stage.reads, recorded or {})
    h = hashlib.sha256()
    pasted = glue_contract.names_used_from(f"{stage.name}.ipynb")
    for part in (cells, json.dumps(p, sort_keys=True), _code_digest(library),
                 _sha256_listed(inputs), *(["glued:" + ",".join(pasted)] if pasted else [])):
        h.update(part.encode())
    return h.hexdigest()


def _input_checksums(data: Path, reads: tuple, recorded: dict) -> list[tuple]:
    """(path relative to the project root, sha256) of every input file, in path order: the
    files of each ``reads`` entry, or, for an entry with no file here, the ``recorded``
    checksums of the files under it. A data set counts by its identity (``dataset.identity``,
    as its MANIFEST's checksum: the same on another CPU once its fingerprint agreed), not by
    its files' bytes."""
    found = {}
    for entry in reads:
        files = _entry_files(data, entry)
        if (data / entry / dataset.FILE_MANIFEST).is_file() and "*" not in entry:
            found[data / entry / dataset.FILE_MANIFEST] = dataset.identity(data / entry)
        elif files:
            found.update({f: None for f in files})
        else:
            found.update({data / rel: sha for rel, sha in recorded.items()
                          if under(rel, entry)})
    root = project_root()
    return [(str(f.relative_to(root)), sha or sha256_file(f)) for f, sha in sorted(found.items())]


def under(rel: str, entry: str) -> bool:
    """Whether the path ``rel`` is the ``reads`` entry ``entry``, lies under it or matches it."""
    return (fnmatch.fnmatchcase(rel, entry) if "*" in entry
            else rel == entry or rel.startswith(entry.rstrip("/") + "/"))


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
    return {str(p.relative_to(data)): sha256_file(p) for p in paths if p.is_file()}



def stale_reason(stage: Stage, stamp: dict, digest: str, data: Path,
                 missing_ok: bool = False) -> str | None:
    """Why a stage must run again, or None if it is up to date: its inputs (the hash) or its
    outputs (the recorded checksums) differ from its last success. An output in the stage's
    ``kept_out`` may be missing (pins leave it out); with ``missing_ok`` any output may (a
    replicate chain's training stages, once its result is current), but none may differ."""
    if not stamp:
        return "no record of a successful run"
    if stamp.get("hash") != digest:
        return "its notebook, parameters, library code or inputs changed"
    recorded = stamp.get("outputs")
    if not recorded:
        return "its stamp records no output checksums (written by an older version)"
    missing = [w for w in stage.writes if not (data / w).exists() and w not in stage.kept_out]
    if missing and not missing_ok:
        return f"{missing[0]} is missing"
    current = output_checksums(stage, data)
    for rel, sha in recorded.items():
        if rel not in current and (missing_ok or any(under(rel, k) for k in stage.kept_out)):
            continue
        if current.get(rel) != sha:
            what = "is missing" if rel not in current else "changed"
            return f"{rel} {what} since {stage.name} wrote it"
    return None


def stamp_path(data: Path, stage: Stage) -> Path:
    """Where the stamp of ``stage`` lives in the data folder ``data``."""
    return data / "stamps" / f"{stage.name}.json"


def read_stamp(path: Path) -> dict:
    """The stamp at ``path``; {} when there is none (no recorded success)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def recorded_wall(paths) -> float:
    """The wall seconds the stamps at ``paths`` record, summed (a stamp without one counts 0)."""
    return sum(read_stamp(p).get("wall_s") or 0.0 for p in paths)


def write_stamp(path: Path, stamp: dict) -> None:
    """Record ``stamp`` at ``path``, atomically."""
    atomic_write_text(path, json.dumps(stamp, indent=1))
