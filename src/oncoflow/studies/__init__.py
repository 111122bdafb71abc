"""The study recipes: one module per study, each defining ``RECIPE`` (:class:`~.recipe.Recipe`).

Every module of this package except :mod:`.recipe` is a built-in recipe, found by its file: a
seventh study is one new file here (or anywhere, named by path in ``studies.<name>.recipe``) plus
its config block. :func:`recipe_for` resolves the recipe of a configured study; the DAG helpers
and the training entry point ask it instead of switching on names (``docs/design.md``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oncoflow.errors import ConfigError
from oncoflow.studies.recipe import Recipe

__all__ = ["Recipe", "builtin_recipes", "load_recipe", "model_names", "recipe_for"]


@functools.cache
def builtin_recipes() -> dict[str, Recipe]:
    """The recipes of this package by name (every module but :mod:`.recipe`).

    Raises:
        ConfigError: A module without ``RECIPE``, or whose recipe is named after another module.
    """
    recipes = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "recipe" or info.name.startswith("_"):
            continue
        recipe = getattr(importlib.import_module(f"{__name__}.{info.name}"), "RECIPE", None)
        if not isinstance(recipe, Recipe) or recipe.name != info.name:
            msg = f"{__name__}.{info.name}: defines no RECIPE = Recipe(name={info.name!r}, ...)"
            raise ConfigError(msg)
        recipes[recipe.name] = recipe
    return dict(sorted(recipes.items()))


@functools.cache
def load_recipe(spec: str) -> Recipe:
    """A built-in recipe by name, or the ``RECIPE`` of a ``.py`` file given by path.

    Raises:
        ConfigError: Neither a built-in name nor a file defining ``RECIPE``.
    """
    recipes = builtin_recipes()
    if spec in recipes:
        return recipes[spec]
    path = Path(spec)
    if path.suffix != ".py" or not path.is_file():
        msg = f"recipe {spec!r}: not a built-in recipe ({', '.join(recipes)}) nor a .py file"
        raise ConfigError(msg)
    module_spec = importlib.util.spec_from_file_location(f"oncoflow_recipe_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        msg = f"recipe {spec}: cannot be imported"
        raise ConfigError(msg)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses look their module up there
    module_spec.loader.exec_module(module)
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, Recipe):
        msg = f"recipe {spec}: the file defines no RECIPE = Recipe(...)"
        raise ConfigError(msg)
    return recipe


def recipe_for(name: str, study: Mapping[str, Any]) -> Recipe:
    """The recipe of the configured study ``name`` (resolution order in :mod:`.recipe`).

    Args:
        name: The study's key in ``config["studies"]``.
        study: Its config block.

    Raises:
        ConfigError: No recipe fits, or the study's ``model`` is not one of its recipe's models.
    """
    recipes = builtin_recipes()
    model = study.get("model")
    if study.get("recipe"):
        recipe = load_recipe(str(study["recipe"]))
    elif name in recipes:
        recipe = recipes[name]
    else:
        matches = [r for r in recipes.values() if model in r.models]
        if len(matches) != 1:
            msg = (
                f"study {name}: set studies.{name}.recipe (a built-in recipe: "
                f"{', '.join(recipes)}, or a recipe file)"
            )
            raise ConfigError(msg)
        recipe = matches[0]
    if model is not None and model not in recipe.models:
        msg = (
            f"study {name}: model {model!r} is not a model of recipe {recipe.name} "
            f"({', '.join(recipe.models)})"
        )
        raise ConfigError(msg)
    return recipe


def model_names(family: str | None = None) -> list[str]:
    """Model names of the built-in recipes (of one family), in recipe order, without repeats."""
    names = [
        model
        for recipe in builtin_recipes().values()
        if family is None or recipe.family == family
        for model in recipe.models
    ]
    return list(dict.fromkeys(names))
