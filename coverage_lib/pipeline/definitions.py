"""The pipeline's stages and their parameters: which notebooks run, in which order, what each
reads and writes under ``data/<profile>/``, and the rules of its parameters (its owner's:
the data set's, the trainer's, the evaluation's, the figures'). ``stage_params`` gathers and
validates every stage's parameters of a profile before any work.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import profiles
from ..core import validation
from ..datasets import dataset, replicates
from ..evaluation import seeds_stage, runner
from ..models import registry
from ..report import figures, link_widgets
from ..core.paths import resolve
from ..training import train_config


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline: what it reads and writes, and its parameters' rules."""
    name: str
    notebook: str
    reads: tuple = ()   # files or folders under data/<profile>/: this stage's inputs
    writes: tuple = ()  # files or folders under data/<profile>/ this stage writes
    # written, but large and read by no later stage: pins leave them out, and their absence
    # (a fresh clone restored from pins) does not make the stage stale
    kept_out: tuple = ()
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
                rules=train_config.stage_rules(b)) for b in backbones),
        Stage("04_evaluate", "notebooks/04_evaluate.ipynb", rules=runner.PARAMETERS,
              reads=("dataset", *checkpoints),
              writes=("models/lightgbm", "results/metrics.json",
                      "results/selector_thresholds.json", "models/onnx"),
              # not pinned: LightGBM's model files (tens of MB) and the ONNX exports (5 MB);
              # no later stage reads them, and serving.export_onnx writes an export again
              # from its pinned checkpoint in seconds
              kept_out=("models/lightgbm", "models/onnx")),
        Stage("04b_seeds", "notebooks/04b_seeds.ipynb",
              reads=("results/metrics.json", f"{replicates.RUNS_DIR}/*/{REPLICATE_RESULT}"),
              writes=("results/seeds.json",), rules=seeds_stage.PARAMETERS),
        Stage("05_plots", "notebooks/05_plots.ipynb",  # not the resume states: not pinned
              reads=("dataset", *checkpoints, *(f"models/{b.history}" for b in backbones),
                     "results/metrics.json", "results/selector_thresholds.json",
                     "results/seeds.json"),
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
    training = {b.stage for b in backbones}
    return [*(s for s in stages() if s.name in training),
            Stage("replicate", "notebooks/replicate.ipynb",
                  reads=("dataset", *(f"models/{b.checkpoint}" for b in backbones)),
                  writes=(REPLICATE_RESULT,), rules=runner.REPLICATE_PARAMETERS)]


def data_dir_of(profile: str) -> str:
    """A profile's data folder, relative to the project root."""
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


MAIN_CHAIN = "main run"  # the main run's training and evaluation, as a chain of its own

