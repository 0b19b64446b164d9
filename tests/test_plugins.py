"""Third-party plugins installed with pip: listed without importing, usable by short name, isolated when broken,
switched on and off by RADFORD_PLUGINS."""

from __future__ import annotations

from pathlib import Path

import pytest

from radford import registry
from radford.errors import RadfordError
from radford.registry import SWITCH
from tests.helpers import install_plugin, radford_cli

PLUGIN_MODULE = '''
import torch
import lightning as L
from torch.utils.data import DataLoader, TensorDataset


class Toy(L.LightningModule):
    """A linear regressor: the smallest model a recipe can train."""

    def __init__(self, width: int = 4, learning_rate: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)


class ToyData(L.LightningDataModule):
    def __init__(self, width: int = 4, size: int = 64):
        super().__init__()
        self.width, self.size = width, size

    def train_dataloader(self):
        x = torch.randn(self.size, self.width)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
'''

TOY_RECIPE = """\
# A toy regression from the toy plugin.
model: {class_path: toy, init_args: {width: 4}}
data: {class_path: toydata, init_args: {width: 4}}
trainer: {max_steps: 3, logger: false, enable_checkpointing: false, enable_progress_bar: false}
"""


def parse_listing(stdout: str) -> dict[str, dict[tuple[str, str], str]]:
    """``radford plugins`` output as {kind: {(name, distribution): state}}; the state is "" when not checked."""
    listing: dict[str, dict[tuple[str, str], str]] = {}
    for line in stdout.splitlines():
        if not line.startswith(" "):
            kind = line.rstrip(":")
            listing[kind] = {}
        elif line.strip():
            name, distribution, _target, *state = line.split(maxsplit=3)
            listing[kind][name, distribution] = state[0] if state else ""
    return listing


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """One site folder with a working plugin (model, data, recipes) and a broken one, installed by pip."""
    site = tmp_path_factory.mktemp("site")
    install_plugin(
        tmp_path_factory.mktemp("toy"),
        site,
        "radford-toy",
        "radford_toy",
        files={"__init__.py": PLUGIN_MODULE, "recipes/__init__.py": "", "recipes/toy-fit.yaml": TOY_RECIPE},
        entry_points={
            "radford.models": {"toy": "radford_toy:Toy", "gpt2": "radford_toy:Toy", "same": "radford_toy:Toy"},
            "radford.data": {"toydata": "radford_toy:ToyData"},
            "radford.recipes": {"toy": "radford_toy.recipes"},
        },
        packages=["radford_toy", "radford_toy.recipes"],
        package_data={"radford_toy.recipes": ["*.yaml"]},
    )
    install_plugin(
        tmp_path_factory.mktemp("broken"),
        site,
        "radford-broken",
        "radford_broken",
        files={"__init__.py": "import a_module_that_does_not_exist\n"},
        entry_points={"radford.models": {"broken": "radford_broken:Model", "same": "radford_broken:Model"}},
    )
    return site


def test_listing_reads_metadata_without_importing(plugin_path):
    result = radford_cli("plugins", pythonpath=plugin_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    # -X importtime's report: one "import time: self | cumulative | module" line per module imported.
    report = [line for line in result.stderr.splitlines() if line.startswith("import time")]
    imported = {line.rpartition("|")[2].strip() for line in report}
    assert "radford.registry" in imported  # the report works
    assert not {"radford_toy", "torch", "lightning"} & imported  # not the plugins, nor what they import
    models = parse_listing(result.stdout)["models"]
    # The plugin whose module fails at import lists like any other: only --check imports it.
    assert models["broken", "radford-broken"] == "" and models["toy", "radford-toy"] == ""
    assert models["gpt2", "radford"] == ""


def test_check_imports_each_plugin_and_shows_the_broken_one(plugin_path):
    result = radford_cli("plugins", "--check", pythonpath=plugin_path)
    assert result.returncode == 0, result.stderr
    listing = parse_listing(result.stdout)
    models = listing["models"]
    assert models["toy", "radford-toy"] == "ok" and listing["data"]["toydata", "radford-toy"] == "ok"
    assert models["broken", "radford-broken"].startswith("BROKEN")
    assert "a_module_that_does_not_exist" in models["broken", "radford-broken"]
    # A third party claiming a built-in's name loses: gpt2 stays radford's.
    assert models["gpt2", "radford"] == "ok" and models["gpt2", "radford-toy"].startswith("shadowed by radford's")
    assert models["same", "radford-toy"].startswith("CLASH with radford-broken")
    assert models["same", "radford-broken"].startswith("CLASH with radford-toy")


def test_switch_loads_only_the_distributions_it_names(plugin_path):
    result = radford_cli("plugins", "--check", pythonpath=plugin_path, env={SWITCH: "Radford_Toy"})
    assert result.returncode == 0, result.stderr
    models = parse_listing(result.stdout)["models"]
    assert models["broken", "radford-broken"] == models["same", "radford-broken"] == "disabled by RADFORD_PLUGINS"
    # With radford-broken off, radford-toy's claim on `same` no longer clashes; built-ins always load.
    assert models["same", "radford-toy"] == "ok" and models["gpt2", "radford"] == "ok"
    assert not [row for row, state in models.items() if row[1] != "radford" and state.startswith("BROKEN")]


def test_empty_switch_loads_built_ins_only(plugin_path):
    listing = parse_listing(radford_cli("plugins", pythonpath=plugin_path, env={SWITCH: ""}).stdout)
    states = {(name, distribution): state for rows in listing.values() for (name, distribution), state in rows.items()}
    assert {state for (_, distribution), state in states.items() if distribution != "radford"} == {
        "disabled by RADFORD_PLUGINS"
    }
    assert {state for (_, distribution), state in states.items() if distribution == "radford"} == {""}
    recipes = radford_cli("recipes", pythonpath=plugin_path, env={SWITCH: ""})
    assert "gpt2-tiny" in recipes.stdout and "toy-fit" not in recipes.stdout


def test_disabled_plugin_asked_for_names_the_switch(plugin_path, tmp_path):
    (tmp_path / "toy.yaml").write_text(TOY_RECIPE)
    by_path = radford_cli("fit", "--recipe", "toy.yaml", pythonpath=plugin_path, cwd=tmp_path, env={SWITCH: ""})
    assert by_path.returncode == 2
    assert by_path.stderr.strip().splitlines() == [
        "radford: error: model 'toy' comes from radford-toy, which RADFORD_PLUGINS='' does not enable; "
        "add it to RADFORD_PLUGINS or unset RADFORD_PLUGINS"
    ]
    by_name = radford_cli("fit", "--recipe", "toy-fit", pythonpath=plugin_path, cwd=tmp_path, env={SWITCH: ""})
    assert by_name.returncode == 2
    assert "(RADFORD_PLUGINS disables the recipes of " in by_name.stderr and "radford-toy)" in by_name.stderr


def test_switch_naming_no_installed_plugin_is_one_line(plugin_path):
    result = radford_cli("plugins", pythonpath=plugin_path, env={SWITCH: "radford-toy, radford-tyo"})
    assert result.returncode == 2 and result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("radford: error: RADFORD_PLUGINS=") and "names 'radford-tyo'," in line and "\n" not in line
    valid = line.partition("installed plugin distributions: ")[2]
    assert "radford-broken" in valid and "radford-toy" in valid


def test_switch_is_read_on_every_lookup(monkeypatch):
    monkeypatch.setenv(SWITCH, "")
    for kind in registry.GROUPS:
        assert all(plugin.builtin for plugin in registry.plugins(kind))
    assert registry.lookup("models", "gpt2").class_path == "radford.models.gpt.GPT"
    monkeypatch.setenv(SWITCH, "no-such-plugin")
    with pytest.raises(RadfordError, match="'no-such-plugin', which registers no radford plugin"):
        registry.names("models")


@pytest.mark.slow
def test_plugin_model_and_recipe_train_by_short_name(plugin_path, tmp_path):
    recipes = radford_cli("recipes", pythonpath=plugin_path)
    assert "toy-fit" in recipes.stdout and "A toy regression from the toy plugin." in recipes.stdout
    result = radford_cli("fit", "--recipe", "toy-fit", pythonpath=plugin_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_broken_plugin_fails_only_when_asked_for(plugin_path, tmp_path):
    result = radford_cli("fit", "--recipe", "toy-fit", "--model", "broken", pythonpath=plugin_path, cwd=tmp_path)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()
    assert len(message) == 1, result.stderr
    assert "'broken'" in message[0] and "radford-broken" in message[0] and "Traceback" not in result.stderr


def test_clash_between_third_parties_names_both(plugin_path, tmp_path):
    result = radford_cli("fit", "--recipe", "toy-fit", "--model", "same", pythonpath=plugin_path, cwd=tmp_path)
    assert result.returncode == 2
    assert "radford-toy" in result.stderr and "radford-broken" in result.stderr
    assert "full class path" in result.stderr


@pytest.mark.slow
def test_broken_plugin_leaves_gpt2_tiny_training(plugin_path, tmp_path, small_corpus):
    result = radford_cli(
        "fit",
        "--recipe",
        "gpt2-tiny",
        "--trainer.max_steps",
        "3",
        "--trainer.limit_val_batches",
        "0",
        f"--data.init_args.sources=[{small_corpus}]",
        pythonpath=plugin_path,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "gpt2-tiny" / "version_0" / "checkpoints" / "last.ckpt").exists()
