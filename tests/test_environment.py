"""environment.yml, requirements.txt, pyproject.toml and the Makefile describe one environment."""
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def pins() -> dict:
    out = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line), f"not an exact pin: {line}"
            name, version = line.split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_environment_yml_installs_the_same_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert f"python={sys.version_info.major}.{sys.version_info.minor}" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    makefile = (REPO / "Makefile").read_text()
    torch_pin = re.search(r"pip install --quiet (torch==\S+)", makefile).group(1)
    assert pip_section == [torch_pin, "-r requirements.txt", "-e ."]


def test_pins_satisfy_pyproject_and_are_installed():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = pins()
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in ("test", "book") for r in
             project["optional-dependencies"][extra]]
    for req in reqs:
        name = req.name.lower().replace("_", "-")
        if name == "torch":
            continue  # installed first, from its own pin (the Makefile's torch==2.13.0)
        assert name in pinned, f"{req.name} is a dependency but not pinned in requirements.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), (req, pinned[name])
        assert metadata.version(req.name) == pinned[name], f"{req.name} installed != pinned"
