"""``radford fit|validate|test|predict``: LightningCLI driven by recipes.

``radford fit --recipe gpt2-tiny --trainer.max_steps 20`` reads the recipe, replaces registered short
names (``class_path: gpt2``) with import paths, and hands the result to LightningCLI as a config; several
``--recipe`` flags compose and later values win. Mistakes a user can make end as one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radford import recipes, registry
from radford.config_errors import one_line
from radford.errors import RadfordError

RUNS_DIR = "runs"
SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself
# Which registry a ``class_path`` is looked up in, by the key that holds it.
SECTION_KINDS = {"model": "models", "data": "data", "tokenizer": "tokenizers"}


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


def _config_argument(path: Path) -> str:
    """A recipe as the JSON text LightningCLI's ``--config`` accepts, short names resolved."""
    return json.dumps(resolve_short_names(recipes.load(path)))


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
            expanded += ["--config", _config_argument(path)]
        elif flag.startswith("--") and _class_kind(flag):
            expanded += [flag, _resolve(flag, value if eq else next(items, ""))]
        else:
            expanded.append(arg)
    return expanded, run_name


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
    )

    LINKED = "vocab_size"  # the model argument the data module sets

    class RadfordCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            # The tokenizer decides the vocabulary; the model takes it from the data module.
            parser.link_arguments("data.vocab_size", f"model.init_args.{LINKED}", apply_on="instantiate")

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
            return super().instantiate_trainer(callbacks=callbacks, plugins=plugins, **kwargs)

        def _parse_ckpt_path(self) -> None:
            """Lightning rebuilds the model with the checkpoint's arguments over the recipe's: say which ones it
            replaces, rather than silently, and refuse a file that is not a checkpoint in one line."""
            subcommand = self.config.get("subcommand")
            ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
            if ckpt_path and ckpt_path not in SPECIAL_CKPT_PATHS:
                note = model_arguments_replaced(ckpt_path, self.config[subcommand].get("model"), linked=[LINKED])
                if note:
                    print(f"radford: resuming from {ckpt_path}: {note}", file=sys.stderr)
            super()._parse_ckpt_path()

        def before_fit(self) -> None:
            ckpt_path = self._get(self.config_init, "ckpt_path")
            if ckpt_path and ckpt_path not in SPECIAL_CKPT_PATHS:
                check_resumable(self.model, ckpt_path)

    return RadfordCLI


def _hide_adverts() -> None:
    """Lightning prints tips advertising its cloud products at every start; keep the console for the run."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: not str(record.msg).startswith("💡 Tip"))


def run_lightning(args: Sequence[str]) -> None:
    """``fit``, ``validate``, ``test`` or ``predict`` through LightningCLI."""
    from lightning import LightningDataModule, LightningModule
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    expanded, run_name = expand_recipes(args)
    _hide_adverts()
    cli_class = _lightning_cli_class()
    # We hand LightningCLI the expanded arguments on purpose; sys.argv keeps the user's for DDP relaunches.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        cli_class(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=trainer_defaults(run_name or "default"),
            parser_kwargs={"exit_on_error": False},
            save_config_kwargs={"overwrite": True},
            args=expanded,
        )
    except SIGTERMException as stop:  # radford's Stopped, or Lightning's own, which StopOnSignal annotates
        if hasattr(stop, "checkpoint"):
            print(f"radford: stopped by {stop.reason} at step {stop.step}; resume with the same command and "
                  f"--ckpt_path {stop.checkpoint}", file=sys.stderr)
        raise
    except argparse.ArgumentError as error:
        raise RadfordError(one_line(str(error))) from error
    except MisconfigurationException as error:  # Lightning's word for a contradictory trainer config
        raise RadfordError(str(error).strip().splitlines()[0]) from error
    except ValueError as error:  # jsonargparse wraps what a class's __init__ raised while instantiating it
        if isinstance(error.__cause__, RadfordError):
            raise error.__cause__ from error
        raise
