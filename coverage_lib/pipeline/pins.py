"""Pinned results: a finished run's small outputs, committed under ``pins/<profile>/`` so that a
fresh clone does not train again.

``pin`` copies every stage that has a stamp (the main run's and each replicate chain's): the
stamp and the files it records, except the data set, which the data stage regenerates bit for
bit from its seed in about a minute, LightGBM's model files and the ONNX exports (large, read
by no later stage: ``Stage.kept_out``) and a learning-curve chain's checkpoints (its result and training
histories are kept; ``replicate_keeps``). It writes ``pins/<profile>/MANIFEST.txt`` last (sha256,
bytes and path of every pinned file, and which commit, machine and time pinned them) and refuses
more than ``LIMIT_BYTES`` in all. At the start of every run, ``restore`` checks each pinned file
against the MANIFEST (a file changed or added by hand is refused by name: pins are written by
the pipeline only) and copies the ones missing under ``data/<profile>/`` into place; the stamps
then decide as always. On a fresh clone the data stage runs (its data set is missing), writes
the same files, and every later stage finds its stamp current and is skipped; a stage whose
code or inputs changed since it was pinned reruns.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import time
from pathlib import Path

from ..core import machine
from ..core.io import atomic_write_text, sha256_file
from ..core.paths import project_root, resolve
from .definitions import chain_stages, data_dir_of, stages
from .provenance import git_state
from .stamps import read_stamp, stamp_path, under

PINS_DIR = "pins"
MANIFEST = "MANIFEST.txt"
VERIFIED = "VERIFIED.json"  # written by ``verify`` once a rerun reproduced these pins
VERIFIED_FORMAT = 2         # {"format": 2, "verifications": [...]}; format 1 was one dict
DATA_AGREEMENT = "data_agreement"  # the data stage's stamp: how its data set meets the pinned
LIMIT_BYTES = 25 * 1024 * 1024
NOT_PINNED = ("dataset/",)  # regenerated bit for bit by the data stage (or a chain's cut)
FULL_SIZE = "-rowsall"      # the name of a chain on every training row (``Replicate.name``)


def pins_dir(profile: str) -> Path:
    return project_root() / PINS_DIR / profile


def pinnable(data: Path) -> list[str]:
    """The paths under ``data`` a pin holds: every stamp (the main run's and the replicate
    chains') and the files each records, but the data set's, each stage's ``kept_out`` and,
    in a learning-curve chain's folder, what its training stages wrote other than the training
    histories (``replicate_keeps``)."""
    by_name = {s.name: s for s in (*stages(), *chain_stages())}
    found = set()
    for stamp in sorted(data.glob("stamps/*.json")) + sorted(data.glob("runs/*/stamps/*.json")):
        folder = stamp.parent.parent
        prefix = "" if folder == data else f"{folder.relative_to(data)}/"
        stage = by_name.get(stamp.stem)
        kept_out = stage.kept_out if stage is not None else ()
        found.add(str(stamp.relative_to(data)))
        for rel in read_stamp(stamp).get("outputs", {}):
            if (rel.startswith(NOT_PINNED) or any(under(rel, k) for k in kept_out)
                    or (prefix and not replicate_keeps(folder.name, stamp.stem, rel))):
                continue
            if (folder / rel).is_file():
                found.add(prefix + rel)
    return sorted(found)


def replicate_keeps(chain: str, stage_name: str, rel: str) -> bool:
    """Whether a pin keeps the file ``rel`` that the stage ``stage_name`` of the replicate
    chain ``chain`` wrote.

    A full-size chain (another seed on every training row: its three backbones' training is
    the longest of a chain's, their files a few MB) keeps everything, checkpoints and
    executed training notebooks included: an evaluation-only change then reruns its
    evaluation without training it again. A learning-curve chain (minutes of training each)
    keeps its evaluation's outputs and each training history (the seeds page reads these),
    not its checkpoints or executed training notebooks (``replicate_chains.result_current``
    judges the chain without them)."""
    if chain.endswith(FULL_SIZE):
        return True
    return stage_name == chain_stages()[-1].name or rel.endswith("_training_history.json")


def pin(profile: str, log=print) -> Path:
    """Copy ``profile``'s finished stages into ``pins/<profile>/`` (replacing what was pinned)
    with their MANIFEST; ValueError when nothing has run or the pins would pass the limit."""
    data = resolve(data_dir_of(profile))
    files = pinnable(data)
    if not any(f.startswith("stamps/") for f in files):
        raise ValueError(f"profile {profile!r} has no finished stage to pin: run `python -m "
                         f"coverage_lib run --profile {profile}` first")
    sizes = {f: (data / f).stat().st_size for f in files}
    if sum(sizes.values()) > LIMIT_BYTES:
        largest = sorted(sizes, key=sizes.get, reverse=True)[:5]
        raise ValueError(f"the pins of {profile!r} would take {sum(sizes.values()) / 2**20:.1f} "
                         f"MiB, over the {LIMIT_BYTES / 2**20:.0f} MiB limit; the largest: "
                         + ", ".join(f"{f} ({sizes[f] / 2**20:.1f} MiB)" for f in largest))
    target = pins_dir(profile)
    fresh = target.with_name(f".{profile}.pinning")
    shutil.rmtree(fresh, ignore_errors=True)
    lines = []
    for rel in files:
        (fresh / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / rel, fresh / rel)
        lines.append(f"{sha256_file(fresh / rel)}  {sizes[rel]}  {rel}")
    git, m = git_state(), machine.machine()
    header = (f"# pinned by `python -m coverage_lib pin --profile {profile}` at commit "
              f"{git.get('commit') or 'unknown'} on {socket.gethostname()} ({m['cpu']}, "
              f"{m['cpu_count']} logical CPUs), "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; sha256  bytes  path")
    atomic_write_text(fresh / MANIFEST, "\n".join([header, *lines]) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)
    log(f"pinned {len(files)} files, {sum(sizes.values()) / 2**20:.1f} MiB, under "
        f"{target.relative_to(project_root())}/ (listed in {MANIFEST})")
    return target


def pinned_by(profile: str) -> dict | None:
    """{"commit", "machine", "when"} of the MANIFEST's header; None when nothing is pinned."""
    path = pins_dir(profile) / MANIFEST
    if not path.is_file():
        return None
    found = re.search(r"at commit (\S+) on (.+), (\d{4}-\d\d-\d\dT[\d:]+Z);",
                      path.read_text().splitlines()[0])
    return dict(zip(("commit", "machine", "when"), found.groups())) if found else None


def _format_1(found: dict) -> dict:
    """A verification of ``VERIFIED.json``'s first format (one dict: a full run on the machine
    that pinned, every compared claim to the printed digits) as the entries of format 2."""
    return {"manifest_sha256": found["manifest_sha256"], "when": found["when"],
            "host": found["host"], "machine": {"cpu": found["cpu"],
                                               "cpu_count": found["cpu_count"]},
            "commit": found.get("commit"), "wall_s": found["wall_s"], "until": None,
            "claims": found["claims"], "reproduced": found["reproduced"],
            "printed_digits": found["reproduced"], "within_interval": 0, "mismatches": 0,
            "timings": found["claims"] - found["reproduced"]}


def verifications(profile: str) -> list[dict]:
    """The verifications in ``VERIFIED.json`` (written by ``verify``, oldest first) of the pins
    as they are now (its MANIFEST's sha256): each with "manifest_sha256", "when", "host",
    "machine" ({"cpu", "flags", "cpu_count", "dispatch", "gemm_peak_gflops"}; only "cpu" and
    "cpu_count" from the first format), "commit", "wall_s", "until" (None: a full run) and the
    counts "claims", "reproduced", "printed_digits", "within_interval", "mismatches" and
    "timings"; [] when none. A file of neither format → ValueError naming it."""
    path, manifest = pins_dir(profile) / VERIFIED, pins_dir(profile) / MANIFEST
    if not path.is_file() or not manifest.is_file():
        return []
    found = json.loads(path.read_text())
    if found.get("format") == VERIFIED_FORMAT:
        entries = found["verifications"]
    elif "format" not in found and "manifest_sha256" in found:
        entries = [_format_1(found)]
    else:
        raise ValueError(f"{PINS_DIR}/{profile}/{VERIFIED} is of format "
                         f"{found.get('format')!r}: this code reads format {VERIFIED_FORMAT} "
                         f"and the first (one dict, no format); restore it (git checkout)")
    sha = sha256_file(manifest)
    return [e for e in entries if e["manifest_sha256"] == sha]


def verified(profile: str) -> dict | None:
    """The latest full verification (``verifications``, ``until`` None) of the pins as they
    are now; None when there is none."""
    full = [e for e in verifications(profile) if e["until"] is None]
    return full[-1] if full else None


def _widest(flags: list) -> str | None:
    """The widest vector instructions of ``machine.cpu_flags``: AMX, AVX-512 or AVX2."""
    for prefix, name in (("amx", "AMX"), ("avx512", "AVX-512"), ("avx2", "AVX2")):
        if any(f.startswith(prefix) for f in flags):
            return name
    return None


def verification_words(entry: dict) -> str:
    """One verification (``verifications``) in words: where, when, how long, which part and
    how many claims agreed by which rule."""
    m = entry["machine"]
    about = ", ".join(filter(None, [m["cpu"], f"{m['cpu_count']} logical CPUs",
                                    _widest(m.get("flags") or [])]))
    runs = ", ".join(filter(None, [m.get("dispatch") and f"{m['dispatch']} CPU dispatch",
                                   m.get("gemm_peak_gflops") and
                                   f"fp32 GEMM peak {m['gemm_peak_gflops']:.0f} GFLOP/s"]))
    part = "" if entry["until"] is None else \
        f", the main run only (`--until {entry['until']}`)"
    return (f"on {entry['host']} ({about}{'; ' + runs if runs else ''}), {entry['when']}, in "
            f"{entry['wall_s'] / 60:.0f} min{part}: {entry['printed_digits']} of "
            f"{entry['claims']} claims agreed to the printed digit, {entry['within_interval']} "
            f"within their interval, the rest are timings (shown, not compared)")


def data_sentence(profile: str) -> str:
    """Which data the numbers stand on: the data stage's record (its stamp's
    ``DATA_AGREEMENT``: {"state", "rtol", "max_relative", "where", ...}) of how the data set
    regenerated here meets the pinned one; "" without a record (a data set generated here
    first). A data set that differs from the pinned one ("different": the stages reading it ran
    again here) is said to. An unknown state → ValueError naming it."""
    data = resolve(data_dir_of(profile))
    found = read_stamp(stamp_path(data, stages()[0])).get(DATA_AGREEMENT)
    if found is None or found["state"] == "new":
        return ""
    if found["state"] == "different":
        return (f"Data set regenerated here: it differs from the pinned one ({found['where']}, "
                f"beyond the tolerance {found['rtol']:g}), so every stage that reads it ran "
                f"again here: the numbers below are this machine's, not the pinned ones.")
    if found["state"] == "bit-identical":
        return "Data set regenerated here: bit-identical to the pinned one."
    if found["state"] == "within-tolerance":
        return (f"Data set regenerated here: agrees with the pinned one within a relative "
                f"{found['rtol']:g} (largest difference {found['max_relative']:.2g} in "
                f"{found['where']}; the last bits differ: another CPU).")
    raise ValueError(f"{data_dir_of(profile)}/stamps/{stages()[0].name}.json: "
                     f"{DATA_AGREEMENT}.state must be one of ['bit-identical', "
                     f"'within-tolerance', 'new', 'different']; got {found['state']!r}")


def headline(profile: str) -> str:
    """The first page's sentences on the pins: at which commit, on which machine and when they
    were pinned; each verification of them (``verification_words``), or that there is none
    yet; and which data the numbers stand on (``data_sentence``). "" when the profile has no
    pins."""
    by = pinned_by(profile)
    if by is None:
        return ""
    text = (f"Its results are pinned in `{PINS_DIR}/{profile}/` (listed with their sha256 in "
            f"`{MANIFEST}`): pinned at commit `{by['commit'][:12]}` on {by['machine']}, "
            f"{by['when']}")
    done = [verification_words(e) for e in verifications(profile)]
    if not done:
        text += "; not yet reproduced by `python -m coverage_lib verify`.\n"
    elif len(done) == 1:
        text += f"; reproduced from nothing by `python -m coverage_lib verify` {done[0]}.\n"
    else:
        text += (f"; reproduced from nothing by `python -m coverage_lib verify` {len(done)} "
                 f"times:\n\n" + "".join(f"- {words}.\n" for words in done))
    data = data_sentence(profile)
    return text + (f"\n{data}\n" if data else "")


def read_manifest(profile: str) -> dict:
    """{path: (sha256, bytes)} of ``pins/<profile>/MANIFEST.txt``; {} when nothing is pinned."""
    path = pins_dir(profile) / MANIFEST
    if not path.is_file():
        return {}
    listed = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            sha, size, rel = line.split(maxsplit=2)
            listed[rel] = (sha, int(size))
    return listed


def check(profile: str) -> dict:
    """The MANIFEST, once every pinned file is the one it lists and nothing else is pinned;
    ValueError naming the first file that was changed, removed or added by hand."""
    listed, folder = read_manifest(profile), pins_dir(profile)
    for rel, (sha, _) in listed.items():
        path = folder / rel
        if not path.is_file():
            raise ValueError(f"pinned file {PINS_DIR}/{profile}/{rel} is missing: restore it "
                             f"(git checkout) or pin again with `python -m coverage_lib pin "
                             f"--profile {profile}`")
        if sha256_file(path) != sha:
            raise ValueError(f"pinned file {PINS_DIR}/{profile}/{rel} was changed by hand (its "
                             f"sha256 is not the one in {MANIFEST}): pinned results are written "
                             f"by the pipeline only; restore it (git checkout) or pin again")
    extra = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_file() and p.name not in (MANIFEST, VERIFIED)) if listed else []
    unlisted = [rel for rel in extra if rel not in listed]
    if unlisted:
        raise ValueError(f"{PINS_DIR}/{profile}/{unlisted[0]} is not in {MANIFEST}: pinned "
                         f"results are written by `python -m coverage_lib pin` only")
    return listed


def restore(profile: str, log=print) -> int:
    """Check the pins of ``profile`` (``check``) and copy each one missing under
    ``data/<profile>/`` into place; files already there are left as they are (a run here is
    newer than the pins). Returns how many were copied."""
    listed = check(profile)
    data, copied = resolve(data_dir_of(profile)), 0
    for rel in listed:
        if not (data / rel).exists():
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pins_dir(profile) / rel, data / rel)
            copied += 1
    if copied:
        log(f"restored {copied} pinned files of {len(listed)} from "
            f"{PINS_DIR}/{profile}/ ({MANIFEST} checked)")
    return copied
