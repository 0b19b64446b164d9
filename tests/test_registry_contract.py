"""The plugin contract, checked for every registered model (radford's own and installed plugins'), as timm and
open_clip test every model of ``list_models()``: built from its smallest recipe through ``radford fit``, one
training step, a checkpoint saved, ``radford.load`` of it, and the same outputs as the trained model in memory.

The smallest recipe is the one naming the model whose model has the fewest parameters (counted on the meta device);
it is shrunk further through command-line overrides, as a user would: the model's size arguments where it takes
them, and each built-in data module pointed at a small local source. A recipe that needs pretrained weights gets a
tiny GPT-2 checkpoint written first. A model that trains nothing (``zeroshot`` scores a pretrained model: no
``training_step``) runs one ``radford test`` batch instead. A model no recipe names fails: a plugin ships one.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

import radford
from radford import recipes, registry
from radford.checkpoints import Weights, write_checkpoint
from radford.cli import main
from radford.eval.probe import undescribed_features
from radford.lightning_cli import recipe_configs
from radford.models.gpt import GPT
from radford.tokenizers import Char

MODELS = registry.names("models")
# Size arguments a model may take, and the value that makes it tiny.
SMALL_MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 32, "hidden_size": 32, "embedding_size": 16, "width": 8}
SMALL_DATA = {"batch_size": 2, "num_workers": 0}
# radford's data modules read these small local sources instead of a recipe's corpus, folder or download.
LOCAL_DATA = {
    "text": lambda corpus: [f"--data.init_args.sources=[{corpus}]"],
    "bytes": lambda corpus: [f"--data.init_args.sources=[{corpus}]"],
    "images": lambda corpus: ["--data.init_args.source", "digits"],
    "pairs": lambda corpus: ["--data.init_args.shapes_train", "8", "--data.init_args.shapes_val", "4"],
}
ONE_BATCH = [
    "--trainer.max_steps",
    "1",
    "--trainer.limit_val_batches",
    "0",
    "--trainer.limit_test_batches",
    "1",
    "--trainer.num_sanity_val_steps",
    "0",
    "--trainer.logger",
    "false",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.accelerator",
    "cpu",
    "--trainer.devices",
    "1",
    "--trainer.precision",
    "32-true",
]
TOLERANCE = 1e-6


class Keep(L.Callback):
    """Keeps what the run did, for the test to compare: the model at the end, the first batch, and the arguments of
    the model's first forward call; and saves the checkpoint ``radford.load`` reads, as ``radford fit`` saves one."""

    kept: dict[str, Any] = {}

    def __init__(self, path: str) -> None:
        self.path = path

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        Keep.kept.clear()

        def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            Keep.kept.setdefault("forward", detached((args, kwargs)))

        pl_module.register_forward_pre_hook(record, with_kwargs=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        Keep.kept["initial"] = detached(pl_module.state_dict())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        Keep.kept.setdefault("batch", detached(batch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        Keep.kept["steps"] = Keep.kept.get("steps", 0) + 1

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        Keep.kept.setdefault("batch", detached(batch))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish(trainer, pl_module)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.finish(trainer, pl_module)

    def finish(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path)
        Keep.kept["model"] = pl_module


def detached(value: Any) -> Any:
    """A copy of tensors in nested tuples, lists and dicts, so that training in place cannot change them."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(detached(v) for v in value)
    if isinstance(value, dict):
        return {k: detached(v) for k, v in value.items()}
    return value


# -- choosing and shrinking a recipe ----------------------------------------------------------------------------


def merged(base: Any, update: Any) -> Any:
    if isinstance(base, dict) and isinstance(update, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in update.items()}}
    return update


def composed(recipe: recipes.Recipe) -> dict[str, Any]:
    """The recipe's config over its bases', as the CLI composes them (later values win)."""
    config: dict[str, Any] = {}
    for layer in recipe_configs(recipe.path):
        config = merged(config, layer)
    return config


def section(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A class section (``model``, ``data``) as ``{"class_path": ..., "init_args": {...}}``, however it is written."""
    value = config.get(name)
    value = value if isinstance(value, dict) else {"class_path": value}
    return {"class_path": value.get("class_path"), "init_args": value.get("init_args") or {}}


def parameters(config: dict[str, Any], cls: type) -> float:
    """The parameters of the recipe's model, built on the meta device; infinite when the recipe alone cannot build it
    (pretrained weights to read, an argument the CLI links from the data module)."""
    try:
        with torch.device("meta"):
            model = cls(**section(config, "model")["init_args"])
    except (radford.RadfordError, TypeError):
        return float("inf")
    return sum(p.numel() for p in model.parameters())


def smallest_recipe(name: str) -> tuple[recipes.Recipe, dict[str, Any]]:
    """The recipe (a whole one: a model and a data module) naming the model with the fewest parameters."""
    plugin = registry.lookup("models", name)
    naming = [
        (recipe, config)
        for recipe in recipes.list_recipes()
        for config in [composed(recipe)]
        if "data" in config and section(config, "model")["class_path"] in (name, plugin.class_path)
    ]
    assert naming, f"no recipe names model {name!r} ({plugin.distribution}): a plugin ships one that trains anywhere"
    cls = plugin.load()
    return min(naming, key=lambda found: (parameters(found[1], cls), found[0].name))


def accepted(cls: type, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments that ``cls.__init__`` takes."""
    signature = inspect.signature(cls.__init__).parameters
    return {key: value for key, value in arguments.items() if key in signature}


def overrides(config: dict[str, Any], model_class: type, corpus: Path, pretrained: Path) -> list[str]:
    """Command-line arguments that make the recipe's run tiny and local."""
    model, data = section(config, "model"), section(config, "data")
    args = [f"--model.init_args.{k}={v}" for k, v in accepted(model_class, SMALL_MODEL).items()]
    if data["class_path"] in registry.names("data"):
        args += [
            f"--data.init_args.{k}={v}"
            for k, v in accepted(registry.lookup("data", data["class_path"]).load(), SMALL_DATA).items()
        ]
        args += LOCAL_DATA.get(data["class_path"], lambda _: [])(corpus)
    # Pretrained weights, and the tokenizer read from beside them: the tiny checkpoint.
    if model["init_args"].get("pretrained"):
        args.append(f"--model.init_args.pretrained={pretrained}")
    tokenizer = data["init_args"].get("tokenizer")
    if isinstance(tokenizer, dict) and (tokenizer.get("init_args") or {}).get("path"):
        args.append(f"--data.init_args.tokenizer.init_args.path={pretrained}")
    return args


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 50 KB of real text, the standard library's json package: enough for GPT-1's windows of 512 tokens in
    both splits."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    sources = sorted((Path(os.__file__).parent / "json").glob("*.py"))
    path.write_text("".join(source.read_text(encoding="utf-8") for source in sources), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory) -> Path:
    """A tiny GPT-2 checkpoint with a character tokenizer of the corpus; GPT-2's context of 1,024, so that any
    recipe's windows fit it."""
    tokenizer = Char()
    tokenizer.train([corpus.read_text(encoding="utf-8")])
    torch.manual_seed(0)
    model = GPT(vocab_size=tokenizer.vocab_size, block_size=1024, n_layer=1, n_head=2, n_embd=32)
    path = tmp_path_factory.mktemp("pretrained") / "gpt2.ckpt"
    write_checkpoint(Weights(GPT, dict(model.hparams), model.state_dict(), tokenizer), path)
    return path


# -- the contract -----------------------------------------------------------------------------------------------


def forward_inputs(model: L.LightningModule, kept: dict[str, Any]) -> tuple[tuple, dict]:
    """The arguments of the model's first forward call in the run; a model whose steps call other methods (CLIP's
    encoders, a fine-tuning objective) is called on the first batch, matched to forward's parameters."""
    if "forward" in kept:
        return kept["forward"]
    batch = kept["batch"]
    required = [p.name for p in inspect.signature(model.forward).parameters.values() if p.default is p.empty]
    if isinstance(batch, dict):
        return (), {name: batch[name] for name in required}
    return tuple(batch if isinstance(batch, (tuple, list)) else [batch])[: len(required)], {}


@pytest.mark.parametrize("name", MODELS)
def test_a_registered_model_trains_saves_and_loads_to_the_same_outputs(name, corpus, pretrained, tmp_path, monkeypatch):
    recipe, config = smallest_recipe(name)
    model_class = registry.lookup("models", name).load()
    # A model that trains nothing is scored instead: zeroshot has no training step.
    command = "fit" if model_class.training_step is not L.LightningModule.training_step else "test"
    checkpoint = tmp_path / "contract.ckpt"
    keep = f'--trainer.callbacks+={{"class_path": "{__name__}.Keep", "init_args": {{"path": "{checkpoint}"}}}}'
    monkeypatch.chdir(tmp_path)  # radford fit writes runs/ in the working directory
    main([command, "--recipe", recipe.name, *overrides(config, model_class, corpus, pretrained), *ONE_BATCH, keep])

    kept = Keep.kept
    trained = kept["model"].eval()
    assert type(trained) is model_class
    if command == "fit":
        assert kept.get("steps") == 1, f"{recipe.name} trained on {kept.get('steps', 0)} batches, not one"
        state = trained.state_dict()
        assert any(not torch.equal(state[key], value) for key, value in kept["initial"].items()), "nothing trained"
    loaded = radford.load(checkpoint)
    assert type(loaded) is model_class and not loaded.training
    args, kwargs = forward_inputs(trained, kept)
    with torch.no_grad():
        expected, actual = trained(*args, **kwargs), loaded(*args, **kwargs)
    torch.testing.assert_close(
        actual, expected, atol=TOLERANCE, rtol=0, msg=lambda m: f"{name} from {recipe.name}, reloaded: {m}"
    )


@pytest.mark.parametrize("name", MODELS)
def test_a_registered_model_with_features_names_them(name):
    """The features protocol: a model that declares ``feature_input`` says what its features are in
    ``feature_description`` (``radford probe`` prints it, records it and titles its figure with it), and a subclass
    that computes them differently says so itself rather than inheriting its parent's words."""
    cls = registry.lookup("models", name).load()
    assert undescribed_features(cls) is None, undescribed_features(cls)


class Texts(L.LightningModule):
    feature_input = "texts"

    def features(self, texts):
        return torch.zeros(len(texts), 1)


class Described(Texts):
    feature_description = "zeros"


class Recomputed(Described):
    def features(self, texts):
        return torch.ones(len(texts), 1)


class Redescribed(Recomputed):
    @property
    def feature_description(self) -> str:
        return "ones"


def test_the_features_check_refuses_what_it_should():
    assert undescribed_features(L.LightningModule) is None  # no features, nothing to name
    assert undescribed_features(Described) is None and undescribed_features(Redescribed) is None
    assert "no feature_description" in undescribed_features(Texts)
    assert "non-empty" in undescribed_features(type("Blank", (Texts,), {"feature_description": " "}))
    assert "inherits Described's feature_description" in undescribed_features(Recomputed)


def test_every_registered_model_is_checked():
    """radford's models and the installed plugins' (the iGPT plugin in CI) are all parametrized above."""
    builtin = {p.name for p in registry.plugins("models") if p.builtin}
    assert {"gpt2", "gpt1", "finetune", "zeroshot", "clip", "dcgan", "mlstm"} <= builtin <= set(MODELS)
    assert "igpt" in MODELS, "the iGPT plugin is not installed: pip install -e plugins/radford-igpt"
