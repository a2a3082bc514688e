"""Every notebook's ``parameters`` cell holds the quick profile: "Run All" by hand gives what
``python -m coverage_lib run --profile quick`` gives, with outputs under data/quick."""
import ast
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "notebooks" / "train.ipynb"  # the shared training notebook: no stage of its own
# The replicate evaluation: the last stage of each replicate chain, not of a profile; the
# pipeline derives its parameters (``replicate_chains.chains``).
REPLICATE = REPO / "notebooks" / "replicate.ipynb"
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("*.ipynb")
                   if p not in (SHARED, REPLICATE))
QUICK = yaml.safe_load((REPO / "params" / "quick.yaml").read_text())
# The one deliberate difference: by hand the interactive notebook shows its widgets; the
# pipeline (and the book, which is static) runs it with interactive=false.
BY_HAND = {("06_interactive", "interactive"): True}


def defaults(path: Path) -> dict:
    """{name: value} of the notebook's parameters cell: literal assignments only."""
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} must have exactly one cell tagged 'parameters'"
    values = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.targets[0], ast.Name), \
            f"{path.name}: the parameters cell may hold only 'name = literal' lines"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_every_notebook_is_a_stage_of_the_quick_profile():
    """Every notebook but the shared one is a stage of its own; the stages that train in the
    shared notebook are the registry's."""
    from coverage_lib.models import registry
    shared = {b.stage for b in registry.BACKBONES.values()
              if b.notebook == registry.SHARED_NOTEBOOK}
    assert [p.stem for p in NOTEBOOKS] == [s for s in QUICK if s not in shared]
    assert shared <= set(QUICK)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_defaults_equal_the_quick_profile(path):
    stage = path.stem
    expected = {"profile": "quick", "data_dir": "data/quick", **QUICK[stage]}
    expected.update({name: value for (s, name), value in BY_HAND.items() if s == stage})
    found = defaults(path)
    assert sorted(found) == sorted(expected), f"{path.name}: parameter names differ"
    differ = {k: (found[k], expected[k]) for k in expected
              if found[k] != expected[k] or type(found[k]) is not type(expected[k])}
    assert not differ, f"{path.name}: defaults (notebook, expected) differ from " \
                       f"params/quick.yaml: {differ}"


def test_the_by_hand_exception_is_still_an_exception():
    for (stage, name), value in BY_HAND.items():
        assert QUICK[stage][name] != value, f"{stage}.{name} no longer needs an exception"


def test_the_shared_training_notebook_defaults_to_the_quick_profiles_mlp():
    from coverage_lib.models import registry
    from coverage_lib.training import train_config

    mlp = QUICK[registry.get("mlp").stage]
    config_fields = {"width", "depth", "dropout"}
    expected = {"profile": "quick", "data_dir": "data/quick", "model": "mlp",
                "config": {k: v for k, v in mlp.items() if k in config_fields},
                **{k: v for k, v in mlp.items() if k in train_config.TRAINER_RULES}}
    assert defaults(SHARED) == expected


def test_the_replicate_notebook_declares_the_replicate_rules_and_the_quick_evaluation():
    from coverage_lib.core import validation
    from coverage_lib.evaluation import runner

    found = defaults(REPLICATE)
    assert sorted(found) == sorted({**validation.COMMON, **runner.REPLICATE_PARAMETERS})
    validation.validate("replicate", runner.REPLICATE_PARAMETERS, found)
    for name in ("lightgbm_max_rounds", "lightgbm_early_stopping", "lightgbm_min_improvement",
                 "selector_tolerance"):
        assert found[name] == QUICK["04_evaluate"][name], name
