"""Default recipes per architecture: used for options not given, shown by --help, `train models`."""

from __future__ import annotations

import json

import pytest

from tests.test_train_cli import run_cli
from train import rundir
from train.cli import main
from train.models import list_models, model_entry
from train.models.recipe import PAPER_RECIPE, TINY_CPU_RECIPE


def test_every_architecture_has_a_recipe_and_a_parameter_count():
    for name in list_models():
        entry = model_entry(name)
        assert entry.recipe.epochs >= 1 and entry.parameters, name
    assert model_entry("tiny").recipe == TINY_CPU_RECIPE
    assert model_entry("resnet152").recipe == PAPER_RECIPE


def test_models_listing_shows_names_parameters_and_recipes(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    for name in list_models():
        assert any(line.startswith(name + " ") for line in out.splitlines()), out
        assert f"  {name}: --epochs {model_entry(name).recipe.epochs} " in out
    assert "--oversample 2.0 --defect-focus 0.5 --focal-alpha none --focal-gamma 1.0" in out
    assert "58.4 M" in out or "58.3 M" in out  # ResNet-152 no-top + head


def test_fit_help_lists_choices_and_recipes(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert ", ".join(list_models()) in " ".join(out.split())
    assert "default recipes" in out and "  tiny: --epochs 12 --steps-per-epoch 80" in out


def test_plain_defaults_run_records_its_recipe(trained_run):
    stored = json.loads((trained_run / rundir.CONFIG_FILE).read_text())
    assert stored["arch"] == "tiny"
    recipe = TINY_CPU_RECIPE.to_dict()
    assert sorted(stored["recipe_options"]) == sorted(recipe)
    assert {k: stored[k] for k in recipe} == recipe
