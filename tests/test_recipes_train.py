"""Every recipe trains: each top-level recipe, bundled or from a plugin, runs 3 optimizer steps through ``radford fit``
(in this process) under the precision it names, and each precision fragment does on a small base; a precision this
CPU cannot run (16-mixed) is refused in one line, before anything is written. The paper recipes run with tiny sizes,
composed after them as a user composes a size fragment; their data are the datasets they name (from the mirror), small
stand-ins for what they leave to the user (``null``) and pretrained weights from an offline hub cache
(``user_machine``). A new recipe is tested by being added; a new model class needs its line in ``TINY``.

An evaluation-only recipe (a model without ``training_step``: ``gpt2-zeroshot``) runs its own command, ``test``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning import LightningModule

from radford import recipes
from radford.config_errors import import_class, parameters
from radford.data.shapes import Shapes, write_folder
from radford.data.shards import write_pair_shards
from radford.errors import RadfordError
from radford.lightning_cli import chosen_classes, expand_recipes, recipe_configs, run_lightning
from radford.throughput import check_precision
from tests.helpers import error_line
from tests.test_hub import hub_cache  # noqa: F401  (a fixture user_machine needs)
from tests.test_user_world import FRAGMENTS, user_machine  # noqa: F401  (user_machine is a fixture)

STEPS = 3
BASE = "gpt2-tiny"  # the small whole recipe a precision fragment is composed on
WHOLE = [(r.name,) for r in recipes.list_recipes() if not r.name.startswith(FRAGMENTS)]
PRECISIONS = [(BASE, r.name) for r in recipes.list_recipes() if r.name.startswith("precision/")]

# What makes each model tiny, by its class name: a recipe of its sizes, composed after the recipe as a user composes a
# size fragment (sizes are data). ``losses``: what the model logs, each finite after the steps (default train_loss).
GPT_TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32}
TINY: dict[str, dict[str, Any]] = {
    "GPT": {"model": GPT_TINY},
    "GPT1": {"model": GPT_TINY},
    "IGPT": {"model": {"n_layer": 1, "n_head": 2, "n_embd": 32}},  # block_size: the image's pixels, linked
    # Pretrained weights (the hub's, tiny in user_machine's cache) replace the sizes; without them, these.
    "GPTFineTune": {"model": GPT_TINY, "data": {"max_length": 32}},
    "ZeroShot": {"data": {"block_size": 32}, "losses": ["test_loss"]},
    "CLIP": {"recipes": ["size/clip-vit-tiny"]},  # radford's CPU size, of the recipe's vision tower's kind
    # Two optimizers, each stepped every batch, and Lightning counts both: 3 steps of each.
    "DCGAN": {"model": {"width": 8}, "trainer": {"max_steps": 2 * STEPS}, "losses": ["d_loss", "g_loss"]},
    "MLSTM": {"model": {"embedding_size": 8, "hidden_size": 32}, "data": {"block_size": 16}, "losses": ["train_bpb"]},
}
# Where one class comes in several architectures, the recipe's own entry.
TINY_BY_RECIPE = {"clip-rn50": {"recipes": ["size/clip-rn-tiny"]}}
# Every data module's arguments of these names, where it takes them: small batches, loaded in this process (workers
# would start processes), small embedded sets and shuffle buffers.
DATA = {"batch_size": 4, "num_workers": 0, "shuffle_buffer": 8, "shapes_train": 64, "shapes_val": 16}
TRAINER = {
    "max_steps": STEPS,
    "limit_val_batches": 0,  # no validation: the steps are the point
    "limit_test_batches": 2,
    "accumulate_grad_batches": 1,  # gpt2's 40 micro-batches a step make its 0.5M-token batch: a size (10 s here)
    "accelerator": "cpu",  # on a GPU machine too: what CI runs
    "devices": 1,
    "enable_progress_bar": False,
}
# What a recipe leaves null for the user to give (its data class's argument) -> the stand-in from ``user_data``.
USER_DATA = {"ImageData": {"source": "images"}, "PairData": {"train": "shards"}}
# An embedded corpus too big for a test (the standard library's 12 MB of source) -> user_machine's small text.
EMBEDDED = {"stdlib": "corpus"}

MISSING = object()


def recipe_args(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--recipe", name)]


def said(names: tuple[str, ...], *keys: str) -> Any:
    """What the recipes (their bases first) give at ``keys``, the last one said; ``MISSING`` where none does."""
    value = MISSING
    for config in (config for name in names for config in recipe_configs(recipes.find(name))):
        for key in keys:
            config = config.get(key, MISSING) if isinstance(config, dict) else MISSING
        value = value if config is MISSING else config
    return value


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> dict[str, str]:
    """Image-caption pairs as a user brings them: a folder of images (DCGAN's) and WebDataset shards (CLIP's)."""
    folder = tmp_path_factory.mktemp("user-data")
    captions = write_folder(folder / "images", Shapes("train", 16, image_size=32))
    write_pair_shards(captions, str(folder / "train-%03d.tar"), maxcount=8)
    return {"images": str(folder / "images"), "shards": str(folder / "train-{000..001}.tar")}


def tiny_of(names: tuple[str, ...], classes: dict[str, str]) -> dict[str, Any]:
    model = classes["model"].rpartition(".")[2]
    if names[0] not in TINY_BY_RECIPE and model not in TINY:
        pytest.fail(f"recipe {names[0]}: its model {model} has no tiny sizes; give them in TINY ({__name__})")
    return TINY_BY_RECIPE.get(names[0]) or TINY[model]


def tiny_recipe(names: tuple[str, ...], classes: dict[str, str], stand_ins: dict[str, str], path: Path) -> list[str]:
    """The ``--recipe`` arguments that make a run of ``names`` tiny and offline: the model's size fragments, then a
    recipe at ``path`` of the sizes, the data module's small settings and stand-ins, and the trainer's 3 steps."""
    tiny, data = tiny_of(names, classes), classes["data"].rpartition(".")[2]
    data_args = set(parameters(classes["data"]))
    data_values = {key: value for key, value in DATA.items() if key in data_args}
    for key, stand_in in USER_DATA.get(data, {}).items():
        if said(names, "data", "init_args", key) is None:
            data_values[key] = stand_ins[stand_in]
    sources = said(names, "data", "init_args", "sources")
    if isinstance(sources, list) and set(sources) & set(EMBEDDED):
        data_values["sources"] = [stand_ins.get(EMBEDDED.get(source), source) for source in sources]
    config = {
        "model": {"init_args": tiny.get("model", {})},
        "data": {"init_args": {**data_values, **tiny.get("data", {})}},
        "trainer": {**TRAINER, **tiny.get("trainer", {})},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return recipe_args(*tiny.get("recipes", []), str(path))


@pytest.mark.parametrize("names", WHOLE + PRECISIONS, ids=lambda names: "+".join(names))
def test_every_recipe_trains_under_its_precision(names, user_machine, user_data, capsys):  # noqa: F811
    args = recipe_args(*names)
    classes = chosen_classes(expand_recipes(args)[0])
    stand_ins = {**user_data, "corpus": str(user_machine.parent / "corpus.txt")}
    args += tiny_recipe(names, classes, stand_ins, user_machine.parent / "tiny.yaml")
    model_class = import_class(classes["model"])
    trains = model_class.training_step is not LightningModule.training_step
    command = "fit" if trains else "test"
    precision = said(names, "trainer", "precision")
    precision = "32-true" if precision is MISSING else str(precision)
    try:
        check_precision(precision, torch.device("cpu"))
    except RadfordError as refusal:  # float16 on a CPU: one line, before anything is built or written
        line = error_line(capsys, command, *args)
        assert line == f"radford: error: {refusal}" and precision in line
        assert not list(user_machine.iterdir())
        return

    trainer = run_lightning([command, *args]).trainer
    assert trainer.precision == precision  # not swapped for another (Lightning's float16 -> bfloat16 on a CPU)
    if trains:
        assert trainer.global_step == trainer.max_steps == STEPS * len(trainer.optimizers)
    for name in tiny_of(names, classes).get("losses", ["train_loss"]):
        assert math.isfinite(float(trainer.callback_metrics[name])), (name, trainer.callback_metrics)
