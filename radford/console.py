"""What a run shows on the console: a progress bar with the metrics that judge it, a model summary without noise, and
at the end a short report (final and best metrics, the run folder, checkpoint, pictures, and a command to try).

``RunReport`` records every logged metric's history as the run goes (``loss.png`` is drawn from it, whichever
logger the recipe names, or none); ``fit_summary`` and ``eval_summary`` word the end. Lightning's messages that mean
nothing to a user are fixed where they arise (``quiet_lightning``), not by filtering warnings wholesale.
"""

from __future__ import annotations

import logging
import math
import shlex
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch.utils._pytree as torch_pytree
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.utilities import _pytree as lightning_pytree
from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

from radford import plot, runs
from radford.tokenizers import Tokenizer

# Metrics that a run is judged by besides those a model shows itself: every evaluation metric, and throughput.
EVALUATION_PREFIXES = ("val_", "test_")
THROUGHPUT_SUFFIXES = ("_per_sec", "/sec", "/s", "mfu")
# Curves drawn in loss.png: losses, and bits per byte (the mLSTM's loss).
CURVE_WORDS = ("loss", "bpb")
HIGHER_IS_BETTER = ("acc", "top1", "f1", "mcc", "pearson", "spearman")  # parts of a metric's name; the rest: lower


def _not_an_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


def quiet_lightning() -> None:
    """Fix Lightning's noise at its source: the tips advertising its cloud at every start, and the deprecation
    warning that each ``LeafSpec()`` its combined loader builds raises under torch 2.13 (torch's own
    ``treespec_leaf()`` returns the same leaf spec without it)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_not_an_advert)  # once: a filter already there is not added again
    if hasattr(torch_pytree, "treespec_leaf"):
        lightning_pytree.LeafSpec = torch_pytree.treespec_leaf


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _is_throughput(name: str) -> bool:
    return name.lower().endswith(THROUGHPUT_SUFFIXES)


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar values of ``metrics``, without Lightning's ``_step``/``_epoch`` twins of a name or the learning
    rates that ``LearningRateMonitor`` logs (``lr-AdamW``: a schedule, not a result)."""
    values = {
        name: float(value)
        for name, value in metrics.items()
        if not name.startswith("lr-") and not isinstance(value, str) and getattr(value, "numel", lambda: 1)() == 1
    }
    return {
        name: value
        for name, value in values.items()
        if not (name.endswith(("_step", "_epoch")) and name.rpartition("_")[0] in values)
    }


class _HeadlineMetrics:
    """Progress bar metrics: the model's own (``train_loss``), each validation's results and throughput, refreshed
    as they are logged; no ``v_num`` (the run's folder is named at the end)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headline: dict[str, float | str] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._headline.update(
                (name, value)
                for name, value in _scalars(trainer.callback_metrics).items()
                if name.startswith(EVALUATION_PREFIXES)
            )
        super().on_validation_end(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % trainer.log_every_n_steps == 0:  # read as often as loggers do, not every step
            self._headline.update(
                (name, _number(value))
                for name, value in _scalars(trainer.callback_metrics).items()
                if _is_throughput(name)
            )
        super().on_train_batch_end(trainer, pl_module, *args)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return {**items, **self._headline}


class RichBar(_HeadlineMetrics, RichProgressBar):
    def _get_train_description(self, current_epoch: int) -> str:
        # Lightning writes "Epoch 0/-2" when only max_steps bounds the run (max_epochs is -1): the epoch alone then.
        description = f"Epoch {current_epoch}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs - 1}"
        return f"{description:{len(self.validation_description)}}"  # as wide as "Validation", as Lightning pads it


class TQDMBar(_HeadlineMetrics, TQDMProgressBar):
    pass


def progress_bar() -> RichBar | TQDMBar:
    """The bar Lightning would choose (rich where installed), with the headline metrics."""
    try:
        return RichBar()
    except ModuleNotFoundError:  # no rich
        return TQDMBar()


class ModelSummary(LightningModelSummary):
    """Lightning's layer table without its FLOPs column and total, which read 0 unless the model sets an
    ``example_input_array`` (radford's models take inputs that depend on their data, so they set none)."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **kwargs: Any,
    ) -> None:
        columns = [(name, values) for name, values in summary_data if name != "FLOPs" or total_flops]
        widths = [max(len(name), *(len(str(v)) for v in values)) for name, values in columns]
        rows = [[name for name, _ in columns], *zip(*(values for _, values in columns), strict=True)]
        lines = [
            " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        frozen = total_parameters - trainable_parameters
        lines.append(
            f"{get_human_readable_count(total_parameters)} parameters"
            f"{f' ({get_human_readable_count(frozen)} frozen)' if frozen else ''}, {model_size:.1f} MB"
            f"{f', {get_human_readable_count(total_flops)} FLOPs a forward pass' if total_flops else ''}"
        )
        print("\n".join(lines))


class RunReport(L.Callback):
    """Follows a command for its report: steps trained, the history of every logged metric, the run folder (claimed
    at the start, named by ``latest`` after a fit's first step), and ``loss.png`` at the end of training."""

    def __init__(self, run: runs.RunFolder, fit: bool) -> None:
        self.run, self.fit = run, fit
        self.steps = 0  # training batches this command ran
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.pictures: list[Path] = []
        self.started = time.monotonic()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.started = time.monotonic()
        if self.fit and self.run.made:  # rank zero's fresh folder; after the loggers made it, which want it empty
            runs.claim(self.run.path)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.steps += 1
        if self.steps == 1 and self.fit and self.run.made:
            runs.point_latest(self.run.path)
        if trainer.is_global_zero and trainer.global_step % trainer.log_every_n_steps == 0:
            self._record(trainer, lambda name: not name.startswith(EVALUATION_PREFIXES))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            self._record(trainer, lambda name: name.startswith("val_"))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._record(trainer, lambda name: name.startswith("test_"))

    def _record(self, trainer: L.Trainer, wanted: Callable[[str], bool]) -> None:
        for name, value in _scalars(trainer.callback_metrics).items():
            if wanted(name):
                self.history[name].append((trainer.global_step, value))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and trainer.global_step % trainer.log_every_n_steps:  # the last step's values too
            self._record(trainer, lambda name: not name.startswith(EVALUATION_PREFIXES))
        self._draw(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.steps:  # a stopped run's curve up to where it stopped
            self._draw(trainer)

    def _draw(self, trainer: L.Trainer) -> None:
        curves = {
            name: points
            for name, points in self.history.items()
            if any(word in name.split("_") for word in CURVE_WORDS)
        }
        if trainer.is_global_zero and curves and self.fit:
            path = plot.line_chart(
                curves, self.run.path / "loss.png", f"{self.run.path.parent.name}: {', '.join(curves)}", "step"
            )
            self.pictures = [path]

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def _lower_is_better(name: str) -> bool:
    return not any(part in HIGHER_IS_BETTER for part in name.lower().split("_"))


def _metric_rows(
    final: Mapping[str, float], history: Mapping[str, Sequence[tuple[int, float]]]
) -> list[tuple[str, str]]:
    """(name, final value and, for an evaluation metric measured more than once, its best and where)."""
    rows = []
    for name, value in final.items():
        text = _number(value)
        points = [(v, step) for step, v in history.get(name, ()) if math.isfinite(v)]
        if len(points) > 1 and name.startswith(EVALUATION_PREFIXES):
            best, step = (min if _lower_is_better(name) else max)(points, key=lambda p: p[0])
            text += f"   (best {_number(best)} at step {step})"
        rows.append((name, text))
    return rows


def _table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join([title, *(f"  {label:<{width}}  {value}" for label, value in rows)])


def next_command(model: L.LightningModule, datamodule: Any, recipes: Sequence[str], checkpoint: str) -> str:
    """The command a user would try next with ``checkpoint``: what the model's kind is for."""
    tokenizer = getattr(datamodule, "tokenizer", None) or getattr(model, "tokenizer", None)
    path = shlex.quote(checkpoint)
    if callable(getattr(model, "generate", None)) and isinstance(tokenizer, Tokenizer):
        return f'radford generate --checkpoint {path} --prompt "The" --max_new_tokens 64'
    if callable(getattr(model, "sample", None)) and hasattr(model, "generator"):
        return f"radford sample --checkpoint {path} --out samples.png"
    if callable(getattr(model, "encode_image", None)) and callable(getattr(model, "encode_text", None)):
        return f'radford zeroshot --checkpoint {path} --images FOLDER --classes "a cat" "a dog"'
    recipe = " ".join(f"--recipe {shlex.quote(name)}" for name in recipes)
    evaluate = "test" if type(model).test_step is not L.LightningModule.test_step else "validate"
    return f"radford {evaluate} {recipe} --ckpt_path {path}".replace("  ", " ")


def _checkpoint(trainer: L.Trainer) -> str | None:
    """The checkpoint of the final state: ``last.ckpt`` (which ``KeepFinalState`` writes if nothing else did)."""
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint):
        return None
    last = Path(callback.dirpath or ".") / "last.ckpt"
    return callback.last_model_path or (str(last) if last.exists() else callback.best_model_path) or None


def _pictures(report: RunReport) -> list[Path]:
    """``loss.png``, then the newest picture of each folder in the run (DCGAN's ``samples/epoch_NNN.png``)."""
    newest: dict[Path, Path] = {}
    for path in sorted(report.run.path.rglob("*.png")):
        if path not in report.pictures:
            newest[path.parent] = path
    return [*report.pictures, *newest.values()]


def fit_summary(trainer: L.Trainer, report: RunReport, recipes: Sequence[str]) -> str:
    """The end of ``radford fit``: steps and time, final and best metrics, where everything went, what to try."""
    title = (
        f"radford fit: {report.steps} steps of {report.run.path.parent.name} in {report.seconds:.0f} s "
        f"(global step {trainer.global_step})"
    )
    rows = [*_metric_rows(_scalars(trainer.callback_metrics), report.history), ("run", runs.shown(report.run.path))]
    checkpoint = _checkpoint(trainer)
    if checkpoint:
        rows.append(("checkpoint", runs.shown(checkpoint)))
    rows += [("picture", runs.shown(picture)) for picture in _pictures(report)]
    if checkpoint:
        latest = _via_latest(report.run.path, checkpoint)
        rows.append(("next", next_command(trainer.lightning_module, trainer.datamodule, recipes, latest)))
    return _table(title, rows)


def _via_latest(run: Path, checkpoint: str) -> str:
    """``checkpoint`` through ``<root>/latest`` while that names ``run``, as the README's commands reach it."""
    try:
        inside = Path(checkpoint).resolve().relative_to(run.resolve())
    except ValueError:  # saved elsewhere (a ModelCheckpoint with its own dirpath)
        return runs.shown(checkpoint)
    latest = run.parent / runs.LATEST
    return runs.shown(latest / inside if latest.resolve() == run.resolve() else checkpoint)


def eval_summary(
    trainer: L.Trainer, report: RunReport, stage: str, ckpt_path: str | None, recipes: Sequence[str]
) -> str:
    """The end of ``radford validate`` or ``test``: its metrics, the checkpoint it read, and where results went."""
    source = runs.shown(ckpt_path) if ckpt_path else "the recipe's weights (no --ckpt_path)"
    prefix = "val_" if stage == "validate" else "test_"
    final = {name: value for name, value in _scalars(trainer.callback_metrics).items() if name.startswith(prefix)}
    rows = [*_metric_rows(final, {}), ("results", runs.shown(report.run.path))]
    if ckpt_path:
        command = next_command(trainer.lightning_module, trainer.datamodule, recipes, runs.shown(ckpt_path))
        rows.append(("next", command))
    return _table(f"radford {stage}: {source} in {report.seconds:.0f} s", rows)
