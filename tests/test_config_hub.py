"""Every bundled recipe is parsed by LightningCLI, so recipes never rot (as litgpt's config hub test)."""

from __future__ import annotations

import pytest
import yaml

from radford import recipes
from radford.cli import main

ALL = recipes.list_recipes()
# Fragments (strategy/, precision/, size/) only make sense on top of a whole recipe.
BASE_FOR = {"size": "gpt2", "strategy": "gpt2-tiny", "precision": "gpt2-tiny"}


def parsed(*recipe_names: str, capsys) -> dict:
    args = ["fit"]
    for name in recipe_names:
        args += ["--recipe", name]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def test_bundled_recipes_are_found():
    names = {r.name for r in ALL}
    assert {"gpt2", "gpt2-tiny", "shakespeare-char", "strategy/ddp", "strategy/fsdp",
            "precision/bf16-mixed", "precision/16-mixed", "size/gpt2-medium"} <= names
    assert all(r.description for r in ALL), [r.name for r in ALL if not r.description]


@pytest.mark.parametrize("recipe", ALL, ids=lambda r: r.name)
def test_recipe_parses(recipe, capsys):
    folder = recipe.name.split("/")[0]
    names = (BASE_FOR[folder], recipe.name) if folder in BASE_FOR else (recipe.name,)
    config = parsed(*names, capsys=capsys)
    assert "." in config["model"]["class_path"] and "." in config["data"]["class_path"]
    # The fragment's own values win over the base recipe's.
    for section, values in recipes.load(recipe.path).items():
        if section in ("trainer", "model") and isinstance(values, dict):
            expected = values.get("init_args", values)
            actual = config[section].get("init_args", config[section])
            for key, value in expected.items():
                if not isinstance(value, dict):
                    assert actual[key] == value, (section, key)


def test_later_recipe_wins(capsys):
    config = parsed("gpt2", "size/gpt2-xl", capsys=capsys)
    assert (config["model"]["init_args"]["n_layer"], config["model"]["init_args"]["n_embd"]) == (48, 1600)
    assert config["model"]["init_args"]["block_size"] == 1024  # kept from the base recipe


def test_recipe_by_path_and_with_suffix(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: {class_path: gpt2, init_args: {n_layer: 1}}\ndata: {class_path: text}\n")
    assert parsed(str(path), capsys=capsys)["model"]["init_args"]["n_layer"] == 1
    assert parsed("gpt2-tiny.yaml", capsys=capsys)["model"]["init_args"]["n_layer"] == 4
