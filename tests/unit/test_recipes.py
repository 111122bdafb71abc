"""The study recipes: one per built-in study, resolved from the config, their code importable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from oncoflow.deep.mmdls_heads import VARIANTS
from oncoflow.deep.workflow import MODELS, model_parts
from oncoflow.errors import ConfigError, ModelError
from oncoflow.models import liver
from oncoflow.models.registry import list_models
from oncoflow.studies import builtin_recipes, load_recipe, model_names, recipe_for
from oncoflow.studies.recipe import INHERITED, Recipe

REPO = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def test_every_study_of_the_config_is_a_builtin_recipe_with_its_model():
    recipes = builtin_recipes()
    assert set(recipes) == set(CONFIG["studies"])
    for name, study in CONFIG["studies"].items():
        recipe = recipe_for(name, study)
        assert recipe is recipes[name]
        assert study["model"] in recipe.models


def test_deep_recipes_name_importable_code_and_settings_that_take_what_they_inherit():
    for recipe in builtin_recipes().values():
        if recipe.family != "deep":
            continue
        assert callable(recipe.load("trainer"))
        fields = {f.name for f in dataclasses.fields(recipe.load("settings"))}
        assert set(recipe.inherits) <= fields
        if recipe.model_key:
            assert recipe.model_key in fields


def test_model_lists_derive_from_the_recipes_and_the_liver_ladder_is_registered():
    assert tuple(model_names("deep")) == MODELS
    assert set(MODELS) == {"cnn_lstm", *VARIANTS, *liver.RUNGS}  # mm_dls + its input ablation
    ladder = builtin_recipes()["liver_response"]
    assert set(ladder.models) == set(liver.RUNGS) <= set(list_models())
    assert "mm_dls" in list_models()
    assert builtin_recipes()["nsclc_mmdls"].ladder == VARIANTS  # one network, three input sets


def test_a_study_of_another_name_resolves_by_model_or_recipe():
    assert recipe_for("my_lungs", {"model": "mm_dls"}).name == "nsclc_mmdls"
    assert recipe_for("my_liver", {"recipe": "liver_response"}).name == "liver_response"
    with pytest.raises(ConfigError, match=r"study my_study: set studies\.my_study\.recipe"):
        recipe_for("my_study", {"model": "unknown_net"})
    with pytest.raises(ConfigError, match="model 'cnn_lstm' is not a model of recipe nsclc_mmdls"):
        recipe_for("nsclc_mmdls", {"model": "cnn_lstm"})
    with pytest.raises(ConfigError, match="not a built-in recipe"):
        load_recipe("no_such_recipe")
    without_crops = {k: v for k, v in CONFIG["studies"]["liver_response"].items() if k != "lesions"}
    recipe = recipe_for("my_liver", {**without_crops, "recipe": "liver_response"})
    with pytest.raises(ConfigError, match=r"study my_liver: recipe liver_response trains on"):
        recipe.check_study("my_liver", without_crops)
    recipe.check_study("liver_response", CONFIG["studies"]["liver_response"])


def test_the_ladder_and_the_settings_come_from_the_recipe():
    liver_recipe = builtin_recipes()["liver_response"]
    study = CONFIG["studies"]["liver_response"]
    assert liver_recipe.variants(study)[-1] == study["model"]
    assert liver_recipe.variants({"model": "relation_net", "train": {"ablation": []}}) == [
        "relation_net"
    ]
    settings = liver_recipe.training_settings(study, [365.0], ("ablation", "inner_fraction"))
    assert settings["stems"] == study["lesions"]["images"]
    assert settings["target"] == study["targets"][0]
    assert "ablation" not in settings
    assert "horizons" not in settings
    mmdls = builtin_recipes()["nsclc_mmdls"]
    settings = mmdls.training_settings(CONFIG["studies"]["nsclc_mmdls"], [365.0], ())
    assert settings["horizons"] == [365.0]
    assert "target" not in settings
    parsed, _, stems, strata = model_parts(liver_recipe, "resnet_single", {"epochs": 1})
    assert parsed.rung == "resnet_single"
    assert strata == parsed.target
    assert stems == parsed.stems
    with pytest.raises(ModelError, match="trains no deep model 'mm_dls'"):
        model_parts(liver_recipe, "mm_dls", {})


def test_a_recipe_file_is_loaded_and_validated(tmp_path):
    toy = load_recipe(str(REPO / "tests/recipes/toy_study.py"))
    assert toy.family == "deep"
    assert toy.models == ("toy_logistic",)
    assert callable(toy.load("trainer"))
    bad = tmp_path / "bad.py"
    bad.write_text("X = 1\n")
    with pytest.raises(ConfigError, match="defines no RECIPE"):
        load_recipe(str(bad))
    with pytest.raises(ConfigError, match="family 'vision'"):
        Recipe(name="x", summary="", family="vision", models=("m",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="names its trainer and settings"):
        Recipe(name="x", summary="", family="deep", models=("m",))
    with pytest.raises(ConfigError, match="cannot inherit"):
        Recipe(name="x", summary="", family="survival", models=("m",), inherits=("age",))
    assert "stems" in INHERITED
