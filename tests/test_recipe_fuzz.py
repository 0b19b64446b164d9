"""Bad recipes, tried systematically: every bundled recipe mutated at random ends in one clear line, never a traceback.

Hypothesis takes each bundled recipe in turn and breaks it: a value of the wrong type, an unknown key, a key
removed, a section emptied, or the whole file replaced by random YAML or bytes. The CLI parses the result
(``--print_config``: parsing and type checks without training) and must either accept it or exit 2 with one
``radford: error:`` line.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radford import recipes
from radford.cli import main

RECIPES = [recipe.path for recipe in recipes.list_recipes() if recipe.distribution == "radford"]
BUNDLED = Path(__file__).resolve().parent.parent / "recipes"  # the source of radford's recipe folder
EXAMPLES_PER_RECIPE = 3  # a fixed budget: CI time grows with it and with the recipes, not with luck

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested mapping, parents before children."""
    if not isinstance(tree, dict):
        return []
    found = []
    for key, value in tree.items():
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


def parent_of(tree: dict, path: tuple) -> dict:
    for key in path[:-1]:
        tree = tree[key]
    return tree


@st.composite
def broken_recipes(draw, source: Path) -> str:
    """The text of a recipe after one random mutation, or random text in its place."""
    kind = draw(st.sampled_from(["wrong value", "unknown key", "missing key", "random yaml", "random text"]))
    if kind == "random yaml":
        return yaml.safe_dump(draw(values))
    if kind == "random text":
        return draw(st.text(max_size=200))
    recipe = yaml.safe_load(source.read_text())
    path = draw(st.sampled_from(paths(recipe)))
    parent = parent_of(recipe, path)
    if kind == "wrong value":
        parent[path[-1]] = draw(values)
    elif kind == "unknown key":
        target = parent[path[-1]] if isinstance(parent[path[-1]], dict) else parent
        target[draw(st.text(min_size=1, max_size=10))] = draw(scalars)
    else:
        del parent[path[-1]]
    return yaml.safe_dump(recipe)


def run_cli(*args: str) -> tuple[int, str]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, stderr.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("source", RECIPES, ids=[p.relative_to(BUNDLED).with_suffix("").as_posix() for p in RECIPES])
@settings(
    max_examples=EXAMPLES_PER_RECIPE,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_broken_recipe_is_accepted_or_refused_in_one_line(tmp_path, source, data):
    path = tmp_path / "broken.yaml"
    path.write_text(data.draw(broken_recipes(source)), encoding="utf-8")
    code, stderr = run_cli("fit", "--recipe", str(path), "--print_config")
    assert "Traceback" not in stderr, stderr
    if code != 0:
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("radford: error: "), (code, stderr[-2000:])


def test_the_fuzz_covers_every_bundled_recipe():
    """The fuzz takes its recipes from the recipe lookup; every YAML file of the source folder must be among them."""
    on_disk = sorted(BUNDLED.rglob("*.yaml"))
    assert len(on_disk) >= 10 and sorted(path.resolve() for path in RECIPES) == on_disk
