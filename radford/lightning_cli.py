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
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from radford import recipes, registry, runs
from radford.config_errors import UNION, check_values, import_class, one_line, parameters
from radford.errors import RadfordError

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningCLI

SPECIAL_CKPT_PATHS = ("best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself (radford: last)
# Which registry a ``class_path`` is looked up in, by the key that holds it.
SECTION_KINDS = {"model": "models", "data": "data", "tokenizer": "tokenizers"}
BASE = "base"  # the key of a recipe that names the recipes it builds on
# Arguments that a model and its data module both take, said once, on the model: its architecture or task
# decides the shapes the data module makes, so the parsed value is copied to the data module's argument.
MODEL_TO_DATA = ("block_size", "image_size", "channels", "context_length", "task")
# What only the built data module knows, (its property, the model's argument) read when the classes are built: its
# tokenizer's vocabulary; the sequence the model reads, an image's pixels as a pixel model's block_size, or a text
# window that a pretrained model (zero-shot) checks against its context before the data is prepared.
DATA_TO_MODEL = (
    ("vocab_size", "vocab_size"),
    ("sequence_length", "block_size"),
    ("sequence_length", "sequence_length"),
)


class Link(NamedTuple):
    """``target`` takes its value from ``source`` when the config is parsed, or when the classes are built."""

    source: str
    target: str
    apply_on: str  # "parse" or "instantiate", as jsonargparse's link_arguments


def _class_kind(key: str) -> str | None:
    """The registry kind when a key names a class: ``model``, ``data.class_path``, ``...tokenizer``, and
    ``--model.help`` (a class's options)."""
    parts = [p for p in key.removeprefix("--").split(".") if p != "init_args"]
    if parts and parts[-1] in ("class_path", "help"):
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
    links = [
        Link(f"model.init_args.{name}", f"data.init_args.{name}", "parse")
        for name in MODEL_TO_DATA
        if name in model_args & data_args
    ]
    parsed = {link.source for link in links}
    data_class = import_class(data)
    links += [
        Link(f"data.{prop}", f"model.init_args.{arg}", "instantiate")
        for prop, arg in DATA_TO_MODEL
        if arg in model_args and hasattr(data_class, prop) and f"model.init_args.{arg}" not in parsed
    ]
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
        raise RadfordError(
            f"{link.target} is linked to the data module's {link.source.partition('.')[2]}, which sets it: leave it out"
        )


def _required(source: str) -> Callable[[Any], Any]:
    """A parse link's value, refused in one line when the source leaves it unset."""

    def linked_value(value: Any) -> Any:
        if value is None:
            raise RadfordError(
                f"{source} is not set, and the data module takes its value from there: set it "
                "(for a named size, compose its fragment: radford recipes lists them)"
            )
        return value

    return linked_value


def _checkpoint_model(hparams: dict[str, Any], registered: Callable[[str], None]) -> dict[str, Any]:
    """The model a LightningCLI checkpoint records (``_class_path`` and its arguments) as a config, the arguments
    the class takes as ``init_args`` so that links read them; empty for a checkpoint without a class. ``registered``
    refuses a class that is neither registered nor the one the recipe names, before anything is imported: a
    checkpoint runs no code of its choosing."""
    hparams = {key: value for key, value in hparams.items() if key != "_instantiator"}
    class_path = hparams.pop("_class_path", None)
    if not isinstance(class_path, str):
        return {}
    registered(class_path)
    accepted = set(parameters(class_path))
    return {
        "class_path": class_path,
        "init_args": {k: v for k, v in hparams.items() if k in accepted},
        "dict_kwargs": {k: v for k, v in hparams.items() if k not in accepted},
    }


# -- the run ---------------------------------------------------------------------------------------------------


def given_recipes(args: Sequence[str]) -> list[str]:
    """The ``--recipe`` values of a command line, in order (the report's next command repeats them)."""
    pairs = zip(args, [*args[1:], ""], strict=True)
    return [arg.partition("=")[2] or following for arg, following in pairs if arg.partition("=")[0] == "--recipe"]


def latest_checkpoint(root: Path, subcommand: str) -> str | None:
    """``--ckpt_path last``: the newest checkpoint of any fit under ``root``, as litgpt's ``resume: auto``, said in
    one line. A fit without one starts from step 0; the other commands have nothing to read."""
    found = runs.latest_checkpoint(root)
    if found is None and subcommand != "fit":
        raise RadfordError(f"--ckpt_path last: no checkpoint under {runs.shown(root)} to {subcommand}; give its path")
    if runs.is_rank_zero():
        said = (
            f"{runs.shown(found)}, the latest checkpoint under {runs.shown(root)}"
            if found
            else f"no checkpoint under {runs.shown(root)} yet; training from step 0"
        )
        print(f"radford: --ckpt_path last: {said}", file=sys.stderr)
    return None if found is None else str(found)


def nothing_trained(global_step: int, max_steps: int, epoch: int, max_epochs: int | None) -> str:
    """Why a fit ran no training step: it is an error, never a success."""
    if 0 < max_steps <= global_step:
        return (
            f"the run trained 0 steps: it starts at step {global_step} and --trainer.max_steps is {max_steps}; "
            "raise max_steps to train on"
        )
    if max_epochs is not None and 0 < max_epochs <= epoch:
        return (
            f"the run trained 0 steps: it starts at epoch {epoch} and --trainer.max_epochs is {max_epochs}; "
            "raise max_epochs to train on"
        )
    return "the run trained 0 steps: the training data gave no batch (is it empty, or does none of it decode?)"


def _lightning_cli_class() -> type:
    from lightning.fabric.plugins import CheckpointIO
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    import radford.callbacks  # noqa: F401  (imported, its callbacks take short names: --trainer.callbacks+=WritePredictions)
    from radford import console
    from radford.checkpoints import RecordForLoad, check_sharded, is_sharded, model_class
    from radford.faults import (
        AtomicCheckpointIO,
        KeepFinalState,
        StopOnNonFiniteLoss,
        StopOnSignal,
        check_resumable,
        model_arguments_replaced,
        read_resumable,
    )
    from radford.throughput import SpeedMonitor, ThreadBudget, check_precision, trainer_device

    console.quiet_lightning()

    class SaveConfig(SaveConfigCallback):
        """``config.yaml`` in the run folder, whichever logger comes first (a W&B logger's folder is elsewhere)."""

        def save_config(self, trainer, pl_module, stage) -> None:
            path = Path(trainer.default_root_dir) / self.config_filename
            path.parent.mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=self.multifile)

    class RadfordCLI(LightningCLI):
        """LightningCLI with the links of ``shared_links``, run folders (``radford.runs``), radford's callbacks on
        every trainer, a checkpoint to resume from read once, and a report at the end (``radford.console``)."""

        def __init__(
            self,
            *args: Any,
            links: Sequence[Link] = (),
            run_name: str | None = None,
            recipes: Sequence[str] = (),
            **kwargs: Any,
        ) -> None:
            self.links, self.run_name, self.recipes = links, run_name, recipes
            self.root = runs.root_folder(None, run_name)
            self.ckpt_path: str | None = None
            self.resumed: tuple[str, dict[str, Any]] | None = None  # (ckpt_path, its contents)
            self.run: runs.RunFolder | None = None
            self.report: console.RunReport | None = None
            kwargs = {
                "save_config_callback": SaveConfig,
                "save_config_kwargs": {"overwrite": True, "save_to_log_dir": False},
                **kwargs,
            }
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                if self.run is not None and (self.report is None or not self.report.steps):
                    self.run.discard()  # a run that fails before its first step leaves no folder
                raise

        def add_arguments_to_parser(self, parser) -> None:
            for link in self.links:
                compute = _required(link.source) if link.apply_on == "parse" else None
                parser.link_arguments(link.source, link.target, compute_fn=compute, apply_on=link.apply_on)

        def parse_arguments(self, parser, args) -> None:
            """Parse; find the root folder and the checkpoint (``last``: the newest under the root). Resuming from a
            checkpoint file, read it, say which of the recipe's model arguments it replaces, and take the
            checkpoint's. Lightning would read the file again for those: until the classes are built, it is not
            shown the path. FSDP's sharded checkpoints, folders, are left to it, once ``check_sharded`` has read what
            it would unpickle."""
            super().parse_arguments(parser, args)
            subcommand = self.config.get("subcommand")
            config = self.config[subcommand] if subcommand else self.config
            check_values(config.as_dict())  # what the command line gave, as recipes are checked when read
            if subcommand:  # a run, not a build of the classes (run=False) to look at, which any machine may do
                # Before anything is built (the data prepared, a run folder reserved), and before the Trainer, which
                # would swap 16-mixed for bf16-mixed on a CPU with a warning that scrolls away.
                device = trainer_device(config.get("trainer.accelerator", "auto"))
                check_precision(config.get("trainer.precision"), device)
            self.root = runs.root_folder(config.get("trainer.default_root_dir"), self.run_name)
            ckpt_path = config.get("ckpt_path")
            if ckpt_path == "last":
                ckpt_path = latest_checkpoint(self.root, subcommand)
            elif ckpt_path:
                ckpt_path = runs.resolve(ckpt_path)
            if subcommand:
                config.ckpt_path = self.ckpt_path = ckpt_path
            if not subcommand or not ckpt_path or ckpt_path in SPECIAL_CKPT_PATHS:
                return
            if Path(ckpt_path).is_dir():
                if is_sharded(Path(ckpt_path)):  # Lightning reads its index and optimizer entries with plain pickle
                    check_sharded(ckpt_path)
                return
            checkpoint = read_resumable(ckpt_path)
            linked = [link.target.rpartition(".")[2] for link in self.links if link.target.startswith("model.")]
            note = model_arguments_replaced(checkpoint, config.get("model"), linked=linked)
            if note:
                print(f"radford: resuming from {ckpt_path}: {note}", file=sys.stderr)
            chosen = config.get("model.class_path")  # the class the user's recipe names is imported anyway

            def registered(class_path: str) -> None:
                if class_path != chosen:
                    model_class(ckpt_path, class_path)

            model = _checkpoint_model(checkpoint.get("hyper_parameters") or {}, registered)
            if model:
                self.config = parser.parse_object({subcommand: {"model": model}}, self.config)
            self.config[subcommand].ckpt_path = None
            self.resumed = (ckpt_path, checkpoint)

        def before_instantiate_classes(self) -> None:
            if self.resumed is not None:
                self.config[self.config.subcommand].ckpt_path = self.resumed[0]

        def _run_folder(self, smoke_test: bool) -> runs.RunFolder:
            """Where this command writes: a fit's fresh version, an evaluation's folder beside its checkpoint's run.
            Building the classes only (``run=False``) or a ``fast_dev_run`` writes nothing, so reserves nothing."""
            if not self.subcommand or smoke_test:
                return runs.RunFolder(self.root)
            if self.subcommand == "fit":
                return runs.fit_folder(self.root)
            return runs.eval_folder(self.root, self.ckpt_path, self.subcommand)

        def default_callbacks(self, config: dict[str, Any], folder: Path) -> list:
            """The callbacks every radford run adds to the recipe's; a callback for every run is added here.

            Always: what ``radford.load`` needs recorded in checkpoints, a clean stop on a signal or a diverging
            loss (``radford.faults``), and the report. Unless the recipe turned them off or brings its own: the
            progress bar and model summary of ``radford.console``, the learning rate logged, and checkpoints in
            the run folder, ``last.ckpt`` for resuming and the final state kept.
            """
            given = config.get("callbacks") or []
            callbacks = [RecordForLoad(), StopOnSignal(), StopOnNonFiniteLoss(), ThreadBudget(), self.report]
            if not any(isinstance(c, SpeedMonitor) for c in given):
                callbacks.append(SpeedMonitor())  # tokens (images, bytes) a second and MFU, in the bar and the logs
            if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in given):
                callbacks.append(console.progress_bar())
            if config.get("enable_model_summary") is not False and not any(isinstance(c, ModelSummary) for c in given):
                callbacks.append(console.ModelSummary())
            if config.get("logger") is not False:
                callbacks.append(LearningRateMonitor(logging_interval="step"))
            if self.subcommand in ("fit", None) and config.get("enable_checkpointing") is not False:
                checkpoints = [c for c in given if isinstance(c, ModelCheckpoint)]
                for callback in checkpoints:
                    callback.dirpath = callback.dirpath or str(folder / runs.CHECKPOINTS)
                if not checkpoints:
                    callbacks.append(ModelCheckpoint(dirpath=folder / runs.CHECKPOINTS, save_last=True))
                callbacks.append(KeepFinalState())  # after the ModelCheckpoints: it looks at what they saved
            return callbacks

        def instantiate_trainer(self, **kwargs):
            """The trainer, writing into the run folder: CSV and (for a fit) TensorBoard logs unless the recipe names
            its loggers, ``default_callbacks``, checkpoints written atomically."""
            config = self._get(self.config_init, "trainer", default={})
            smoke_test = bool(config.get("fast_dev_run"))
            self.run = self._run_folder(smoke_test)
            folder = self.run.path
            self.report = console.RunReport(self.run, fit=self.subcommand == "fit" and not smoke_test)
            loggers = config.get("logger")
            if loggers is None or loggers is True:
                where = {"save_dir": str(folder.parent), "name": "", "version": folder.name}
                events = [TensorBoardLogger(**where)] if self.subcommand in ("fit", None) else []
                loggers = [CSVLogger(**where), *events]
            given, ours = config.get("callbacks") or [], self.default_callbacks(config, folder)
            if any(isinstance(c, console.ModelSummary) for c in ours):
                kwargs["enable_model_summary"] = False  # Lightning adds none of its own, and says nothing of ours
            if self.subcommand not in ("fit", None) and not any(isinstance(c, ModelCheckpoint) for c in given):
                kwargs["enable_checkpointing"] = False  # an evaluation saves nothing (and restores no checkpointer)
            callbacks = [*given, *ours]
            plugins = config.get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, list) else [plugins]
            if not any(isinstance(p, CheckpointIO) for p in plugins):
                plugins.append(AtomicCheckpointIO())
            try:
                return super().instantiate_trainer(
                    callbacks=callbacks, plugins=plugins, logger=loggers, default_root_dir=str(folder), **kwargs
                )
            except ValueError as error:  # the Trainer refuses settings this machine cannot run (FSDP without a GPU)
                raise RadfordError(str(error).strip().splitlines()[0]) from error

        def _restore_once(self) -> None:
            """Refuse a checkpoint whose weights the model cannot hold, and hand the read to Lightning's restore,
            without the callback states that do not apply (``_restored_states``)."""
            if self.resumed is None:
                return
            ckpt_path, checkpoint = self.resumed
            check_resumable(self.model, checkpoint, ckpt_path)
            checkpoint = {**checkpoint, "callbacks": self._restored_states(checkpoint.get("callbacks") or {})}
            checkpoint_io = self.trainer.strategy.checkpoint_io
            if isinstance(checkpoint_io, AtomicCheckpointIO):
                checkpoint_io.reuse(ckpt_path, checkpoint)

        def _restored_states(self, states: dict[str, Any]) -> dict[str, Any]:
            """An evaluation restores no training callback; a resumed fit, which writes into a folder of its own,
            not the checkpointers that saved into another (their best and top-k files stay with the old run).
            Lightning would warn of each, a warning with nothing for the user to do."""
            if self.subcommand != "fit":
                return {}
            folders = {
                os.path.realpath(c.dirpath) for c in self.trainer.checkpoint_callbacks if getattr(c, "dirpath", None)
            }
            return {
                key: state
                for key, state in states.items()
                if not isinstance(state, dict)
                or not state.get("dirpath")
                or os.path.realpath(state["dirpath"]) in folders
            }

        def before_fit(self) -> None:
            self._restore_once()
            if runs.is_rank_zero():  # what runs killed mid-save left under this root, or beside the resumed one
                resumed_run = runs.run_of(self.resumed[0]) if self.resumed else None
                runs.sweep_stale_writes(self.root, *([resumed_run.parent] if resumed_run else []))

        def _before_evaluation(self) -> None:
            self._restore_once()
            self.config_init[self.subcommand]["verbose"] = False  # the report below prints the metrics

        before_validate = before_test = _before_evaluation
        before_predict = _restore_once

        def after_fit(self) -> None:
            trainer = self.trainer
            if not self.report.steps:
                raise RadfordError(
                    nothing_trained(trainer.global_step, trainer.max_steps, trainer.current_epoch, trainer.max_epochs)
                )
            if trainer.is_global_zero and not trainer.fast_dev_run:  # a smoke test saves nothing to report
                print(console.fit_summary(trainer, self.report, self.recipes))

        def _after_evaluation(self) -> None:
            if self.trainer.is_global_zero and not self.trainer.fast_dev_run:
                print(console.eval_summary(self.trainer, self.report, self.subcommand, self.ckpt_path, self.recipes))

        after_validate = after_test = _after_evaluation

    return RadfordCLI


def _radford_cause(error: BaseException) -> RadfordError | None:
    """The RadfordError an exception was raised from, however deep jsonargparse wrapped it."""
    while error is not None and not isinstance(error, RadfordError):
        error = error.__cause__ or error.__context__
    return error


def run_lightning(args: Sequence[str], run: bool = True) -> LightningCLI:
    """``fit``, ``validate``, ``test`` or ``predict`` through LightningCLI. With ``run=False`` and ``args`` without
    the subcommand, it builds the model, data module and trainer as the subcommand would, and runs nothing.
    ``--help-all`` is Lightning's help: every option of the recipe's classes and the trainer."""
    from lightning import LightningDataModule, LightningModule
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    args = ["--help" if arg == "--help-all" else arg for arg in args]
    expanded, run_name = expand_recipes(args)
    links = shared_links(**chosen_classes(expanded))
    check_said_once(expanded, links)
    cli_class = _lightning_cli_class()
    # We hand LightningCLI the expanded arguments on purpose; sys.argv keeps the user's for DDP relaunches.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        return cli_class(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs={"exit_on_error": False},
            args=expanded,
            run=run,
            links=links,
            run_name=run_name,
            recipes=given_recipes(args),
        )
    except SIGTERMException as stop:  # radford's Stopped, or Lightning's own, which StopOnSignal annotates
        if getattr(stop, "checkpoint", None):
            print(
                f"radford: stopped by {stop.reason} at step {stop.step}; resume with the same command and "
                f"--ckpt_path {stop.checkpoint}",
                file=sys.stderr,
            )
        elif hasattr(stop, "reason"):
            print(f"radford: stopped by {stop.reason} before the first step; nothing to resume", file=sys.stderr)
        raise
    except SystemExit as stop:
        if stop.code == 1 and isinstance(stop.__context__, KeyboardInterrupt):  # Lightning's exit on a Ctrl-C
            raise SystemExit(128 + signal.SIGINT) from None
        raise
    except (argparse.ArgumentError, ValueError) as error:
        # jsonargparse wraps what a class's __init__ or a link raised, and words its own parse errors at length.
        cause = _radford_cause(error)
        if cause is not None:
            raise cause from error
        if isinstance(error, argparse.ArgumentError) or UNION in str(error):
            raise RadfordError(one_line(str(error))) from error
        raise
    except MisconfigurationException as error:  # Lightning's word for a contradictory trainer config
        raise RadfordError(str(error).strip().splitlines()[0]) from error
