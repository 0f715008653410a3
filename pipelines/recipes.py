"""Loading recipes: the shape (``schemas.recipe``) plus every stage's spec validated by its kind
(``pipelines.stages``), so a typo anywhere fails before any work, naming the file and key."""

from __future__ import annotations

from pathlib import Path

from pipelines.stages import bind
from schemas.recipe import Recipe, read_recipe


def load_recipe(source: str | Path | dict | Recipe) -> Recipe:
    """A validated, bound recipe from a YAML file path, a dict or an unbound Recipe; AugsvcError otherwise."""
    if isinstance(source, Recipe):
        return bind(source.model_copy(deep=True))
    recipe, where = read_recipe(source)
    return bind(recipe, where)
