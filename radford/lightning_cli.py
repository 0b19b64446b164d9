"""``radford fit|validate|test|predict``: LightningCLI driven by recipes.

``radford fit --recipe gpt2-tiny --trainer.max_steps 20`` reads the recipe, replaces registered short
names (``class_path: gpt2``) with import paths, and hands the result to LightningCLI as a config; several
``--recipe`` flags compose and later values win, and a recipe composes others the same way by naming them
(``base: [clip-vit-b-32, size/clip-rn50]``). A value the model and the data module share is said once and
linked (``shared_links``). Mistakes a user can make end as one line on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from radford import recipes, registry
from radford.config_errors import import_class, one_line, parameters
from radford.errors import RadfordError

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningCLI

RUNS_DIR = "runs"
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself
# Which registry a ``class_path`` is looked up in, by the key that holds it.
SECTION_KINDS = {"model": "models", "data": "data", "tokenizer": "tokenizers"}
BASE = "base"  # the key of a recipe that names the recipes it builds on
# Arguments that a model and its data module both take, said once, on the model: its architecture or task
# decides the shapes the data module makes, so the parsed value is copied to the data module's argument.
MODEL_TO_DATA = ("block_size", "image_size", "channels", "context_length", "task")
# What only the built data module knows, read from its property into the model's argument of this name when
# the classes are built: its tokenizer's vocabulary, its images' pixels (the sequence a pixel model reads).
DATA_TO_MODEL = {"vocab_size": "vocab_size", "sequence_length": "block_size"}


class Link(NamedTuple):
    """``target`` takes its value from ``source`` when the config is parsed, or when the classes are built."""

    source: str
    target: str
    apply_on: str  # "parse" or "instantiate", as jsonargparse's link_arguments


def _class_kind(key: str) -> str | None:
    """The registry kind when a key names a class: ``model``, ``data.class_path``, ``...tokenizer``."""
    parts = [p for p in key.removeprefix("--").split(".") if p != "init_args"]
    if parts and parts[-1] == "class_path":
        parts.pop()
    if parts in (["model"], ["data"]) or (parts and parts[-1] == "tokenizer"):
        return SECTION_KINDS[parts[-1]]
    return None


def _resolve(key: str, value: Any) -> Any:
    """A registered short name under a class key becomes its import path; anything else is kept."""
    kind = _class_kind(key)
    if kind and isinstance(value, str) and value and "." not in value:
        return registry.class_path(kind, value)
    return value


def resolve_short_names(config: Any, key: str = "") -> Any:
    """Rewrite short names (``class_path: gpt2``, ``tokenizer: char``) in a config to import paths."""
    if isinstance(config, dict):
        return {k: resolve_short_names(v, f"{key}.{k}" if key else k) for k, v in config.items()}
    if isinstance(config, list):
        return [resolve_short_names(item, key) for item in config]
    return _resolve(key, config)


def _base_path(recipe: Path, name: str) -> Path:
    """A base recipe: a YAML file beside the recipe that names it, or a recipe name."""
    beside = recipe.parent / name
    return beside if beside.suffix == recipes.SUFFIX and beside.is_file() else recipes.find(name)


def recipe_configs(path: Path, chain: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """A recipe's config after those of its bases (``base: NAME`` or a list of names, in order), so that its own
    values win over theirs as a later ``--recipe`` does."""
    if path.resolve() in chain:
        names = " -> ".join(p.stem for p in (*chain, path))
        raise RadfordError(f"recipe {str(path)!r} is a base of itself: {names}")
    config = recipes.load(path)
    bases = config.pop(BASE, [])
    names = [bases] if isinstance(bases, str) else bases
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        raise RadfordError(f"recipe {str(path)!r}: {BASE} must be a recipe name or a list of names, got {bases!r}")
    chain = (*chain, path.resolve())
    return [*(c for name in names for c in recipe_configs(_base_path(path, name), chain)), config]


def expand_recipes(args: Sequence[str]) -> tuple[list[str], str | None]:
    """Replace ``--recipe X`` and ``--config X`` by resolved configs; return them and the first recipe's name."""
    expanded: list[str] = []
    run_name = None
    items = iter(args)
    for arg in items:
        flag, eq, value = arg.partition("=")
        if flag in ("--recipe", "--config", "-c"):
            if not eq:
                value = next(items, "")
            if not value:
                raise RadfordError(f"{flag} needs a value: a recipe name or a YAML file")
            path = recipes.find(value) if flag == "--recipe" else Path(value)
            if flag != "--recipe" and not path.is_file():
                raise RadfordError(f"config file {value!r} not found")
            run_name = run_name or path.stem
            for config in recipe_configs(path):
                expanded += ["--config", json.dumps(resolve_short_names(config))]
        elif flag.startswith("--") and _class_kind(flag):
            expanded += [flag, _resolve(flag, value if eq else next(items, ""))]
        else:
            expanded.append(arg)
    return expanded, run_name


# -- values said once: links between the model and the data module ------------------------------------------


def _flatten(config: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in config.items() if isinstance(config, dict) else ():
        yield f"{prefix}{key}", value
        yield from _flatten(value, f"{prefix}{key}.")


def _settings(args: Sequence[str]) -> Iterator[tuple[str, Any]]:
    """(key, value) for what expanded arguments set, in order: the configs' keys (``model.init_args.n_layer``), and
    the command line's flags, with a value only where they choose a model or data class."""
    items = iter(args)
    for arg in items:
        flag, eq, value = arg.partition("=")
        if flag == "--config":
            yield from _flatten(json.loads(value if eq else next(items, "{}")), "")
        elif flag.startswith("--"):
            key = flag.removeprefix("--")
            chooses = key.removesuffix(".class_path") in ("model", "data")
            yield key, (value if eq else next(items, "")) if chooses else None


def chosen_classes(args: Sequence[str]) -> dict[str, str | None]:
    """The import paths of the model and data classes that expanded arguments choose; the last choice wins."""
    chosen: dict[str, str | None] = {"model": None, "data": None}
    for key, value in _settings(args):
        section = key.removesuffix(".class_path")
        if section in chosen and isinstance(value, str):
            chosen[section] = value
    return chosen


def shared_links(model: str | None, data: str | None) -> list[Link]:
    """The links between these model and data classes. Each shared value flows one way (the model's architecture to
    the data; the data's vocabulary and pixels to the model, which builds after it), and only where both classes
    take it: a class without it keeps its own argument, set in the recipe as any other."""
    model_args, data_args = set(parameters(model)), set(parameters(data))
    links = [Link(f"model.init_args.{name}", f"data.init_args.{name}", "parse")
             for name in MODEL_TO_DATA if name in model_args & data_args]
    parsed = {link.source for link in links}
    data_class = import_class(data)
    links += [Link(f"data.{prop}", f"model.init_args.{arg}", "instantiate") for prop, arg in DATA_TO_MODEL.items()
              if arg in model_args and hasattr(data_class, prop) and f"model.init_args.{arg}" not in parsed]
    return links


def _plain_key(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "init_args")


def check_said_once(args: Sequence[str], links: Sequence[Link]) -> None:
    """Refuse a linked value given on the side the link sets: it would be overwritten without a word."""
    given = {_plain_key(key) for key, _ in _settings(args)}
    for link in links:
        if _plain_key(link.target) not in given:
            continue
        if link.apply_on == "parse":
            raise RadfordError(f"{link.target} is linked to {link.source}, which sets it: give the value there, once")
        raise RadfordError(f"{link.target} is linked to the data module's {link.source.partition('.')[2]}, which "
                           "sets it: leave it out")


def _required(source: str) -> Callable[[Any], Any]:
    """A parse link's value, refused in one line when the source leaves it unset."""

    def linked_value(value: Any) -> Any:
        if value is None:
            raise RadfordError(f"{source} is not set, and the data module takes its value from there: set it "
                               "(for a named size, compose its fragment: radford recipes lists them)")
        return value

    return linked_value


def _checkpoint_model(hparams: dict[str, Any]) -> dict[str, Any]:
    """The model a LightningCLI checkpoint records (``_class_path`` and its arguments) as a config, the arguments
    the class takes as ``init_args`` so that links read them; empty for a checkpoint without a class."""
    hparams = {key: value for key, value in hparams.items() if key != "_instantiator"}
    class_path = hparams.pop("_class_path", None)
    if not isinstance(class_path, str):
        return {}
    accepted = set(parameters(class_path))
    return {"class_path": class_path, "init_args": {k: v for k, v in hparams.items() if k in accepted},
            "dict_kwargs": {k: v for k, v in hparams.items() if k not in accepted}}


# -- the run ---------------------------------------------------------------------------------------------------


def _next_version(root: Path) -> int:
    versions = [int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()]
    return max(versions, default=-1) + 1


def trainer_defaults(run_name: str) -> dict[str, Any]:
    """Where a run writes: ``runs/<recipe>/version_N`` with a CSV log, TensorBoard events and checkpoints."""
    root = Path(RUNS_DIR) / run_name
    # One version for both loggers, so a run's files share a folder. DDP starts the other ranks by
    # running this command again: they take rank zero's version rather than counting folders anew.
    if os.environ.get("LOCAL_RANK", "0") != "0" and "RADFORD_RUN_VERSION" in os.environ:
        version = int(os.environ["RADFORD_RUN_VERSION"])
    else:
        version = _next_version(root)
        os.environ["RADFORD_RUN_VERSION"] = str(version)
    logger_args = {"save_dir": str(root), "name": "", "version": version}
    return {
        "default_root_dir": str(root),
        "logger": [
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": logger_args},
            {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": logger_args},
        ],
    }


def _lightning_cli_class() -> type:
    from lightning.fabric.plugins import CheckpointIO
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    import radford.callbacks  # noqa: F401  (imported, its callbacks take short names: --trainer.callbacks+=WritePredictions)
    from radford.checkpoints import RecordForLoad
    from radford.faults import (
        AtomicCheckpointIO,
        StopOnNonFiniteLoss,
        StopOnSignal,
        check_resumable,
        model_arguments_replaced,
        read_resumable,
    )

    class RadfordCLI(LightningCLI):
        """LightningCLI with the links of ``shared_links``, radford's guards on every trainer, and a checkpoint to
        resume from read once."""

        def __init__(self, *args: Any, links: Sequence[Link] = (), **kwargs: Any) -> None:
            self.links = links
            self.resumed: tuple[str, dict[str, Any]] | None = None  # (ckpt_path, its contents)
            super().__init__(*args, **kwargs)

        def add_arguments_to_parser(self, parser) -> None:
            for link in self.links:
                compute = _required(link.source) if link.apply_on == "parse" else None
                parser.link_arguments(link.source, link.target, compute_fn=compute, apply_on=link.apply_on)

        def parse_arguments(self, parser, args) -> None:
            """Parse; resuming from a checkpoint file, read it, say which of the recipe's model arguments it replaces,
            and take the checkpoint's. Lightning would read the file again for those: until the classes are built,
            it is not shown the path (FSDP's sharded checkpoints, folders, are left to it)."""
            super().parse_arguments(parser, args)
            subcommand = self.config.get("subcommand")
            ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
            if not ckpt_path or ckpt_path in SPECIAL_CKPT_PATHS or Path(ckpt_path).is_dir():
                return
            checkpoint = read_resumable(ckpt_path)
            linked = [link.target.rpartition(".")[2] for link in self.links if link.target.startswith("model.")]
            note = model_arguments_replaced(checkpoint, self.config[subcommand].get("model"), linked=linked)
            if note:
                print(f"radford: resuming from {ckpt_path}: {note}", file=sys.stderr)
            model = _checkpoint_model(checkpoint.get("hyper_parameters") or {})
            if model:
                self.config = parser.parse_object({subcommand: {"model": model}}, self.config)
            self.config[subcommand].ckpt_path = None
            self.resumed = (ckpt_path, checkpoint)

        def before_instantiate_classes(self) -> None:
            if self.resumed is not None:
                self.config[self.config.subcommand].ckpt_path = self.resumed[0]

        def instantiate_trainer(self, **kwargs):
            """Keep ``last.ckpt`` for resuming and log the learning rate, unless the recipe turned those off;
            always record in checkpoints what ``radford.load`` needs, write them atomically, and stop cleanly on
            a signal or a diverging loss (``radford.faults``)."""
            config = self._get(self.config_init, "trainer", default={})
            callbacks = [*(config.get("callbacks") or []), RecordForLoad(), StopOnSignal(), StopOnNonFiniteLoss()]
            if config.get("enable_checkpointing") is not False and not any(
                isinstance(c, ModelCheckpoint) for c in callbacks
            ):
                callbacks.append(ModelCheckpoint(save_last=True))
            if config.get("logger") is not False:
                callbacks.append(LearningRateMonitor(logging_interval="step"))
            plugins = config.get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, list) else [plugins]
            if not any(isinstance(p, CheckpointIO) for p in plugins):
                plugins.append(AtomicCheckpointIO())
            try:
                return super().instantiate_trainer(callbacks=callbacks, plugins=plugins, **kwargs)
            except ValueError as error:  # the Trainer refuses settings this machine cannot run (FSDP without a GPU)
                raise RadfordError(str(error).strip().splitlines()[0]) from error

        def _restore_once(self) -> None:
            """Refuse a checkpoint whose weights the model cannot hold, and hand the read to Lightning's restore."""
            if self.resumed is None:
                return
            ckpt_path, checkpoint = self.resumed
            check_resumable(self.model, checkpoint, ckpt_path)
            checkpoint_io = self.trainer.strategy.checkpoint_io
            if isinstance(checkpoint_io, AtomicCheckpointIO):
                checkpoint_io.reuse(ckpt_path, checkpoint)

        before_fit = before_validate = before_test = before_predict = _restore_once

    return RadfordCLI


def _hide_adverts() -> None:
    """Lightning prints tips advertising its cloud products at every start; keep the console for the run."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: not str(record.msg).startswith("💡 Tip"))


def _radford_cause(error: BaseException) -> RadfordError | None:
    """The RadfordError an exception was raised from, however deep jsonargparse wrapped it."""
    while error is not None and not isinstance(error, RadfordError):
        error = error.__cause__ or error.__context__
    return error


def run_lightning(args: Sequence[str], run: bool = True) -> LightningCLI:
    """``fit``, ``validate``, ``test`` or ``predict`` through LightningCLI. With ``run=False`` and ``args`` without
    the subcommand, it builds the model, data module and trainer as the subcommand would, and runs nothing."""
    from lightning import LightningDataModule, LightningModule
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    expanded, run_name = expand_recipes(args)
    links = shared_links(**chosen_classes(expanded))
    check_said_once(expanded, links)
    _hide_adverts()
    cli_class = _lightning_cli_class()
    # We hand LightningCLI the expanded arguments on purpose; sys.argv keeps the user's for DDP relaunches.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        return cli_class(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=trainer_defaults(run_name or "default"),
            parser_kwargs={"exit_on_error": False},
            save_config_kwargs={"overwrite": True},
            args=expanded,
            run=run,
            links=links,
        )
    except SIGTERMException as stop:  # radford's Stopped, or Lightning's own, which StopOnSignal annotates
        if hasattr(stop, "checkpoint"):
            print(f"radford: stopped by {stop.reason} at step {stop.step}; resume with the same command and "
                  f"--ckpt_path {stop.checkpoint}", file=sys.stderr)
        raise
    except (argparse.ArgumentError, ValueError) as error:
        # jsonargparse wraps what a class's __init__ or a link raised, and words its own parse errors at length.
        cause = _radford_cause(error)
        if cause is not None:
            raise cause from error
        if isinstance(error, argparse.ArgumentError):
            raise RadfordError(one_line(str(error))) from error
        raise
    except MisconfigurationException as error:  # Lightning's word for a contradictory trainer config
        raise RadfordError(str(error).strip().splitlines()[0]) from error
