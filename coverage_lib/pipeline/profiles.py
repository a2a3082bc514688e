"""The pipeline's profiles: ``params/<profile>.yaml``, one section of parameters per stage.

Each stage's parameters are checked by the rules its owner declares (``pipeline.definitions.stages``
gathers them; ``core.validation`` applies them), before anything runs.
"""
from __future__ import annotations

import yaml

from ..core.paths import project_root

PARAMS_DIR = "params"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (project_root() / PARAMS_DIR).glob("*.yaml"))


def load_profile(profile: str) -> dict:
    """{stage name: {parameter: value}} of ``params/<profile>.yaml``."""
    allowed = available_profiles()
    if profile not in allowed:
        raise ValueError(f"profile must be one of {allowed}; got {profile!r}")
    data = yaml.safe_load((project_root() / PARAMS_DIR / f"{profile}.yaml").read_text())
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"params/{profile}.yaml must map each stage name to its parameters")
    return data
