"""Third-party plugins installed with pip: listed, usable by short name, isolated when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def parse_listing(stdout: str) -> dict[str, dict[str, str]]:
    """``radford plugins`` output as {kind: {name: line}}."""
    listing: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        if not line.startswith(" "):
            kind = line.rstrip(":")
            listing[kind] = {}
        elif line.strip():
            listing[kind][line.split()[0]] = line
    return listing


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """One site folder with a working plugin (model, data, recipes) and a broken one, installed by pip."""
    site = tmp_path_factory.mktemp("site")
    install_plugin(
        tmp_path_factory.mktemp("toy"), site, "radford-toy", "radford_toy",
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
        tmp_path_factory.mktemp("broken"), site, "radford-broken", "radford_broken",
        files={"__init__.py": "import a_module_that_does_not_exist\n"},
        entry_points={"radford.models": {"broken": "radford_broken:Model", "same": "radford_broken:Model"}},
    )
    return site


def test_plugins_lists_working_and_broken(plugin_path):
    result = radford_cli("plugins", pythonpath=plugin_path)
    assert result.returncode == 0, result.stderr
    listing = parse_listing(result.stdout)
    lines = listing["models"]
    assert "radford-toy" in lines["toy"] and lines["toy"].rstrip().endswith("ok")
    assert "radford-toy" in listing["data"]["toydata"]
    assert "BROKEN" in lines["broken"] and "radford-broken" in lines["broken"]
    assert "a_module_that_does_not_exist" in lines["broken"]
    # A third party claiming a built-in's name loses: gpt2 stays radford's.
    assert "radford " in lines["gpt2"] and "radford.models.gpt:GPT" in lines["gpt2"]
    assert "CLASH" in lines["same"] and "radford-toy" in lines["same"] and "radford-broken" in lines["same"]


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
        "fit", "--recipe", "gpt2-tiny", "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0",
        f"--data.init_args.sources=[{small_corpus}]", pythonpath=plugin_path, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "gpt2-tiny" / "version_0" / "checkpoints" / "last.ckpt").exists()

