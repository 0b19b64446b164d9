"""``radford recipes``: every bundled and plugin-provided recipe, with its description."""

from __future__ import annotations

from collections.abc import Sequence

from radford import recipes
from radford.cli import ArgumentParser


def main(args: Sequence[str]) -> None:
    """List every bundled and plugin-provided recipe with its description."""
    ArgumentParser(prog="radford recipes", description=main.__doc__).parse_args(args)
    for recipe in recipes.list_recipes():
        print(f"{recipe.name:<24} {recipe.distribution:<14} {recipe.description}")
