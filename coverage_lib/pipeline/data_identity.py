"""Identity by recipe, equality by tolerance: a data set regenerated on another CPU is the one
an earlier run recorded when their fingerprints agree within ``fingerprint.RTOL``.

A stage's stamp records each data set it read or wrote (``record``: the data set's identity,
and the fingerprint of the one it wrote; a replicate chain's cut is recorded in the chain's
``stamps/dataset.json``). When a data set is written again (the data stage on a fresh clone, a
replicate chain's cut), ``settle`` compares its fingerprint with the recorded one: bit-identical
(the same CPU), within tolerance (the last bits differ: it then stands for the recorded
identity, ``dataset.stand_for``, and every stage, checkpoint and result made on it stays
current) or different (another seed, row count or formula: the run says which column and by
how much, and every stage that reads it runs again). Stage hashes, checkpoints, results and
replicate data sets all name a data set by ``dataset.identity``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..datasets import dataset, fingerprint


def data_set_entries(entries, data: Path) -> list[str]:
    """The entries of ``entries`` (a stage's ``reads`` or ``writes``) that are data sets here
    (folders holding a data set's MANIFEST)."""
    return [e for e in entries if "*" not in e and (data / e / dataset.FILE_MANIFEST).is_file()]


def record(entries, data: Path, fingerprints: bool = True) -> dict:
    """{entry: {"identity", "fingerprint"}} of each data set among ``entries`` (the identity
    only without ``fingerprints``: a stage that reads a data set the data stage recorded)."""
    return {e: {"identity": dataset.identity(data / e),
                **({"fingerprint": dataset.load_fingerprint(data / e)} if fingerprints else {})}
            for e in data_set_entries(entries, data)}


def settle(folder: Path, recorded: dict | None, who: str, log=print) -> dict | None:
    """Compare the data set in ``folder`` with ``recorded`` ({"identity", "fingerprint"}, a
    stamp's record of it): the agreement (``fingerprint.agreement``'s, with "state"
    "bit-identical", "within-tolerance" or "different"), after making a data set that agrees
    within tolerance stand for the recorded identity. None when nothing was recorded."""
    if not recorded or not (folder / dataset.FILE_MANIFEST).is_file():
        return None
    if dataset.identity(folder) == recorded["identity"]:
        known = dataset.FILE_IDENTITY
        return (_read_agreement(folder / known) if (folder / known).is_file()
                else {"state": "bit-identical", "rtol": fingerprint.RTOL, "max_relative": 0.0,
                      "where": ""})
    here, there = dataset.load_fingerprint(folder), recorded.get("fingerprint")
    if here is None or there is None:
        log(f"{who}: the data set differs from the one recorded and one of them has no "
            f"fingerprint to compare: the stages that read it run again")
        return {"state": "different", "rtol": fingerprint.RTOL, "max_relative": None,
                "where": "no fingerprint"}
    found = fingerprint.agreement(there, here)
    if found["state"] == "different":
        log(f"{who}: the data set differs from the one recorded: {found['differences'][0]}; "
            f"the stages that read it run again")
        return found
    dataset.stand_for(folder, recorded["identity"], found)
    log(f"{who}: the data set agrees with the one recorded within a relative "
        f"{found['rtol']:g} (largest difference {found['max_relative']:.1e}, {found['where']}; "
        f"the last bits differ: another CPU or dispatch): it stands for it")
    return found


def _read_agreement(path: Path) -> dict:
    return json.loads(path.read_text())["agreement"]
