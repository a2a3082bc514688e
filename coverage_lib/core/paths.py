"""Where things live. Relative paths in parameters are relative to the project root, so a
notebook finds its inputs whether papermill, nbval or a user's Jupyter started its kernel."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root: $COVERAGE_PROJECT_ROOT, else the folder holding ``coverage_lib``
    (an editable install), else the current directory."""
    env = os.environ.get("COVERAGE_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def resolve(path) -> Path:
    """``path`` if absolute, else relative to the project root."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p


def dataset_dir(data_dir) -> Path:
    return resolve(data_dir) / "dataset"


def models_dir(data_dir) -> Path:
    return resolve(data_dir) / "models"
